"""The round state machine and its ledger interactions.

    opening -> open -> closed -> aggregated -> final
                  `-> failed (fewer than quorum ledger submissions when it closed,
                              the aggregate could not be computed, or the ledger
                              finalised another digest)

* **open** (``POST /rounds``): the row is written as ``opening`` first, then OpenRound is
  submitted, then the row becomes ``open`` with the tx id. A crash in between leaves an
  ``opening`` row that the worker resolves from the ledger (the round is there: adopt
  it; it is not: submit the same opening again), so a round is never opened twice.
  A new round is refused while another is in progress, so round r's base adapter is
  always round r-1's final aggregate (or the fresh LoRA init before the first one).
* **uploads** are stored content-addressed; a submission *counts* only when the ledger
  holds SubmitUpdate from that org with the same update hash.
* **close**: when every committee org's submission counts, at the deadline, or on the
  operator's request. CloseRound is written on the ledger first (the coordinator is
  the opener, so it may close early); then the counted set is final. Fewer than
  ``quorum`` counted submissions -> failed.
* **aggregate**: the counted updates sorted by org, the configured strategy, the base
  adapter as reference; the aggregate blob is stored under its digest.
* **final**: once the ledger says the round is final with our digest (a majority
  attested it), RegisterModelVersion ``v{round}`` with parents ``[base version]``.

All state is in the database, the blob folder and the ledger: a new process with the
same settings picks up every unfinished round where it stood, and each step is
idempotent (ledger writes are checked against the ledger's state before they are made).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import torch
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fedledger.canonical import canonical_digest
from fedledger.digests import sha256_hex
from fedledger.fabric.errors import FabricError
from fedledger.incentives.outcome import verdict_of
from fedledger.learning.errors import AggregationError, UpdateRejectedError
from fedledger.learning.server_optimizers import ServerOptimizer, ServerOptimizerError, ServerState
from fedledger.learning.updates import load_update_bytes
from fedledger.protocol.records import RoundFinality, RoundOpening
from fedledger.web import metrics
from fedledger.web.errors import (
    Conflict,
    Forbidden,
    ServiceError,
    Unavailable,
    ledger_failure,
)

from . import lineage
from .aggregate import (
    AdapterContext,
    aggregate_updates,
    load_stored_update,
    server_optimizer_of,
    strategy_of,
)
from .blobs import BlobStore, PendingBlob
from .committee import select_committee, select_validators
from .experiment import context_of, round_config
from .ledger import OperatorLedger
from .models import (
    AggregateRow,
    AttestationRow,
    BlobRow,
    DeclineRow,
    ModelVersionRow,
    RoundRow,
    ShardStepRow,
    SubmissionRow,
    UnlearningJobRow,
    utcnow,
)
from .settings import CoordinatorSettings
from .stakes import Stakes
from .versions import UNLEARNING_ACTIVE, ModelRegistry
from .views import get_round

log = logging.getLogger(__name__)

ACTIVE = ("opening", "open", "closed", "aggregated")
T = TypeVar("T")


def _phase_changed(round_id: int, old: str | None, new: str, since: datetime | None) -> None:
    """Record a round's phase change; ``since`` is when it entered ``old``."""
    if old == new:
        return
    seconds = None
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)  # SQLite drops it
        seconds = (utcnow() - since).total_seconds()
    metrics.round_phase_changed(round_id, old, new, seconds)


