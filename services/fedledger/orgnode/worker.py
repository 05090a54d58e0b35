"""The org node's round worker (docs/services.md "The org node's round worker").

One background thread polls ``GET /rounds/current``. For an open round it has not
handled it creates a job (or a ``skipped`` one: the org's participation decision,
``fedledger.orgnode.participation``, or not in the committee), then has the job state
machine (:mod:`fedledger.orgnode.jobs`) move every unfinished job as far as it goes,
and the deletion driver (:mod:`fedledger.orgnode.deletions`) its requests; in this one
thread, so training, scoring and unlearning never run at the same time.

The node also scores adapters on its own test split (``fedledger.orgnode.evaluation``):
the round's starting point before training (``metrics["base_accuracy"]``) and the
attested aggregate before the job is marked ``attested`` (``metrics["global_accuracy"]``,
``global_loss``, ``num_test``). A failed evaluation is recorded as
``metrics["eval_error"]`` and changes nothing else; these scores are not part of the
training record on the private channel.

While the coordinator or the ledger is unreachable the worker backs off and retries; the
consortium's round events wake it before its next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from fedledger.clients.coordinator import (
    CoordinatorClient,
    CoordinatorError,
    CoordinatorUnavailable,
)
from fedledger.fabric.errors import FabricError
from fedledger.fabric.gateway import Network
from fedledger.fabric.waker import EventWaker
from fedledger.loop import BackgroundLoop
from fedledger.orgnode.deletions import DeletionDriver
from fedledger.orgnode.jobs import JobRunner, decline_round
from fedledger.orgnode.jobstore import UNFINISHED, JobFailed, JobStore
from fedledger.orgnode.ledger import LedgerUnavailable
from fedledger.orgnode.models import Job, ModelVersionRow, Policy
from fedledger.orgnode.participation import Participation
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.web.metrics import JOB_TRANSITIONS

log = logging.getLogger("fedledger.orgnode.worker")

#: Consortium events after which the worker has something to do: a round to pick up, an
#: aggregate to recompute (published just after the close), a round outcome to follow.
WAKE_EVENTS = frozenset({"RoundOpened", "RoundClosed", "AggregateFinal",
                         "ModelVersionRegistered"})
FOLLOW_UP_POLL_S = 0.1


class RoundWorker:
    def __init__(self, settings: OrgNodeSettings, *, store: JobStore, jobs: JobRunner,
                 participation: Participation, deletions: DeletionDriver,
                 coordinator: CoordinatorClient, events: Network,
                 prepare: Callable[[], None], stopping: threading.Event) -> None:
        """``prepare`` runs before every poll (the ledger's ``Init``, the org's stake);
        ``stopping`` is the event the training step checks between steps."""
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.participation = participation
        self.deletions = deletions
        self.client = coordinator
        self.events = events
        self.prepare = prepare
        self._stop = stopping
        # Set by the ledger's round events (and by stop); the poll is the safety net.
        self.wake = threading.Event()
        self._waker: EventWaker | None = None
        self._loop = BackgroundLoop(self._poll, name=f"round-worker:{settings.org}",
                                    interval_s=settings.poll_s, wake=self.wake,
                                    stop_event=stopping, on_error=self._failed, join_s=60)
        self._failures = 0
        self.last_error: str | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self.settings.follow_events:
            self._waker = EventWaker(
                self.events, self.settings.chaincode, WAKE_EVENTS,
                self.wake, name=f"round-events:{self.settings.org}").start()
        self._loop.start()

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self.wake.set()
        if self._waker is not None:
            self._waker.stop()
        self._loop.stop(timeout)
        self.client.close()

    def _poll(self) -> float:
        """One step; the next comes after ``poll_s``, or soon while a wake-up's
        follow-up window (``follow_up_s``) lasts."""
        self.step()
        self._failures, self.last_error = 0, None
        woken = self._loop.last_woken
        if woken and time.monotonic() < woken + self.settings.follow_up_s:
            return min(self.settings.poll_s, FOLLOW_UP_POLL_S)
        return self.settings.poll_s

    def _failed(self, exc: Exception) -> float:
        """Back off (doubling up to ``max_backoff_s``) while a step keeps failing."""
        self._failures += 1
        delay = min(self.settings.poll_s * 2 ** self._failures, self.settings.max_backoff_s)
        previous = self.last_error
        if isinstance(exc, (CoordinatorUnavailable, LedgerUnavailable, FabricError)):
            self.last_error = str(exc)
            # Once per outage, not once per retry: the same error again is DEBUG.
            log.log(logging.WARNING if self.last_error != previous else logging.DEBUG,
                    "round worker: %s; retrying in %.1f s", exc, delay)
        else:  # the worker must outlive a bad step
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.log(logging.ERROR if self.last_error != previous else logging.DEBUG,
                    "round worker step failed; retrying in %.1f s", delay, exc_info=exc)
        return delay

    # --- one poll --------------------------------------------------------------------

    def step(self) -> None:
        """Advance unfinished jobs, then look at the coordinator's open round."""
        self.prepare()
        for job_id in self.store.ids(UNFINISHED):
            self.jobs.advance(job_id)
        current = self.client.current_round()
        if current is not None and current.status == "open":
            new_job = self._job_for(current.model_dump(mode="json"))
            if new_job is not None:
                self.jobs.advance(new_job)
        self.deletions.advance_all()
        self._refresh_versions()

    def _job_for(self, round_: dict[str, Any]) -> int | None:
        """The job of an open round: an unfinished existing one, or a new one as this
        org's participation decision says (``fedledger.orgnode.participation``: stored,
        recorded on the private channel, and for a skip the round declined)."""
        round_id = int(round_["round_id"])
        with self.store.sessions() as session:
            existing = session.scalar(select(Job).where(Job.round_id == round_id))
            if existing is not None:
                return existing.id if existing.status in UNFINISHED else None
            policy = session.get(Policy, 1)
            mode, rounds = (policy.mode, list(policy.rounds)) if policy else ("always", [])
        invited = self.settings.msp_id in round_.get("committee", [])
        if not invited:
            reason: str | None = (f"{self.settings.msp_id} is not in the committee of round "
                                  f"{round_id}")
        else:
            try:
                base_steps = self.store.config(Job(round_id=round_id, round=round_)
                                               ).train.local_steps
            except JobFailed:  # the job fails with the reason when it trains
                base_steps = self.settings.train.local_steps
            decision = self.participation.decide(round_, mode, rounds, base_steps)
            reason = decision.reason if decision.action == "skip" else None
            if reason:
                self.participation.confirm(round_id)  # no training to overlap it with
        with self.store.sessions() as session:
            job = Job(round_id=round_id, status="skipped" if reason else "queued",
                      progress=1.0 if reason else 0.0, error=reason, round=round_, metrics={},
                      datasets={})
            session.add(job)
            session.commit()
            JOB_TRANSITIONS.labels(job.status).inc()
            log.info("round %s job %s: new -> %s%s", round_id, job.id, job.status,
                     f" ({reason})" if reason else "")
        if reason and invited:
            decline_round(self.client, round_id, reason)
        return None if reason else job.id

    def _refresh_versions(self) -> None:
        """Fill in the model version id the coordinator registered for attested rounds."""
        with self.store.sessions() as session:
            pending = list(session.scalars(select(ModelVersionRow).where(
                ModelVersionRow.version_id.is_(None)).limit(5)))
            for row in pending:
                try:
                    version = self.client.get_round(row.round_id).version_id
                except CoordinatorError:
                    continue
                if version:
                    row.version_id = version
            session.commit()
