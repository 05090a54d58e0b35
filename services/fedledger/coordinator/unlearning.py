"""Deletions across the consortium: drop at once, replay, then serve the new version.

An org that must forget samples tells the coordinator only an opaque notice id and, per
shard-group, the first step of the lineage that used the data (``POST /unlearning``);
samples and subjects never leave the org. The job then runs as the design says:

1. **drop** (when no round is in progress): an ``interim`` model version is registered
   and served at once: the merge of every shard adapter except the affected shards
   (exact: the other shards never saw the data);
2. **replay**: for each affected shard, from its first affected step to the last step
   of its lineage, a replay round is opened with the same shard, step and config as
   the round it replaces, the same participation record (the orgs of that step's first
   final round; an org without data left declines) and, at the org nodes, the same
   seeds; its base is the shard's (already replayed) adapter of the step before. A
   replay round that fails is opened again, up to ``MAX_ATTEMPTS`` times;
3. **new version**: when every replay round is final, the ``unlearned`` version (all
   shards, the replayed ones included) replaces the interim one.

One job runs at a time, in arrival order; normal rounds wait until none is pending.
Shards of any unfinished job stay out of every version served meanwhile.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fedledger.fabric.errors import FabricError
from fedledger.web.errors import Conflict, NotFound, ServiceError

from . import lineage
from .models import RoundRow, UnlearningJobRow, utcnow
from .rounds import ACTIVE, RoundService
from .versions import served_version

log = logging.getLogger(__name__)

#: Replay rounds of one step opened before the job gives up (an invited org that
#: neither submits nor declines makes an exact replay impossible).
MAX_ATTEMPTS = 3


class UnlearningService:
    """Deletion jobs: requests, and the loop's part (drop, replay, new version). Attaches
    itself to ``rounds`` so that a final replay round advances its job."""

    def __init__(self, rounds: RoundService) -> None:
        self.rounds = rounds
        rounds.on_replay_final = self.on_replay_final

    # ------------------------------------------------------------------ requests

    def request(self, org: str, notice_id: str, first_steps: dict[int, int]) -> tuple[int, bool]:
        """Record a deletion of ``org`` (id, True if new). The same notice id with the
        same steps again is the same job; with other steps, a conflict."""
        shards = self.rounds.shards
        bad = sorted(s for s in first_steps if not 0 <= s < shards)
        if bad:
            raise ServiceError(f"shard(s) {bad} do not exist: the federation has {shards} "
                               "shard-group(s)", code="invalid_shard", details={"shards": shards})
        steps = {str(s): int(t) for s, t in sorted(first_steps.items())}
        with self.rounds.lock, self.rounds.sessions() as session:
            existing = session.scalars(select(UnlearningJobRow).where(
                UnlearningJobRow.notice_id == notice_id)).first()
            if existing is not None:
                if existing.org != org or existing.first_steps != steps:
                    raise Conflict(f"deletion notice {notice_id} already exists with other "
                                   "data", details={"org": existing.org,
                                                    "first_steps": existing.first_steps})
                return existing.id, False
            now = time.time()
            job = UnlearningJobRow(notice_id=notice_id, org=org, status="pending",
                                   first_steps=steps, plan=[], timings={"requested_at": now},
                                   created_at=utcnow(), updated_at=utcnow())
            session.add(job)
            session.commit()
            log.info("deletion %s from %s: first steps %s", notice_id, org, steps)
            job_id = job.id
        self.rounds.wake.set()
        return job_id, True

    def get(self, session: Session, notice_id: str) -> UnlearningJobRow:
        job = session.scalars(select(UnlearningJobRow).where(
            UnlearningJobRow.notice_id == notice_id)).first()
        if job is None:
            raise NotFound(f"no deletion with notice id {notice_id}",
                           details={"notice_id": notice_id})
        return job

    # ------------------------------------------------------------------ the loop's part

    def tick(self) -> None:
        with self.rounds.lock, self.rounds.sessions() as session:
            try:
                self._tick(session)
                session.commit()
            except FabricError as exc:
                session.commit()
                log.warning("unlearning: ledger call failed, will retry: %s", exc)

    def _tick(self, session: Session) -> None:
        active = session.scalars(select(RoundRow).where(
            RoundRow.status.in_(ACTIVE))).first()
        if active is not None:
            return  # one round at a time; finality of a replay round is handled there
        job = session.scalars(select(UnlearningJobRow).where(
            UnlearningJobRow.status == "replaying").order_by(UnlearningJobRow.id)).first()
        if job is None:
            job = session.scalars(select(UnlearningJobRow).where(
                UnlearningJobRow.status == "pending").order_by(UnlearningJobRow.id)).first()
            if job is None:
                return
            self._start(session, job)
            if job.status != "replaying":
                return
        self._next_round(session, job)

    def _start(self, session: Session, job: UnlearningJobRow) -> None:
        """Plan the replay from the lineages as they are now, then serve the interim
        version (the affected shards left out)."""
        plan = []
        for shard_key, first in sorted(job.first_steps.items(), key=lambda kv: int(kv[0])):
            shard = int(shard_key)
            for row in lineage.steps_of(session, shard):
                if row.step >= first:
                    plan.append({"shard": shard, "step": row.step, "of_round": row.round_id,
                                 "invited": list(row.invited), "rounds": [],
                                 "status": "pending"})
        served = served_version(session)
        job.old_version = served.version_id if served else None
        job.plan = plan
        job.timings = {**job.timings, "started_at": time.time()}
        if not plan:
            # No step of any affected lineage used the data yet: nothing to forget.
            job.status, job.new_version = "done", job.old_version
            job.timings = {**job.timings, "drop_s": 0.0, "replay_s": 0.0,
                           "total_s": time.time() - job.timings["requested_at"]}
            job.updated_at = utcnow()
            log.info("deletion %s: no lineage step used the data; nothing to replay",
                     job.notice_id)
            return
        if served is not None:
            # Registered while the job is still pending: pending shards are left out.
            t0 = time.perf_counter()
            version_id, _ = self.rounds.versions.register(
                session, round_id=served.round_id, kind="interim", unlearning_id=job.id)
            job.interim_version = version_id
            job.timings = {**job.timings, "drop_s": time.perf_counter() - t0}
        job.status, job.updated_at = "replaying", utcnow()
        log.info("deletion %s: serving %s without shard(s) %s; %d replay round(s) planned",
                 job.notice_id, job.interim_version, sorted(job.first_steps), len(plan))

    def _next_round(self, session: Session, job: UnlearningJobRow) -> None:
        plan = copy.deepcopy(job.plan)
        item = next((i for i in plan if i["status"] != "done"), None)
        if item is None:
            return
        if item["rounds"]:
            last = session.get(RoundRow, item["rounds"][-1])
            if last is not None and last.status == "failed" and last.error and (
                    "every committee org declined" in last.error):
                # Nobody invited has data in this shard any more: the step carries the
                # adapter of the step before over, as a retrain without the data would.
                self._carry(session, job, plan, item)
                return
            if len(item["rounds"]) >= MAX_ATTEMPTS:
                job.status, job.updated_at = "failed", utcnow()
                job.error = (f"replay of shard {item['shard']} step {item['step']} failed "
                             f"{len(item['rounds'])} times (last: round {item['rounds'][-1]}: "
                             f"{last.error if last else 'missing'})")
                log.warning("deletion %s failed: %s", job.notice_id, job.error)
                return
        original = session.get(RoundRow, item["of_round"]) if item["of_round"] else None
        if original is not None:
            config = copy.deepcopy(original.config)
        else:
            config = self.rounds.round_config(shard=item["shard"], step=item["step"])
        config["replay"] = {"notice_id": job.notice_id, "of_round": item["of_round"]}
        round_id = self.rounds.create_round(
            session, shard=item["shard"], step=item["step"], config=config,
            committee=list(item["invited"]), quorum=1, deadline_s=None,
            replay_of=item["of_round"], unlearning_id=job.id)
        item["rounds"].append(round_id)
        item["status"] = "running"
        job.plan, job.updated_at = plan, utcnow()

    def _carry(self, session: Session, job: UnlearningJobRow, plan: list[dict[str, Any]],
               item: dict[str, Any]) -> None:
        # Nothing trained: the adapter and the server state stay those of the step before.
        shard, before = item["shard"], item["step"] - 1
        lineage.record_step(session, shard=shard, step=item["step"], round_id=None,
                            digest=lineage.adapter_at(session, shard, before),
                            included=item["invited"],
                            server_state_digest=lineage.server_state_at(session, shard, before))
        item["status"] = "done"
        job.plan, job.updated_at = plan, utcnow()
        self._finish_if_done(session, job, round_id=None)

    def on_replay_final(self, session: Session, row: RoundRow) -> None:
        """A replay round is final (its step is already in the lineage)."""
        job = session.get(UnlearningJobRow, row.unlearning_id)
        if job is None:
            raise RuntimeError(f"replay round {row.round_id} names no deletion job")
        plan = copy.deepcopy(job.plan)
        for item in plan:
            if row.round_id in item["rounds"]:
                item["status"] = "done"
        job.plan, job.updated_at = plan, utcnow()
        self._finish_if_done(session, job, round_id=row.round_id)

    def _finish_if_done(self, session: Session, job: UnlearningJobRow,
                        round_id: int | None) -> None:
        if any(i["status"] != "done" for i in job.plan):
            return
        job.status = "done"
        session.flush()  # its shards are no longer pending: the new version merges them
        if round_id is None:
            served = served_version(session)
            round_id = served.round_id if served else None
        if round_id is not None:
            version_id, _ = self.rounds.versions.register(
                session, round_id=round_id, kind="unlearned", unlearning_id=job.id)
            job.new_version = version_id
        now = time.time()
        started = job.timings.get("started_at", now)
        job.timings = {**job.timings, "replay_s": now - started - job.timings.get("drop_s", 0.0),
                       "total_s": now - job.timings.get("requested_at", started)}
        job.updated_at = utcnow()
        log.info("deletion %s done: new version %s", job.notice_id, job.new_version)