def format_deadline(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_deadline(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class LedgerUnavailable(ServiceError):
    status, code = 502, "ledger_error"


def ledger_error(exc: FabricError) -> ServiceError:
    """A refusal keeps its code (404, 409...); any other failure is LedgerUnavailable."""
    return ledger_failure("ledger call", exc, unavailable=LedgerUnavailable)


def _plain(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (Postgres JSON refuses NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class RoundService:
    """Everything the API and the worker do to rounds; thread-safe (one lock for
    state transitions, the database for the rest)."""

    def __init__(self, settings: CoordinatorSettings, engine: Engine, blobs: BlobStore,
                 ledger: OperatorLedger) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.blobs = blobs
        self.ledger = ledger
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.versions = ModelRegistry(settings, blobs, ledger)
        #: Set by the deletion service: called when a replay round is final (its step
        #: is in the lineage), inside the round's session.
        self.on_replay_final: Callable[[Session, RoundRow], None] | None = None
        self.stakes = Stakes(settings.staking) if settings.staking else None

    # ------------------------------------------------------------------ config

    @property
    def shards(self) -> int:
        return self.settings.experiment.federation.shards

    def round_config(self, local_steps: int | None = None, *, shard: int = 0,
                     step: int = 1) -> dict[str, Any]:
        return round_config(self.settings, local_steps, shard=shard, step=step)

    # ------------------------------------------------------------------ reads

    @staticmethod
    def get(session: Session, round_id: int) -> RoundRow:
        return get_round(session, round_id)

    # ------------------------------------------------------------------ open

    def open_round(self, *, deadline_s: int | None, quorum: int | None,
                   local_steps: int | None, shard: int | None = None) -> int:
        """Open the next round of ``shard`` (default: the shard-group with the shortest
        lineage) at the next step of its lineage."""
        with self.lock, self.sessions() as session:
            busy = session.scalars(select(RoundRow).where(RoundRow.status.in_(ACTIVE))).first()
            if busy is not None:
                raise Conflict(f"round {busy.round_id} is still {busy.status}; a new round opens "
                               "once it is final or failed", details={"round_id": busy.round_id})
            unlearning = session.scalars(select(UnlearningJobRow).where(
                UnlearningJobRow.status.in_(UNLEARNING_ACTIVE))).first()
            if unlearning is not None:
                raise Conflict(f"deletion {unlearning.notice_id} is being executed (replay "
                               "rounds); new rounds open once it is done",
                               code="unlearning_in_progress",
                               details={"notice_id": unlearning.notice_id})
            if shard is None:
                shard = lineage.choose_shard(session, self.shards)
            elif not 0 <= shard < self.shards:
                raise ServiceError(f"shard {shard} does not exist: the federation has "
                                   f"{self.shards} shard-group(s)", code="invalid_shard",
                                   details={"shards": self.shards})
            step = lineage.last_step(session, shard) + 1
            config = self.round_config(local_steps, shard=shard, step=step)
            return self.create_round(session, shard=shard, step=step, config=config,
                                      committee=None, quorum=quorum, deadline_s=deadline_s)

    def create_round(self, session: Session, *, shard: int, step: int, config: dict[str, Any],
                      committee: list[str] | None, quorum: int | None, deadline_s: int | None,
                      replay_of: int | None = None, unlearning_id: int | None = None) -> int:
        """Write the round (``opening``), open it on the ledger, mark it ``open``. The
        base is the shard's adapter after ``step - 1``; ``committee`` None: drawn from
        the registered orgs with public randomness."""
        try:
            orgs = self.ledger.org_ids()
            ledger_last = self.ledger.last_round_id()
        except FabricError as exc:
            raise ledger_error(exc) from exc
        if self.ledger.msp_id not in orgs:
            raise Conflict(f"the operator org {self.ledger.msp_id} is not registered on the "
                           "consortium channel")
        db_last = session.scalar(select(func.max(RoundRow.round_id))) or 0
        round_id = max(db_last, ledger_last) + 1
        config_digest = canonical_digest(config)
        if committee is None:
            previous = session.scalars(select(RoundRow).where(RoundRow.status == "final")
                                       .order_by(RoundRow.round_id.desc())).first()
            prev_agg = session.get(AggregateRow, previous.round_id) if previous else None
            # Public randomness: the last final aggregate, or this round's config digest.
            seed = prev_agg.digest if prev_agg else config_digest
            committee = select_committee(orgs, seed=seed, round_id=round_id,
                                         size=self.settings.committee_size)
        if quorum is None:
            quorum = self.settings.default_quorum or len(committee) // 2 + 1
        if quorum > len(committee):
            raise ServiceError(f"quorum {quorum} exceeds the committee size {len(committee)}",
                               code="invalid_quorum",
                               details={"quorum": quorum, "committee": committee})
        base_digest = lineage.adapter_at(session, shard, step - 1)
        base_state = lineage.server_state_at(session, shard, step - 1)
        base_round = lineage.source_round_at(session, shard, step - 1)
        base_step = session.get(ShardStepRow, (shard, step - 1)) if step > 1 else None
        base_version = None
        if base_step is not None and base_step.round_id is not None:
            base_version = session.scalars(select(ModelVersionRow.version_id).where(
                ModelVersionRow.round_id == base_step.round_id)
                .order_by(ModelVersionRow.created_at.desc())).first()
        closes_at = utcnow() + timedelta(seconds=deadline_s or self.settings.default_deadline_s)
        deadline = format_deadline(closes_at)
        defense = (config.get("defense") or {}) if replay_of is None else {}
        validation = (self._validation(round_id, committee, defense, config_digest, closes_at)
                      if defense.get("voting") else None)
        now = utcnow()
        row = RoundRow(round_id=round_id, status="opening", shard=shard, step=step,
                       deadline=deadline, quorum=quorum, committee=committee, config=config,
                       config_digest=config_digest, base_version_id=base_version,
                       base_adapter_hash=base_digest, base_round_id=base_round,
                       base_server_state_hash=base_state, replay_of=replay_of,
                       unlearning_id=unlearning_id, validation=validation, created_at=now,
                       updated_at=now)
        opening = self._opening(row)
        session.add(row)
        session.commit()
        try:
            written = self.ledger.open_round(opening).submit()
        except FabricError as exc:
            session.delete(row)
            session.commit()
            raise ledger_error(exc) from exc
        row.status, row.open_tx, row.updated_at = "open", written.tx_id, utcnow()
        session.commit()
        _phase_changed(round_id, None, "opening", None)
        _phase_changed(round_id, "opening", "open", now)
        log.info("opened round %s (shard %s step %s%s, tx %s) committee=%s", round_id, shard,
                 step, f", replays round {replay_of}" if replay_of else "", written.tx_id,
                 committee)
        return round_id

    def _validation(self, round_id: int, committee: list[str], defense: dict[str, Any],
                    config_digest: str, closes_at: datetime) -> dict[str, Any]:
        """The round's validator committee, drawn among its committee by stake with
        public randomness (the newest anchor's root, else the last final aggregate, else
        the round's config digest), and what it is drawn from, so anyone can redo it."""
        seed, source = None, None
        try:
            seed = self.ledger.latest_anchor_root()
            source = "anchor_root" if seed else None
            addresses = self.ledger.anchor_addresses()
        except FabricError as exc:
            raise ledger_error(exc) from exc
        if seed is None:
            with self.sessions() as session:
                previous = session.scalars(select(AggregateRow).join(
                    RoundRow, RoundRow.round_id == AggregateRow.round_id).where(
                    RoundRow.status == "final").order_by(AggregateRow.round_id.desc())).first()
            seed, source = ((previous.digest, "last_final_aggregate") if previous
                            else (config_digest, "config_digest"))
        members = {org: addresses[org] for org in committee if org in addresses}
        if self.stakes is not None:
            try:
                weights, block = self.stakes.weights(members)
            except Exception as exc:  # noqa: BLE001 - the chain is down: say so, open nothing
                raise Unavailable(f"cannot read the stakes on the Staking contract: {exc}") from exc
        else:
            weights, block = {org: 1 for org in members}, None
        validators = select_validators(weights, seed=seed, round_id=round_id,
                                       size=int(defense.get("validators", 3)))
        vote_deadline = closes_at + timedelta(seconds=int(defense.get("vote_window_s", 300)))
        return {"validators": validators, "vote_deadline": format_deadline(vote_deadline),
                "reward_wei": int(defense.get("reward_wei", 0)),
                "slash_wei": int(defense.get("slash_wei", 0)), "seed": seed,
                "seed_source": source, "weights": {k: str(v) for k, v in weights.items()},
                "stakes_block": block}

    @staticmethod
    def _opening(row: RoundRow) -> RoundOpening:
        validation = row.validation or {}
        return RoundOpening(
            round_id=row.round_id, config_digest=row.config_digest, deadline=row.deadline,
            quorum=row.quorum, shard=row.shard, committee=list(row.committee),
            validators=list(validation.get("validators") or []),
            vote_deadline=validation.get("vote_deadline"),
            reward_wei=validation.get("reward_wei", 0), slash_wei=validation.get("slash_wei", 0))

    def _resolve_opening(self, session: Session, row: RoundRow) -> None:
        on_ledger = self.ledger.find_round(row.round_id)
        if on_ledger is None:
            if utcnow() >= parse_deadline(row.deadline):
                self._fail(row, "the coordinator stopped before the round was opened on the ledger")
                return
            written = self.ledger.open_round(self._opening(row)).submit()
            row.open_tx = written.tx_id
        elif (on_ledger.config_digest != row.config_digest
              or on_ledger.opened_by != self.ledger.msp_id
              or on_ledger.committee != list(row.committee)):
            self._fail(row, f"round {row.round_id} on the ledger is not the one recorded here")
            return
        row.status, row.updated_at = "open", utcnow()
        log.info("round %s: opening -> open (tx %s)", row.round_id, row.open_tx)

    # ------------------------------------------------------------------ uploads

    def check_upload(self, round_id: int, org: str, declared: str) -> bool:
        """Quick checks before the body is read; True when the identical update is
        already stored (idempotent retry)."""
        with self.sessions() as session:
            row = self.get(session, round_id)
            existing = session.scalars(select(SubmissionRow).where(
                SubmissionRow.round_id == round_id, SubmissionRow.org == org)).first()
            if existing is not None:
                if existing.update_hash == declared:
                    return True
                raise Conflict(f"{org} already uploaded update {existing.update_hash} for round "
                               f"{round_id}; a submission cannot be replaced",
                               details={"update_hash": existing.update_hash})
            if row.status != "open":
                raise Conflict(f"round {round_id} is {row.status}, not open",
                               code="round_not_open", details={"status": row.status})
            if utcnow() > parse_deadline(row.deadline):
                raise Conflict(f"round {round_id} deadline {row.deadline} has passed",
                               code="deadline_passed", details={"deadline": row.deadline})
            if org not in row.committee:
                raise Forbidden(f"{org} is not in the committee of round {round_id}",
                                details={"committee": list(row.committee)})
            if session.get(DeclineRow, (round_id, org)) is not None:
                raise Conflict(f"{org} declined round {round_id}; it cannot submit to it",
                               code="declined")
            return False

    def decline(self, round_id: int, org: str, reason: str) -> bool:
        """Record that ``org`` will not submit to the open round ``round_id`` (True if
        new; the same decline again is a no-op). Refused after an upload."""
        with self.lock, self.sessions() as session:
            row = self.get(session, round_id)
            if session.get(DeclineRow, (round_id, org)) is not None:
                return False
            if org not in row.committee:
                raise Forbidden(f"{org} is not in the committee of round {round_id}",
                                details={"committee": list(row.committee)})
            if row.status != "open":
                raise Conflict(f"round {round_id} is {row.status}, not open",
                               code="round_not_open", details={"status": row.status})
            uploaded = session.scalars(select(SubmissionRow).where(
                SubmissionRow.round_id == round_id, SubmissionRow.org == org)).first()
            if uploaded is not None:
                raise Conflict(f"{org} already uploaded an update for round {round_id}",
                               details={"update_hash": uploaded.update_hash})
            session.add(DeclineRow(round_id=round_id, org=org, reason=reason[:1000],
                                   created_at=utcnow()))
            session.commit()
        self.wake.set()
        return True

    def accept_upload(self, round_id: int, org: str, declared: str, num_samples: int | None,
                      pending: PendingBlob) -> bool:
        """Verify and commit a received upload; True if newly stored, False if it was
        the identical update again. On any error the temp file is removed."""
        published = False
        try:
            if pending.sha256 != declared:
                raise ServiceError(f"body sha256 {pending.sha256} differs from the declared "
                                   f"X-Content-Sha256 {declared}", code="digest_mismatch",
                                   details={"declared": declared, "received": pending.sha256})
            identical = self.check_upload(round_id, org, declared)
            with self.sessions() as session:
                config = self.get(session, round_id).config
            context = context_of(config)
            try:
                load_update_bytes(pending.read(), context.spec,
                                  max_bytes=self.settings.max_update_bytes)
            except UpdateRejectedError as exc:
                raise ServiceError(str(exc), code="invalid_update",
                                   details={"reason": exc.reason, "tensor": exc.key}) from exc
            with self.lock, self.sessions() as session:
                identical = self.check_upload(round_id, org, declared)
                if identical:
                    pending.discard()
                    return False
                if session.get(BlobRow, declared) is None:
                    session.add(BlobRow(sha256=declared, size=pending.size, kind="update",
                                        created_at=utcnow()))
                    session.flush()
                session.add(SubmissionRow(round_id=round_id, org=org, update_hash=declared,
                                          declared_samples=num_samples, created_at=utcnow()))
                try:
                    session.flush()
                except IntegrityError:
                    session.rollback()
                    raise Conflict(f"{org} already uploaded an update for round {round_id}") from None
                published = pending.publish()
                session.commit()
            self.wake.set()
            return True
        except BaseException:
            pending.discard()
            if published:
                self.blobs.path(declared).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ closing

    def close_requested(self, round_id: int) -> None:
        with self.lock, self.sessions() as session:
            row = self.get(session, round_id)
            if row.status != "open":
                raise Conflict(f"round {round_id} is {row.status}, not open",
                               code="round_not_open", details={"status": row.status})
            since = row.updated_at
            try:
                self._close(session, row, reason="closed by the operator")
            except FabricError as exc:
                raise ledger_error(exc) from exc
            finally:
                session.commit()
                _phase_changed(round_id, "open", row.status, since)
        self.wake.set()

    def _sync_submissions(self, session: Session, row: RoundRow) -> list[SubmissionRow]:
        on_ledger = {s.org: s for s in self.ledger.list_submissions(row.round_id)
                     if s.shard == row.shard}
        subs = session.scalars(select(SubmissionRow).where(
            SubmissionRow.round_id == row.round_id)).all()
        for sub in subs:
            record = on_ledger.get(sub.org)
            if (record is not None and record.update_hash == sub.update_hash
                    and sub.ledger_samples is None):
                sub.ledger_samples = record.num_samples
                sub.commitment_roots = [r.model_dump(mode="json") for r in record.commitment_roots]
        return list(subs)

    @staticmethod
    def _counted(subs: list[SubmissionRow], committee: list[str]) -> list[SubmissionRow]:
        return sorted((s for s in subs if s.ledger_samples and s.org in committee),
                      key=lambda s: s.org)

    def _close(self, session: Session, row: RoundRow, *, reason: str) -> None:
        self._sync_submissions(session, row)
        on_ledger = self.ledger.find_round(row.round_id)
        if on_ledger is not None and on_ledger.status == "open":
            row.close_tx = self.ledger.close_round(row.round_id).submit().tx_id
        # Nothing can be submitted any more: this is the final set.
        counted = self._counted(self._sync_submissions(session, row), list(row.committee))
        if not counted and self._declined(session, row) >= set(row.committee):
            self._fail(row, f"{reason}: every committee org declined (no data)")
        elif len(counted) < row.quorum:
            self._fail(row, f"{reason}: {len(counted)} submission(s) on the ledger, quorum is "
                            f"{row.quorum}")
        else:
            row.status, row.updated_at = "closed", utcnow()
        log.info("round %s closed (%s): %s", row.round_id, reason, row.status)

    @staticmethod
    def _declined(session: Session, row: RoundRow) -> set[str]:
        return set(session.scalars(select(DeclineRow.org).where(
            DeclineRow.round_id == row.round_id)))

    def _fail(self, row: RoundRow, error: str) -> None:
        row.status, row.error, row.updated_at = "failed", error, utcnow()
        log.warning("round %s failed: %s", row.round_id, error)

    # ------------------------------------------------------------------ aggregation

    def _load_update(self, sha: str, context: AdapterContext) -> dict[str, torch.Tensor]:
        return load_stored_update(self.blobs, sha, context,
                                  max_bytes=self.settings.max_update_bytes)

    def _load_server_state(self, server: ServerOptimizer, sha: str, context: AdapterContext
                           ) -> ServerState:
        data = self.blobs.read(sha)
        if sha256_hex(data) != sha:
            raise AggregationError(f"stored server state {sha} is corrupt (hash mismatch)")
        return server.load_state_bytes(data, context.spec)

    def _store_blob(self, session: Session, data: bytes, digest: str, *, kind: str) -> None:
        self.blobs.put(data)
        if session.get(BlobRow, digest) is None:
            session.add(BlobRow(sha256=digest, size=len(data), kind=kind, created_at=utcnow()))
            session.flush()

    def _votes_ready(self, row: RoundRow) -> bool:
        """Without validators, at once; with them, when each has voted on every other
        submission or the vote deadline has passed (the ledger takes no vote after it,
        so the vote set everyone reads is final)."""
        if not row.validation:
            return True
        if utcnow() > parse_deadline(row.validation["vote_deadline"]) + timedelta(seconds=2):
            return True
        submitters = {s.org for s in self.ledger.list_submissions(row.round_id)}
        cast = {(v.validator, v.target_org) for v in self.ledger.list_votes(row.round_id)}
        return all((v, t) in cast for v in row.validation["validators"]
                   for t in submitters if t != v)

    def _aggregate(self, session: Session, row: RoundRow) -> None:
        counted = self._counted(self._sync_submissions(session, row), list(row.committee))
        if row.validation:
            on_ledger = self.ledger.find_round(row.round_id)
            orgs = {s.org for s in counted}
            submissions = [s for s in self.ledger.list_submissions(row.round_id) if s.org in orgs]
            verdict = verdict_of(on_ledger, submissions, self.ledger.list_votes(row.round_id))
            refused = {s.org for s in counted if not verdict[s.org]}
            counted = [s for s in counted if verdict[s.org]]
            if not counted:
                self._fail(row, f"the validator committee rejected every update "
                                f"({sorted(refused)})")
                return
        else:
            refused = set()
        context = context_of(row.config)
        name, params = strategy_of(row.config)
        try:
            server = server_optimizer_of(row.config)
            updates = {s.org: (self._load_update(s.update_hash, context), s.ledger_samples or 0)
                       for s in counted}
            reference = (self._load_update(row.base_adapter_hash, context)
                         if row.base_adapter_hash else context.initial_state)
            server_state = (self._load_server_state(server, row.base_server_state_hash, context)
                            if server is not None and row.base_server_state_hash else None)
            outcome = aggregate_updates(name, params, updates, reference, server=server,
                                        server_state=server_state)
        except (AggregationError, UpdateRejectedError, ServerOptimizerError) as exc:
            self._fail(row, f"aggregation failed: {exc}")
            return
        self._store_blob(session, outcome.data, outcome.digest, kind="aggregate")
        if outcome.server_state_data is not None and outcome.server_state_digest is not None:
            self._store_blob(session, outcome.server_state_data, outcome.server_state_digest,
                             kind="server_state")
        session.add(AggregateRow(
            round_id=row.round_id, digest=outcome.digest, strategy=name, params=_plain(params),
            included=[{"org": s.org, "update_hash": s.update_hash, "num_samples": s.ledger_samples}
                      for s in counted],
            result=_plain({"accepted": outcome.accepted,
                           "rejected": {**{org: "rejected by the validator committee"
                                           for org in sorted(refused)}, **outcome.rejected},
                           "details": outcome.details}),
            server_state_digest=outcome.server_state_digest, created_at=utcnow()))
        row.status, row.updated_at = "aggregated", utcnow()
        log.info("round %s aggregated: %s", row.round_id, outcome.digest)

    # ------------------------------------------------------------------ finality

    def _check_final(self, session: Session, row: RoundRow) -> None:
        agg = session.get(AggregateRow, row.round_id)
        if agg is None:
            raise RuntimeError(f"round {row.round_id} is {row.status} without an aggregate")
        # Round first, attestations second: a round seen final has its deciding
        # attestation in the list read after it.
        on_ledger = self.ledger.find_round(row.round_id)
        attestations = self.ledger.list_attestations(row.round_id)
        for att in attestations:
            existing = session.get(AttestationRow, (row.round_id, att.org))
            if existing is None:
                session.add(AttestationRow(round_id=row.round_id, org=att.org,
                                           digest=att.aggregate_digest))
        if on_ledger is None:
            return
        if on_ledger.status != "final":
            # The orgs' attestations never write the round (no hot key); one call here,
            # by the coordinator alone, records the majority the ledger counts itself.
            agreeing = [a.org for a in attestations if a.aggregate_digest == agg.digest
                        and a.server_state_digest == agg.server_state_digest]
            if 2 * len(agreeing) <= len(self.ledger.list_orgs()):
                return
            on_ledger = self.ledger.finalize_round(RoundFinality(
                round_id=row.round_id, aggregate_digest=agg.digest,
                server_state_digest=agg.server_state_digest,
                attesters=sorted(agreeing))).submit().result
        if (on_ledger.aggregate_digest, on_ledger.server_state_digest) != (
                agg.digest, agg.server_state_digest):
            self._fail(row, f"the ledger finalised digest {on_ledger.aggregate_digest} (server "
                            f"state {on_ledger.server_state_digest}), not the published "
                            f"aggregate {agg.digest} (server state {agg.server_state_digest})")
            return
        included = [i["org"] for i in agg.included]
        lineage.record_step(session, shard=row.shard, step=row.step, round_id=row.round_id,
                            digest=agg.digest, included=included,
                            server_state_digest=agg.server_state_digest)
        # Final only once the version is registered: a ledger failure on the way leaves
        # the round aggregated, and the next tick repeats these idempotent steps.
        if row.unlearning_id is not None:
            if self.on_replay_final is None:
                raise RuntimeError("a replay round is final but no deletion service is attached")
            self.on_replay_final(session, row)
        else:
            version_id, tx_id = self.versions.register(session, round_id=row.round_id,
                                                       kind="round")
            row.version_id, row.model_tx = version_id, tx_id
        row.status, row.updated_at = "final", utcnow()
        log.info("round %s final (shard %s step %s)%s", row.round_id, row.shard, row.step,
                 f": model version {row.version_id} (tx {row.model_tx})" if row.version_id
                 else "")

    # ------------------------------------------------------------------ the loop's part

    def tick(self) -> None:
        """One pass over the unfinished rounds; every step re-reads the ledger."""
        with self.sessions() as session:
            ids = session.scalars(select(RoundRow.round_id).where(RoundRow.status.in_(ACTIVE))
                                  .order_by(RoundRow.round_id)).all()
        for round_id in ids:
            self._step(round_id)

    def _step(self, round_id: int) -> None:
        with self.lock, self.sessions() as session:
            row = session.get(RoundRow, round_id)
            if row is None:
                return
            old, since = row.status, row.updated_at
            try:
                if row.status == "opening":
                    self._resolve_opening(session, row)
                elif row.status == "open":
                    counted = self._counted(self._sync_submissions(session, row),
                                            list(row.committee))
                    answered = {s.org for s in counted} | self._declined(session, row)
                    if answered >= set(row.committee):
                        self._close(session, row, reason="every committee org submitted "
                                                         "or declined")
                    elif utcnow() >= parse_deadline(row.deadline):
                        self._close(session, row, reason="deadline reached")
                elif row.status == "closed":
                    if self._votes_ready(row):
                        self._aggregate(session, row)
                elif row.status == "aggregated":
                    self._check_final(session, row)
                session.commit()
            except FabricError as exc:
                # Keep what was learnt (tx ids of writes that did commit); retry next tick.
                session.commit()
                log.warning("round %s: ledger call failed, will retry: %s", round_id, exc)
            finally:
                _phase_changed(round_id, old, row.status, since)
