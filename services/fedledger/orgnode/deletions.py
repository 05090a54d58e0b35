"""Data-deletion requests of this org: filed through the admin API, executed by exact
unlearning across the consortium, recorded and proven (docs/unlearning.md).

Filing (:func:`file_request`, in the request's thread) checks everything first and
changes nothing on a bad request: the dataset exists, every sample id is one of its
samples (or the subject has samples in it), and the request is not a repeat. Then it
writes the request on the private channel (``filed``), and marks the samples deleted
here: from that moment no training of this org uses them.

Execution (:class:`DeletionDriver`, in the round worker's thread, so training and
scoring never run at the same time) moves each request along, each step persisted
before the next and idempotent, so a restarted node resumes where it stopped:

``filed`` -> ``executing``: new commitment roots for the affected (dataset, shard)s
(superseding the old ones on the private channel), the first lineage step of each
shard that used the dataset (from this org's own jobs), status ``executing`` on the
ledger, and ``POST /unlearning`` to the coordinator with an opaque notice id and those
steps -- no sample, no subject leaves the org;
``replaying``: the coordinator serves the interim version and runs the replay rounds
(this org's worker takes part in them like in any round, without the samples);
``recording``: the verification metrics of the old and the new version on this org's
data (forget set = the deleted samples, retain = remaining training data, test = its
test split; membership-inference AUC of the forget set against the test set), the
unlearning record (private channel), the unlearning notice (consortium channel, no
personal data), the status ``completed``; last, the samples' text is erased from the
dataset file (their ids stay, for the non-membership proofs).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.canonical import canonical_digest
from fedledger.clients.coordinator import CoordinatorClient, CoordinatorRefused, CoordinatorUnavailable
from fedledger.digests import sha256_hex
from fedledger.fabric.errors import FabricError
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.data.records import Sample
from fedledger.learning.errors import LearningError
from fedledger.learning.tasks import build_task
from fedledger.learning.unlearning import (
    served_adapter,
    served_spec,
    shard_of,
    stride,
    unlearning_metrics,
)
from fedledger.learning.updates import load_update_bytes, update_bytes
from fedledger.orgnode.datasets import (
    commit_ids,
    current_commitment,
    dataset_path,
    read_samples,
    select_training,
    write_samples,
)
from fedledger.orgnode.evaluation import test_samples
from fedledger.orgnode.jobstore import JobStore, step_of
from fedledger.orgnode.ledger import LedgerUnavailable, OrgLedger, ledger_error
from fedledger.orgnode.modelhost import ModelHost
from fedledger.orgnode.models import (
    CommitmentRow,
    DatasetRow,
    DeletedSample,
    DeletionRow,
    Job,
    SubjectSample,
    utcnow,
)
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.protocol.records import (
    DataCommitment,
    DeletionRequest,
    NewCommitmentRoot,
    UnlearningNotice,
    UnlearningRecord,
)
from fedledger.web.errors import Conflict, NotFound, ServiceError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger("fedledger.orgnode.deletions")

UNFINISHED = ("filed", "executing", "replaying", "recording")
TRANSIENT = (CoordinatorUnavailable, LedgerUnavailable, FabricError)
#: Remaining training samples scored for the retain accuracy (evenly spread).
RETAIN_CAP = 64


class UnknownSamples(ServiceError):
    status, code = 422, "unknown_samples"


class FilingDeps(Protocol):
    """What filing a request needs of the node (the app's ``OrgNode`` has these)."""

    @property
    def settings(self) -> OrgNodeSettings: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def dataset_lock(self) -> threading.Lock: ...

    @property
    def ledger(self) -> OrgLedger: ...


# --------------------------------------------------------------------------- filing


def _history(row: DeletionRow, event: str, **fields: Any) -> None:
    row.history = [*row.history, {"at": utcnow().isoformat(), "event": event, **fields}]


def resolve_samples(session: Session, data_dir: Path, dataset: DatasetRow, *,
                    sample_ids: Sequence[str] | None, subject_id: str | None,
                    whole_dataset: bool) -> list[str]:
    """The sample ids a request covers; :class:`UnknownSamples` names every id that is
    not a sample of the dataset (nothing is changed)."""
    present = {s.sample_id for s in read_samples(dataset_path(data_dir, dataset.id))}
    erased = set(session.scalars(select(DeletedSample.sample_id).where(
        DeletedSample.dataset_id == dataset.id)))
    known = present | erased
    if whole_dataset:
        return sorted(known)
    if subject_id is not None:
        ids = sorted(session.scalars(select(SubjectSample.sample_id).where(
            SubjectSample.dataset_id == dataset.id, SubjectSample.subject_id == subject_id)))
        if not ids:
            raise UnknownSamples(f"data subject {subject_id!r} has no samples in dataset "
                                 f"{dataset.id}; nothing was changed",
                                 details={"subject_id": subject_id, "dataset_id": dataset.id})
        return ids
    unknown = sorted(set(sample_ids or ()) - known)
    if unknown:
        shown = ", ".join(repr(x) for x in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise UnknownSamples(f"{len(unknown)} sample id(s) are not samples of dataset "
                             f"{dataset.id}: {shown}{more}; nothing was changed",
                             details={"unknown": unknown[:1000], "dataset_id": dataset.id})
    return sorted(set(sample_ids or ()))


def file_request(node: FilingDeps, *, request_id: str | None, dataset_id: str,
                 sample_ids: Sequence[str] | None, subject_id: str | None, whole_dataset: bool,
                 legal_basis: str, requester: str) -> tuple[DeletionRow, bool]:
    """File a deletion request (see module docs). Returns the request and whether it is
    new: the same request again (same id, or same content) is the one filed before."""
    with node.dataset_lock, node.sessions() as session:
        dataset = session.get(DatasetRow, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} not found; nothing was changed",
                           details={"dataset_id": dataset_id})
        ids = resolve_samples(session, node.settings.data_dir, dataset, sample_ids=sample_ids,
                              subject_id=subject_id, whole_dataset=whole_dataset)
        content = {"dataset_id": dataset_id, "sample_ids": ids, "subject_id": subject_id,
                   "whole_dataset": whole_dataset, "legal_basis": legal_basis,
                   "requester": requester}
        digest = canonical_digest(content)
        request_id = request_id or f"del-{digest[:20]}"
        existing = session.get(DeletionRow, request_id)
        if existing is not None:
            if existing.content_digest != digest:
                raise Conflict(f"deletion request {request_id} already exists with other "
                               "content; nothing was changed", details={"request_id": request_id})
            return existing, False
        same = session.scalars(select(DeletionRow).where(DeletionRow.content_digest == digest)
                               ).first()
        if same is not None:
            return same, False
        gone = {d.sample_id: d.request_id for d in session.scalars(select(DeletedSample).where(
            DeletedSample.dataset_id == dataset_id, DeletedSample.sample_id.in_(ids)))}
        fresh = [sid for sid in ids if sid not in gone]
        if not fresh:
            raise Conflict(f"every sample of this request was deleted already (by request(s) "
                           f"{sorted(set(gone.values()))}); nothing was changed",
                           code="already_deleted",
                           details={"requests": sorted(set(gone.values()))})
        record = DeletionRequest(
            request_id=request_id, dataset_id=dataset_id, subject_id=subject_id,
            sample_ids=[] if whole_dataset else ids, whole_dataset=whole_dataset,
            legal_basis=legal_basis, requester=requester)
        try:
            tx_id = node.ledger.private.file_deletion_request(record).submit().tx_id
        except FabricError as exc:
            raise ledger_error(f"filing deletion request {request_id}", exc) from None
        row = DeletionRow(
            request_id=request_id, dataset_id=dataset_id, subject_id=subject_id,
            sample_ids=ids, whole_dataset=whole_dataset, legal_basis=legal_basis,
            requester=requester, content_digest=digest,
            notice_id=f"n-{canonical_digest({'org': node.settings.msp_id, 'request': request_id})[:24]}",
            status="filed", first_steps={}, affected_shards=[], coordinator={}, metrics={},
            timings={"filed_at": time.time()}, history=[])
        _history(row, "filed", tx_id=tx_id, samples=len(ids))
        if gone:
            _history(row, "already_deleted", samples=sorted(gone), by=sorted(set(gone.values())))
        session.add(row)
        session.add_all(DeletedSample(dataset_id=dataset_id, sample_id=sid, request_id=request_id)
                        for sid in fresh)
        session.commit()
        log.info("deletion request %s filed: %d sample(s) of %s", request_id, len(fresh),
                 dataset_id)
        return row, True


def set_subjects(node: FilingDeps, dataset_id: str, subjects: dict[str, list[str]]) -> int:
    """Map data subjects to samples of a dataset (kept on this node only). Every id must
    be a sample of the dataset; a sample belongs to one subject. Returns the count."""
    with node.dataset_lock, node.sessions() as session:
        dataset = session.get(DatasetRow, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} not found")
        wanted = [sid for ids in subjects.values() for sid in ids]
        if len(set(wanted)) != len(wanted):
            raise ServiceError("a sample can belong to one data subject only")
        resolve_samples(session, node.settings.data_dir, dataset, sample_ids=wanted, subject_id=None,
                        whole_dataset=False)
        for subject, ids in subjects.items():
            for sid in ids:
                row = session.get(SubjectSample, (dataset_id, sid))
                if row is None:
                    session.add(SubjectSample(dataset_id=dataset_id, sample_id=sid,
                                              subject_id=subject))
                else:
                    row.subject_id = subject
        session.commit()
        return len(wanted)


def deletion_public(row: DeletionRow) -> dict[str, Any]:
    return {"request_id": row.request_id, "dataset_id": row.dataset_id,
            "subject_id": row.subject_id, "sample_ids": row.sample_ids,
            "whole_dataset": row.whole_dataset, "legal_basis": row.legal_basis,
            "requester": row.requester, "status": row.status, "notice_id": row.notice_id,
            "affected_shards": row.affected_shards, "first_steps": row.first_steps,
            "coordinator": row.coordinator, "metrics": row.metrics, "timings": row.timings,
            "history": row.history, "error": row.error, "created": row.created_at.isoformat(),
            "updated": row.updated_at.isoformat()}


# --------------------------------------------------------------------------- execution


class DeletionDriver:
    """Advances this org's unfinished deletion requests (see module docs)."""

    def __init__(self, *, settings: OrgNodeSettings, sessions: sessionmaker[Session],
                 dataset_lock: threading.Lock, ledger: OrgLedger, coordinator: CoordinatorClient,
                 jobs: JobStore, host: ModelHost) -> None:
        self.settings = settings
        self.sessions = sessions
        self.dataset_lock = dataset_lock
        self.ledger = ledger
        self.coordinator = coordinator
        self.jobs = jobs
        self.host = host

    def advance_all(self) -> None:
        with self.sessions() as session:
            ids = list(session.scalars(select(DeletionRow.request_id).where(
                DeletionRow.status.in_(UNFINISHED)).order_by(DeletionRow.created_at)))
        for request_id in ids:
            self.advance(request_id)

    def advance(self, request_id: str) -> None:
        """As far as it goes now. Ledger and coordinator outages propagate (the worker
        retries); anything else fails the request with the reason."""
        while True:
            with self.sessions() as session:
                row = session.get(DeletionRow, request_id)
                if row is None:
                    return
                try:
                    if row.status == "filed":
                        self._execute(session, row)
                    elif row.status == "executing":
                        self._ask_consortium(session, row)
                    elif row.status == "replaying":
                        if not self._replayed(session, row):
                            return
                    elif row.status == "recording":
                        self._record(session, row)
                    else:
                        return
                except TRANSIENT:
                    raise
                except (CoordinatorRefused, LearningError, RuntimeError, ValueError,
                        KeyError) as exc:
                    row.status, row.error = "failed", f"{type(exc).__name__}: {exc}"
                    _history(row, "failed", error=row.error)
                    log.warning("deletion request %s failed: %s", request_id, row.error)
                finally:
                    # what committed on the ledger before a failure is kept
                    session.commit()

    # filed -> executing

    def _execute(self, session: Session, row: DeletionRow) -> None:
        dataset = session.get(DatasetRow, row.dataset_id)
        if dataset is None:
            raise RuntimeError(f"dataset {row.dataset_id} of request {row.request_id} is gone")
        mine = set(session.scalars(select(DeletedSample.sample_id).where(
            DeletedSample.request_id == row.request_id)))
        shards = sorted({self._shard(sid, dataset) for sid in mine})
        salt = bytes.fromhex(dataset.salt)
        gone = set(session.scalars(select(DeletedSample.sample_id).where(
            DeletedSample.dataset_id == row.dataset_id)))
        for shard in shards:
            current = current_commitment(session, row.dataset_id, shard)
            if current is None:
                raise RuntimeError(f"dataset {row.dataset_id} has no commitment of shard "
                                   f"{shard} (registered before commitments were kept)")
            if current.request_id == row.request_id:
                continue  # recorded before a restart
            ids = sorted(set(current.sample_ids) - gone)
            root = commit_ids(ids, salt)
            tx_id = self.ledger.private.record_commitment(DataCommitment(
                dataset_id=row.dataset_id, shard=shard, slice=current.slice, merkle_root=root,
                count=len(ids), supersedes=current.root)).submit().tx_id
            session.add(CommitmentRow(dataset_id=row.dataset_id, shard=shard,
                                      slice=current.slice, root=root, count=len(ids),
                                      sample_ids=ids, supersedes=current.root,
                                      request_id=row.request_id, tx_id=tx_id))
            _history(row, "commitment", shard=shard, root=root, supersedes=current.root,
                     tx_id=tx_id)
            session.flush()
        tx_id = self.ledger.private.update_deletion_request_status(
            row.request_id, "executing").submit().tx_id
        row.affected_shards = shards
        row.first_steps = {str(s): t for s, t in self.first_steps(session, row.dataset_id,
                                                                  shards).items()}
        row.status = "executing"
        _history(row, "executing", tx_id=tx_id, first_steps=row.first_steps)

    def _shard(self, sample_id: str, dataset: DatasetRow) -> int:
        return shard_of(sample_id, dataset.shards, self.settings.shard_key)

    def first_steps(self, session: Session, dataset_id: str, shards: Sequence[int]
                    ) -> dict[int, int]:
        """Per affected shard, the first step of its lineage in which this org trained on
        the dataset (any job that submitted an update with it, and any job still
        training, counts: replaying more than needed is still exact)."""
        first: dict[int, int] = {}
        for job in session.scalars(select(Job)):
            shard = int(job.round.get("shard", 0))
            if shard not in shards or job.status == "skipped":
                continue
            training = job.status in ("queued", "training")
            if not training and (job.update_hash is None or dataset_id not in (job.datasets or {})):
                continue
            step = step_of(job)
            first[shard] = min(first.get(shard, step), step)
        return first

    # executing -> replaying (or recording: nothing to replay)

    def _ask_consortium(self, session: Session, row: DeletionRow) -> None:
        client = self.coordinator
        steps = {int(s): t for s, t in row.first_steps.items()}
        if not steps:
            served = client.served_model()
            version = served.version_id if served else None
            row.coordinator = {"status": "done", "replay": False, "old_version": version,
                               "new_version": version, "replay_rounds": [], "plan": []}
            row.status = "recording"
            _history(row, "no_replay", reason="no lineage step used the data yet")
            return
        job = client.request_unlearning(row.notice_id, steps).model_dump(mode="json")
        row.coordinator = job
        row.status = "replaying"
        _history(row, "replay_requested", notice_id=row.notice_id, first_steps=row.first_steps)

    def _replayed(self, session: Session, row: DeletionRow) -> bool:
        job = self.coordinator.unlearning(row.notice_id).model_dump(mode="json")
        if job != row.coordinator:
            row.coordinator = job
        if job["status"] == "failed":
            row.status, row.error = "failed", f"the consortium's replay failed: {job['error']}"
            _history(row, "failed", error=row.error)
            return False
        if job["status"] != "done":
            return False
        row.status = "recording"
        _history(row, "replayed", new_version=job["new_version"],
                 replay_rounds=job["replay_rounds"])
        return True

    # recording -> completed

    def _record(self, session: Session, row: DeletionRow) -> None:
        job = row.coordinator
        old_version, new_version = job.get("old_version"), job.get("new_version")
        if not row.metrics:
            t0 = time.perf_counter()
            before, old_hash = self._score(session, row, old_version)
            after, new_hash = self._score(session, row, new_version)
            row.metrics = {"before": before, "after": after,
                           "old_model_hash": old_hash, "new_model_hash": new_hash}
            row.timings = {**row.timings, "metrics_s": time.perf_counter() - t0}
            session.flush()
        unlearning = self._unlearning_record(session, row)
        if not any(e["event"] == "unlearning_record" for e in row.history):
            tx_id = self.ledger.private.record_unlearning_record(unlearning).submit().tx_id
            _history(row, "unlearning_record", tx_id=tx_id)
        if job.get("replay") is not False and new_version and old_version and (
                new_version != old_version) and not any(e["event"] == "notice"
                                                        for e in row.history):
            notice = UnlearningNotice(
                notice_id=row.notice_id, org=self.settings.msp_id, round_id=self._next_round(),
                affected_shards=sorted(int(s) for s in row.first_steps),
                affected_rounds=unlearning.affected_rounds, old_version=old_version,
                new_version=new_version)
            tx_id = self.ledger.consortium.record_unlearning_notice(notice).submit().tx_id
            _history(row, "notice", tx_id=tx_id, round_id=notice.round_id)
        tx_id = self.ledger.private.update_deletion_request_status(
            row.request_id, "completed").submit().tx_id
        self._erase(session, row)
        row.status = "completed"
        row.timings = {**row.timings, "completed_at": time.time(),
                       "total_s": time.time() - row.timings.get("filed_at", time.time())}
        _history(row, "completed", tx_id=tx_id)
        log.info("deletion request %s completed (new version %s)", row.request_id, new_version)

    def _unlearning_record(self, session: Session, row: DeletionRow) -> UnlearningRecord:
        job = row.coordinator
        roots = [NewCommitmentRoot(dataset_id=c.dataset_id, shard=c.shard, slice=c.slice,
                                   root=c.root)
                 for c in session.scalars(select(CommitmentRow).where(
                     CommitmentRow.request_id == row.request_id).order_by(CommitmentRow.shard))]
        metrics = {f"{phase}_{k}": float(v) for phase in ("before", "after")
                   for k, v in row.metrics[phase].items()
                   if isinstance(v, (int, float)) and math.isfinite(v)}
        timings = {k: float(v) for k, v in (job.get("timings") or {}).items()
                   if k.endswith("_s") and isinstance(v, (int, float)) and math.isfinite(v)}
        timings["metrics_s"] = float(row.timings.get("metrics_s", 0.0))
        affected_rounds = sorted({i["of_round"] for i in job.get("plan") or []
                                  if i.get("of_round")})
        return UnlearningRecord(
            request_id=row.request_id, affected_shards=list(row.affected_shards),
            affected_rounds=affected_rounds, old_model_hash=row.metrics["old_model_hash"],
            new_model_hash=row.metrics["new_model_hash"], new_commitment_roots=roots,
            metrics=metrics, timings=timings)

    def _next_round(self) -> int:
        rounds = self.ledger.consortium.list_rounds()
        return max((r.round_id for r in rounds), default=0) + 1

    def _score(self, session: Session, row: DeletionRow, version_id: str | None
               ) -> tuple[dict[str, float], str]:
        """Verification metrics of a served version on this org's data, and its adapter
        digest (checked against the ledger's model version record)."""
        config = self.jobs.current_config()
        trainer = self.host.model(config)
        if version_id is None:
            state = trainer.initial_state
        else:
            version = self.ledger.consortium.get_model_version(version_id)
            data = self.coordinator.model_adapter(version_id,
                                                  max_bytes=self.settings.max_update_bytes * 64)
            if sha256_hex(data) != version.adapter_digest:
                raise RuntimeError(f"model version {version_id}: the coordinator's adapter "
                                   f"hashes to {sha256_hex(data)}, the ledger says "
                                   f"{version.adapter_digest}")
            spec = served_spec(trainer.spec, len(version.shard_adapters))
            state = load_update_bytes(data, spec, max_bytes=len(data))
        digest = sha256_hex(update_bytes(state))
        forget = self._forget_set(row)
        retain, test, labels = self._retain_and_test(session, config)
        task = build_task(config.train.task, trainer.tokenizer, labels, config.train.max_text_tokens)
        with served_adapter(trainer.model, config.lora, state):
            # a PeftModel forwards the PreTrainedModel interface unlearning_metrics uses
            scored = unlearning_metrics(cast("PreTrainedModel", trainer.model), task, forget=forget, retain=retain,
                                        test=test, batch_size=config.train.eval_batch_size,
                                        device=config.train.device)
        return scored.to_dict(), digest

    def _forget_set(self, row: DeletionRow) -> list[Sample]:
        mine = set(row.sample_ids)
        samples = read_samples(dataset_path(self.settings.data_dir, row.dataset_id))
        forget = [s for s in samples if s.sample_id in mine]
        if not forget:
            raise RuntimeError(f"the samples of request {row.request_id} are no longer "
                               "readable (erased before they were scored)")
        return forget

    def _retain_and_test(self, session: Session, config: ExperimentConfig
                         ) -> tuple[list[Sample], list[Sample], tuple[str, ...]]:
        rows = list(session.scalars(select(DatasetRow).order_by(DatasetRow.id)))
        deleted = {(d.dataset_id, d.sample_id) for d in session.scalars(select(DeletedSample))}
        datasets = [(r.id, read_samples(dataset_path(self.settings.data_dir, r.id)))
                    for r in rows]
        retain: list[Sample] = []
        for shard in range(self.settings.shards):
            retain += [s for _, s in select_training(
                datasets, config.data, shard=shard, shards=self.settings.shards,
                key=self.settings.shard_key, deleted=deleted)]
        retain.sort(key=lambda s: s.sample_id)
        test, labels = test_samples(self.sessions, self.settings.data_dir, config)
        return stride(retain, RETAIN_CAP), test, labels

    def _erase(self, session: Session, row: DeletionRow) -> None:
        """Remove the request's samples' text from the dataset file (ids stay in the
        database for proofs)."""
        mine = set(session.scalars(select(DeletedSample.sample_id).where(
            DeletedSample.request_id == row.request_id)))
        path = dataset_path(self.settings.data_dir, row.dataset_id)
        with self.dataset_lock:
            samples = read_samples(path)
            kept = [s for s in samples if s.sample_id not in mine]
            if len(kept) != len(samples):
                write_samples(path, kept)
