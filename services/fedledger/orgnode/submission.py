"""``uploading`` -> ``submitted``: the update streamed to the coordinator, then
``SubmitUpdate`` on the consortium and ``RecordTrainingRecord`` on the private channel,
in one block each. The signed submission record is stored with the job first, so a
retry sends identical bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fedledger.digests import sha256_hex
from fedledger.ledgers import submit_together
from fedledger.orgnode.evaluation import EVAL_KEYS
from fedledger.orgnode.jobstore import JobStore, Wait
from fedledger.orgnode.ledger import OrgLedger
from fedledger.orgnode.modelhost import ModelHost
from fedledger.orgnode.models import Job
from fedledger.orgnode.training import TrainingData, ledger_round
from fedledger.protocol.records import Submission, TrainingRecord


class UpdateSink(Protocol):
    """Where updates are uploaded (the coordinator)."""

    def put_update(self, round_id: int, path: Path, sha256: str, num_samples: int, /) -> str: ...


class SubmissionStep:
    def __init__(self, *, msp_id: str, store: JobStore, data: TrainingData, host: ModelHost,
                 ledger: OrgLedger, uploads: UpdateSink,
                 confirm_decision: Callable[[int], None]) -> None:
        self.msp_id = msp_id
        self.store = store
        self.data = data
        self.host = host
        self.ledger = ledger
        self.uploads = uploads
        self.confirm_decision = confirm_decision

    def run(self, job: Job) -> None:
        ledger = self.ledger
        self.confirm_decision(job.round_id)  # committed while this org trained
        path = self.store.update_path(job.round_id)
        if not path.exists() or sha256_hex(path.read_bytes()) != job.update_hash:
            self.store.update(job.id, status="training")  # the file is gone: retrain
            raise Wait()
        assert job.update_hash is not None and job.num_samples is not None  # set by training
        submission = job.submission
        on_ledger = {s.org: s for s in ledger.consortium.list_submissions(job.round_id)}
        mine = on_ledger.get(self.msp_id)
        if mine is None or mine.update_hash != job.update_hash:
            # Not recorded yet, so maybe not uploaded either (the upload comes first).
            self.uploads.put_update(job.round_id, path, job.update_hash, job.num_samples)
        if submission is None:
            round_ = ledger_round(ledger, job)
            loaded = self.host.model(self.store.config(job))
            shard = round_.shard
            # What the org signs: the record without its signature.
            unsigned: dict[str, Any] = {"round_id": job.round_id, "org": self.msp_id,
                                        "shard": shard, "update_hash": job.update_hash,
                                        "num_samples": job.num_samples,
                                        "update_spec_digest": loaded.spec.digest(),
                                        "commitment_roots": self.data.commitment_roots(
                                            shard, list(job.datasets))}
            signed = Submission(**unsigned, signature=ledger.sign_hex(unsigned))
            self.store.update(job.id, submission=signed.model_dump(mode="json"))
        else:
            signed = Submission.model_validate(submission)  # stored: the same bytes again
        metrics = {k: float(v) for k, v in job.metrics.items()
                   if k != "seconds" and k not in EVAL_KEYS}
        # One block on each channel, not one after another: the submission and the
        # training records write keys of their own (all idempotent on a retry).
        submit_together([ledger.consortium.submit_update(signed)] + [
            ledger.private.record_training_record(TrainingRecord(
                round_id=job.round_id, shard=signed.shard, dataset_id=dataset_id,
                num_samples=count, steps=int(job.metrics.get("steps", 0)),
                update_hash=job.update_hash, metrics=metrics))
            for dataset_id, count in sorted(job.datasets.items())])
        self.store.update(job.id, status="submitted", progress=0.9)
