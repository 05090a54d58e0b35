"""The round job state machine: each state's step, run as far as it goes now.

``queued`` -> ``training`` (:mod:`~fedledger.orgnode.training`) -> ``uploading``
(:mod:`~fedledger.orgnode.submission`) -> ``submitted`` (the validator's votes,
:mod:`~fedledger.orgnode.voting`, then :mod:`~fedledger.orgnode.attestation`) ->
``attested``, or ``failed`` with the reason. Each state is persisted before the next
step starts, and every step is idempotent, so a restarted node resumes where it stopped.
"""

from __future__ import annotations

import logging

from fedledger.clients.coordinator import CoordinatorClient, CoordinatorRefused, CoordinatorUnavailable
from fedledger.fabric.errors import FabricError
from fedledger.learning.errors import LearningError
from fedledger.orgnode.attestation import Attester
from fedledger.orgnode.jobstore import JobFailed, JobStore, Stopped, Wait
from fedledger.orgnode.ledger import LedgerUnavailable
from fedledger.orgnode.submission import SubmissionStep
from fedledger.orgnode.training import TrainingStep
from fedledger.orgnode.voting import Voter

log = logging.getLogger("fedledger.orgnode.worker")

#: A ledger write that keeps failing (e.g. the round's deadline passed) fails the job
#: after this many attempts; a transient outage is retried until then.
MAX_LEDGER_ATTEMPTS = 5


def decline_round(coordinator: CoordinatorClient, round_id: int, reason: str) -> None:
    """Tell the coordinator this org will not submit, so the round need not wait."""
    try:
        coordinator.decline(round_id, reason)
    except CoordinatorRefused as exc:  # the round moved on: nothing to wait for
        log.info("round %s: decline not recorded: %s", round_id, exc)


class JobRunner:
    def __init__(self, *, store: JobStore, training: TrainingStep, submission: SubmissionStep,
                 voter: Voter, attester: Attester) -> None:
        self.store = store
        self.training = training
        self.submission = submission
        self.voter = voter
        self.attester = attester
        self._ledger_failures: dict[int, int] = {}

    def advance(self, job_id: int) -> None:
        """Run the job as far as it can go now; transient errors propagate (backoff)."""
        while True:
            job = self.store.get(job_id)
            try:
                if job.status == "queued" or job.status == "training":
                    self.training.run(job)
                elif job.status == "uploading":
                    self.submission.run(job)
                elif job.status == "submitted":
                    self.voter.vote(job)
                    self.attester.attest(job)
                else:
                    return
            except Wait:
                return
            except JobFailed as exc:  # the store logs the change, with the reason
                self.store.update(job_id, status="failed", error=str(exc))
                return
            except CoordinatorRefused as exc:
                self.store.update(job_id, status="failed", error=str(exc))
                return
            except (CoordinatorUnavailable, Stopped):
                raise
            except (LedgerUnavailable, FabricError) as exc:
                count = self._ledger_failures.get(job_id, 0) + 1
                self._ledger_failures[job_id] = count
                if count >= MAX_LEDGER_ATTEMPTS:
                    self.store.update(job_id, status="failed",
                                      error=f"ledger refused after {count} attempts: {exc}")
                    return
                raise
            except (LearningError, ValueError, KeyError, FloatingPointError) as exc:
                self.store.update(job_id, status="failed", error=f"{type(exc).__name__}: {exc}")
                return
