"""SISA over federated LoRA: S independent shard-group lineages, a served merge, and
exact deletion by rollback + replay.

Each org splits its training data into S shards (keyed hash of the sample id, see
:mod:`.shards`) and optionally slices introduced over rounds. Shard-group s is one
federated lineage across the orgs: every round, each participating org trains the
shard's global adapter on its own shard-s data only (the slices active by then), and
the strategy (FedAvg by default) combines them. Every round's global adapter of every
shard is kept (in memory, and as a PEFT folder plus ``lineage.json`` when a checkpoint
directory is given).

The served model is the exact average of the shard updates,
``delta W = (1/S) sum_s B_s A_s`` (or, with ``merge="sum"``, their sum), as one LoRA of
rank S r whose factors stack the shard factors (:func:`merge_shard_adapters`).

Deletion (``delete``): the shards holding the samples are dropped from the served merge
at once (exact: the merge of the others), their lineages are rolled back to the
checkpoint before the first round that used the samples, and those rounds are replayed
with the same orgs, seeds and participation record without the samples. Seeds are
derived by name (shard, round, org) and an org's batch order depends only on its own
remaining shard data (sorted by id), so the replayed adapters equal a retrain from
scratch without the samples, bit for bit on one machine.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, set_peft_model_state_dict

from fedledger.digests import sha256_hex
from fedledger.learning.aggregation import AggregationStrategy, scaled_lora_alpha
from fedledger.learning.config import ExperimentConfig, LoraConfig, ShardMerge
from fedledger.learning.data.records import Sample
from fedledger.learning.errors import LearningError
from fedledger.learning.evaluation import EvalResult
from fedledger.learning.lora import AdapterState, adapter_config_dict, load_adapter_state, peft_lora_config
from fedledger.learning.lora_keys import pair_lora_keys, shapes_rank
from fedledger.learning.round import RoundDefinition, evaluate_adapter, run_round, shard_round_seed
from fedledger.learning.scaffold import Controls
from fedledger.learning.server_optimizers import ServerState
from fedledger.learning.simulation import Federation
from fedledger.learning.unlearning.commitments import (
    CommitmentSet,
    SampleProof,
    build_commitments,
    org_salt,
    prove,
)
from fedledger.learning.unlearning.metrics import UnlearningMetrics, unlearning_metrics
from fedledger.learning.unlearning.shards import ShardScheme
from fedledger.learning.updates import AdapterSpec, save_adapter, update_bytes

LINEAGE_FILE = "lineage.json"


class UnknownSampleError(LearningError, KeyError):
    """A deletion request names an org or sample id that is not (training) data of the
    federation. Nothing was changed."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class SisaConfig:
    """shards: S; slices / slice_rounds: see :class:`ShardScheme`; shard_key: the
    per-deployment secret of the shard/slice hash; salt_secret: derives each org's
    commitment salt (see :func:`org_salt`; pass ``salts`` to SisaFederation instead in a
    real deployment); steps_per_shard: local steps of one org on one shard per round
    (None: ceil(local_steps / S), so total training compute matches S = 1); merge: how
    the served adapter combines the shard adapters (:func:`merge_shard_adapters`)."""

    shards: int = 4
    slices: int = 1
    slice_rounds: tuple[int, ...] | None = None
    shard_key: str = "fedledger-sisa"
    salt_secret: str = "fedledger-salt"
    steps_per_shard: int | None = None
    merge: ShardMerge = "mean"


@dataclass
class ShardRoundRecord:
    """Lineage of one checkpoint: the global adapter of ``shard`` after ``round``."""

    shard: int
    round: int
    version: int
    orgs: dict[str, int]  # participating org -> samples trained on
    seeds: dict[str, int]
    skipped: list[str]  # invited but no data in this shard (yet / any more)
    commitments: dict[str, dict[str, str]]  # org -> slice -> root (hex) of the ids used
    local_steps: int
    start_digest: str
    adapter_digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard, "round": self.round, "version": self.version, "orgs": self.orgs,
            "seeds": {k: str(v) for k, v in self.seeds.items()}, "skipped": self.skipped,
            "commitments": self.commitments, "local_steps": self.local_steps,
            "start_digest": self.start_digest, "adapter_digest": self.adapter_digest,
        }


@dataclass
class UnlearningResult:
    """The outcome of one deletion request."""

    requested: dict[str, list[str]]  # newly deleted ids per org
    already_deleted: dict[str, list[str]]  # ids of the request deleted earlier (no-op)
    affected_shards: list[int]  # shards whose adapters had used the samples
    first_round: dict[int, int]  # shard -> first replayed round
    replayed_rounds: dict[int, list[int]]
    old_version: int
    new_version: int
    old_served_digest: str
    dropped_served_digest: str  # served right after the drop (before replay)
    new_served_digest: str
    commitment_roots: dict[str, dict[str, dict[str, str]]]  # org -> shard -> slice -> hex
    timings: dict[str, float]  # drop_s, replay_s, total_s
    metrics: dict[str, dict[str, float | int]] = field(default_factory=dict)  # before/dropped/after

    @property
    def noop(self) -> bool:
        return not any(self.requested.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested, "already_deleted": self.already_deleted,
            "affected_shards": self.affected_shards,
            "first_round": {str(k): v for k, v in self.first_round.items()},
            "replayed_rounds": {str(k): v for k, v in self.replayed_rounds.items()},
            "old_version": self.old_version, "new_version": self.new_version,
            "old_served_digest": self.old_served_digest,
            "dropped_served_digest": self.dropped_served_digest,
            "new_served_digest": self.new_served_digest,
            "commitment_roots": self.commitment_roots, "timings": self.timings,
            "metrics": self.metrics, "noop": self.noop,
        }


def adapter_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the safetensors bytes (:func:`fedledger.learning.updates.update_bytes`)."""
    return sha256_hex(update_bytes(state))


def lora_rank(state: Mapping[str, torch.Tensor]) -> int:
    """The LoRA rank of an adapter state (its first ``lora_A`` factor's rows)."""
    return shapes_rank({key: tuple(value.shape) for key, value in state.items()})


def served_spec(spec: AdapterSpec, shards: int) -> AdapterSpec:
    """The layout of a merge of ``shards`` adapters of layout ``spec`` (rank ``shards r``):
    what a received served adapter is checked against. 0 shards: the base model, served
    as the LoRA init (``spec`` itself)."""
    if shards <= 1:
        return spec
    pairs, _ = pair_lora_keys(tuple(spec.shapes))
    shapes = dict(spec.shapes)
    for pair in pairs:
        rank, columns = shapes[pair.a_key]
        rows, _ = shapes[pair.b_key]
        shapes[pair.a_key] = (rank * shards, columns)
        shapes[pair.b_key] = (rows, rank * shards)
    return AdapterSpec(shapes, dtype=spec.dtype)


@contextmanager
def served_adapter(model: PeftModel, lora: LoraConfig, state: Mapping[str, torch.Tensor]
                   ) -> Iterator[None]:
    """Run ``model`` with a served adapter of any rank (a merge of shard adapters) inside
    the block; the training adapter (``default``) is active again after it."""
    rank = lora_rank(state)
    if rank == lora.r:
        model.set_adapter("default")
        load_adapter_state(model, state)
    else:
        name = f"sisa_served_r{rank}"
        if name not in model.peft_config:
            model.add_adapter(name, peft_lora_config(lora, r=rank))
        set_peft_model_state_dict(model, dict(state), adapter_name=name)
        model.set_adapter(name)
    try:
        yield
    finally:
        model.set_adapter("default")


def merge_shard_adapters(states: Sequence[Mapping[str, torch.Tensor]],
                         merge: ShardMerge = "mean") -> AdapterState:
    """The exact average of the LoRA products, ``(1/n) sum_s B_s A_s`` per module, as one
    LoRA of rank ``n r`` by stacking: ``A = [A_1; ...; A_n]``, ``B = [B_1 | ... | B_n] / n``,
    so ``B A = (1/n) sum_s B_s A_s``. ``merge="sum"``: the sum ``sum_s B_s A_s`` (no
    ``1/n``), i.e. every shard's update at full weight. Lossless, and no factorisation
    runs: the bytes depend only on the inputs and their order, so any party that holds
    the shard adapters recomputes the served adapter's digest exactly. Keys that are not
    LoRA factors are averaged. One state is returned as is (S = 1 is plain FedAvg)."""
    if not states:
        raise ValueError("nothing to merge")
    if merge not in ("mean", "sum"):
        raise ValueError(f"unknown shard merge {merge!r} (mean or sum)")
    if len(states) == 1:
        return {k: v.clone() for k, v in states[0].items()}
    keys = tuple(states[0])
    for i, state in enumerate(states[1:], start=1):
        if tuple(state) != keys:
            raise ValueError(f"shard adapter {i} has other tensor names than shard adapter 0")
    pairs, others = pair_lora_keys(keys)
    n = len(states)
    merged: AdapterState = {}
    for pair in pairs:
        merged[pair.a_key] = torch.cat([s[pair.a_key] for s in states], dim=0)
        stacked_b = torch.cat([s[pair.b_key] for s in states], dim=1)
        merged[pair.b_key] = stacked_b / n if merge == "mean" else stacked_b
    for key in others:
        merged[key] = torch.stack([s[key] for s in states]).mean(dim=0)
    return {k: merged[k] for k in keys}


class SisaFederation:
    """S shard-group lineages over one loaded :class:`Federation` (model, task, data).

    ``participation`` maps a round to the orgs invited to it (default: every org, every
    round); an invited org with no data in a shard that round is skipped (and recorded).
    ``deleted`` pre-removes sample ids per org (what a retrain from scratch uses).
    """

    def __init__(
        self,
        fed: Federation,
        sisa: SisaConfig | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        participation: Mapping[int, Sequence[str]] | None = None,
        salts: Mapping[str, bytes] | None = None,
        deleted: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.fed = fed
        self.config: ExperimentConfig = fed.config
        self.sisa = sisa or SisaConfig()
        self.rounds = self.config.federation.rounds
        self.scheme = ShardScheme(
            shards=self.sisa.shards, rounds=self.rounds, slices=self.sisa.slices,
            key=self.sisa.shard_key, slice_rounds=self.sisa.slice_rounds,
        )
        self.orgs: list[str] = list(fed.data.org_names)
        self.local_steps = self.sisa.steps_per_shard or max(
            1, math.ceil(self.config.train.local_steps / self.scheme.shards)
        )
        self._round = RoundDefinition.of(
            self.config, train=self.config.train.model_copy(update={"local_steps": self.local_steps})
        )
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.participation: dict[int, list[str]] = {
            r: list(participation[r]) if participation and r in participation else list(self.orgs)
            for r in range(1, self.rounds + 1)
        }
        for r, invited in self.participation.items():
            unknown = sorted(set(invited) - set(self.orgs))
            if unknown:
                raise ValueError(f"participation of round {r} names unknown org(s) {unknown}")
        self.salts: dict[str, bytes] = dict(salts) if salts else {
            org: org_salt(self.sisa.salt_secret, org) for org in self.orgs
        }
        # every training sample of every org, by id; the buckets never change, deletions
        # are a set of ids per org
        self._samples: dict[str, dict[str, Sample]] = {
            org: {s.sample_id: s for s in fed.data.orgs[org].train} for org in self.orgs
        }
        self._buckets: dict[str, dict[tuple[int, int], list[Sample]]] = {
            org: self.scheme.assign(fed.data.orgs[org].train) for org in self.orgs
        }
        self._deleted: dict[str, set[str]] = {org: set() for org in self.orgs}
        if deleted:
            for org, ids in deleted.items():
                self._deleted[org].update(ids)
        self.version = 0
        self._commitments: dict[int, CommitmentSet] = {0: self._commit(0)}
        self.rounds_done = 0
        self._strategy: AggregationStrategy = self._round.build_strategy()
        # shard -> round -> global adapter / lineage (round 0: the shared initial adapter)
        self._states: list[dict[int, AdapterState]] = [
            {0: dict(fed.initial_state)} for _ in range(self.scheme.shards)
        ]
        self._lineage: list[dict[int, ShardRoundRecord]] = [{} for _ in range(self.scheme.shards)]
        # shard -> round -> the server optimizer's state after it (None: none, or round 0),
        # so a replay from round r resumes from the state of round r - 1, as retraining would
        self._server_states: list[dict[int, ServerState | None]] = [
            {0: None} for _ in range(self.scheme.shards)
        ]
        # ... and SCAFFOLD's controls after it, for the same reason
        self._controls: list[dict[int, Controls | None]] = [
            {0: None} for _ in range(self.scheme.shards)
        ]
        for s in range(self.scheme.shards):
            self._lineage[s][0] = self._record(s, 0, {}, {}, [], fed.initial_state, fed.initial_state)
            self._save(s, 0)

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(cls, config: ExperimentConfig, sisa: SisaConfig | None = None, **kwargs: Any) -> SisaFederation:
        return cls(Federation.build(config), sisa, **kwargs)

    # ------------------------------------------------------------------ data views

    def remaining(self, org: str) -> list[Sample]:
        """The org's training samples not deleted, sorted by id."""
        gone = self._deleted[org]
        return sorted((s for sid, s in self._samples[org].items() if sid not in gone), key=lambda s: s.sample_id)

    def deleted(self, org: str) -> set[str]:
        return set(self._deleted[org])

    def shard_data(self, org: str, shard: int, round_no: int) -> list[Sample]:
        """What ``org`` trains shard ``shard`` on at ``round_no``: its remaining samples
        of the slices active by then, in slice order then id order. Depends only on the
        org's own remaining data."""
        gone = self._deleted[org]
        return [
            s
            for j in self.scheme.active_slices(round_no)
            for s in self._buckets[org][(shard, j)]
            if s.sample_id not in gone
        ]

    def _ids(self) -> dict[tuple[str, int, int], list[str]]:
        gone = self._deleted
        return {
            (org, s, j): [x.sample_id for x in bucket if x.sample_id not in gone[org]]
            for org in self.orgs
            for (s, j), bucket in self._buckets[org].items()
        }

    def _commit(self, version: int) -> CommitmentSet:
        return build_commitments(version, self._ids(), self.salts)

    # ------------------------------------------------------------------ commitments

    def commitments(self, version: int | None = None) -> CommitmentSet:
        return self._commitments[self.version if version is None else version]

    def prove(self, org: str, sample_id: str, version: int | None = None) -> SampleProof:
        """Membership proof if ``sample_id`` is committed in that version's
        (org, shard, slice) tree, else a non-membership proof."""
        return prove(
            self.commitments(version), org, self.scheme.shard_of(sample_id),
            self.scheme.slice_of(sample_id), sample_id,
        )

    # ------------------------------------------------------------------ training

    def seed(self, shard: int, round_no: int, org: str) -> int:
        return shard_round_seed(self.config.seed, shard, round_no, org)

    def _shard_round(self, shard: int, round_no: int) -> None:
        start = self._states[shard][round_no - 1]
        data: dict[str, list[Sample]] = {}
        skipped: list[str] = []
        for org in self.participation[round_no]:
            samples = self.shard_data(org, shard, round_no)
            if samples:
                data[org] = samples
            else:
                skipped.append(org)
        seeds = {org: self.seed(shard, round_no, org) for org in data}
        outcome = run_round(
            self._round, self._strategy, self.fed.model, self.fed.task, start, data, seeds,
            server_state=self._server_states[shard][round_no - 1],
            controls=self._controls[shard][round_no - 1],
            descriptions={org: f"shard {shard} round {round_no} {org}" for org in data},
        )
        self._server_states[shard][round_no] = outcome.server_state
        self._controls[shard][round_no] = outcome.controls
        counts = {org: len(samples) for org, samples in data.items()}
        state = outcome.state
        self._states[shard][round_no] = state
        self._lineage[shard][round_no] = self._record(shard, round_no, counts, seeds, skipped, start, state)
        self._save(shard, round_no)

    def train(self, rounds: int | None = None) -> None:
        """Run rounds ``rounds_done + 1 .. rounds`` (default: all) of every shard."""
        target = self.rounds if rounds is None else rounds
        if not 0 <= target <= self.rounds:
            raise ValueError(f"rounds must be within 0..{self.rounds}, got {target}")
        for round_no in range(self.rounds_done + 1, target + 1):
            for shard in range(self.scheme.shards):
                self._shard_round(shard, round_no)
            self.rounds_done = round_no

    def _record(self, shard, round_no, counts, seeds, skipped, start, state) -> ShardRoundRecord:
        commitments = self.commitments() if self._commitments else None
        roots: dict[str, dict[str, str]] = {}
        if commitments is not None and round_no > 0:
            for org in counts:
                roots[org] = {
                    str(j): commitments.root(org, shard, j).hex() for j in self.scheme.active_slices(round_no)
                }
        return ShardRoundRecord(
            shard=shard, round=round_no, version=self.version, orgs=dict(counts), seeds=dict(seeds),
            skipped=list(skipped), commitments=roots, local_steps=self.local_steps,
            start_digest=adapter_digest(start), adapter_digest=adapter_digest(state),
        )

    def checkpoint_path(self, shard: int, round_no: int) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        return self.checkpoint_dir / f"shard-{shard:02d}" / f"round-{round_no:03d}"

    def _save(self, shard: int, round_no: int) -> None:
        folder = self.checkpoint_path(shard, round_no)
        if folder is None:
            return
        if folder.exists():
            shutil.rmtree(folder)  # an overwritten checkpoint must not survive in part
        save_adapter(folder, self._states[shard][round_no], adapter_config_dict(self.fed.model))
        text = json.dumps(self._lineage[shard][round_no].to_dict(), indent=2, sort_keys=True) + "\n"
        (folder / LINEAGE_FILE).write_text(text, encoding="utf-8")

    # ------------------------------------------------------------------ states

    def shard_state(self, shard: int, round_no: int | None = None) -> AdapterState:
        return self._states[shard][self.rounds_done if round_no is None else round_no]

    def lineage(self, shard: int, round_no: int | None = None) -> ShardRoundRecord:
        return self._lineage[shard][self.rounds_done if round_no is None else round_no]

    def served_state(self, exclude: Iterable[int] = ()) -> AdapterState:
        """The served adapter: the exact product average of the current shard adapters
        not in ``exclude``. With every shard excluded: the initial adapter (B = 0, i.e.
        the base model)."""
        skip = set(exclude)
        keep = [self.shard_state(s) for s in range(self.scheme.shards) if s not in skip]
        if not keep:
            return dict(self.fed.initial_state)
        return merge_shard_adapters(keep, self.sisa.merge)

    def served_digest(self) -> str:
        return adapter_digest(self.served_state())

    def served_adapter_config(self, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """adapter_config.json of a served adapter of any rank (same alpha / r scale)."""
        cfg = adapter_config_dict(self.fed.model)
        rank = lora_rank(state)
        cfg["lora_alpha"] = scaled_lora_alpha(float(cfg["lora_alpha"]), int(cfg["r"]), rank)
        cfg["r"] = rank
        return cfg

    def save_served(self, folder: str | Path, state: Mapping[str, torch.Tensor] | None = None) -> Path:
        state = self.served_state() if state is None else state
        return save_adapter(folder, state, self.served_adapter_config(state))

    def evaluate_state(self, state: Mapping[str, torch.Tensor], samples: Sequence[Sample] | None = None) -> EvalResult:
        """Accuracy / loss of a (served) adapter, default on the union test set."""
        with served_adapter(self.fed.model, self.config.lora, state):
            return evaluate_adapter(
                self.fed.model, self.fed.task, list(samples) if samples is not None else self.fed.data.union_test(),
                self.config.train,
            )

    def metrics_of(
        self, state: Mapping[str, torch.Tensor], forget: Sequence[Sample], *, cap: int = 128
    ) -> UnlearningMetrics:
        """Unlearning metrics of ``state``: forget set vs a retain subset (remaining
        training samples, sorted by id, evenly strided to ``cap``) and the union test set
        (capped, also the MIA's held-out non-members)."""
        retain = [s for org in self.orgs for s in self.remaining(org)]
        test = self.fed.data.union_test()
        with served_adapter(self.fed.model, self.config.lora, state):
            return unlearning_metrics(
                self.fed.model, self.fed.task, forget=forget, retain=stride(retain, cap),
                test=stride(test, cap), batch_size=self.config.train.eval_batch_size,
                device=self.config.train.device,
            )

    # ------------------------------------------------------------------ deletion

    def delete(
        self, requests: Mapping[str, Iterable[str]], *, evaluate: bool = True, metric_cap: int = 128
    ) -> UnlearningResult:
        """Forget ``requests`` (org -> sample ids): drop the affected shards from the
        served merge, roll them back and replay without the samples.

        Raises :class:`UnknownSampleError`, changing nothing, when an org or id is not
        training data of this federation. Ids deleted earlier are reported in
        ``already_deleted`` and otherwise ignored (a repeated request is a no-op).
        """
        started = time.perf_counter()
        problems: list[str] = []
        new: dict[str, list[str]] = {}
        already: dict[str, list[str]] = {}
        for org, ids in requests.items():
            if org not in self._samples:
                problems.append(f"unknown org {org!r} (orgs: {self.orgs})")
                continue
            if isinstance(ids, str):
                ids = [ids]
            for sid in dict.fromkeys(ids):
                if sid in self._deleted[org]:
                    already.setdefault(org, []).append(sid)
                elif sid in self._samples[org]:
                    new.setdefault(org, []).append(sid)
                else:
                    problems.append(f"{sid!r} is not a training sample of org {org!r}")
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise UnknownSampleError(f"deletion request rejected, nothing changed: {shown}")

        old_version = self.version
        old_state = self.served_state()
        old_digest = adapter_digest(old_state)
        if not new:
            return UnlearningResult(
                requested={}, already_deleted=already, affected_shards=[], first_round={},
                replayed_rounds={}, old_version=old_version, new_version=old_version,
                old_served_digest=old_digest, dropped_served_digest=old_digest,
                new_served_digest=old_digest, commitment_roots=self.commitments().roots_nested(),
                timings={"drop_s": 0.0, "replay_s": 0.0, "total_s": time.perf_counter() - started},
            )

        forget = [self._samples[org][sid] for org, ids in new.items() for sid in ids]
        first: dict[int, int] = {}
        for sample in forget:
            t = self.scheme.first_round_of(sample.sample_id)
            if t <= self.rounds_done:  # a slice not trained on yet needs no replay
                s = self.scheme.shard_of(sample.sample_id)
                first[s] = min(first.get(s, t), t)
        metrics: dict[str, dict[str, float | int]] = {}
        if evaluate:
            metrics["before"] = self.metrics_of(old_state, forget, cap=metric_cap).to_dict()

        # (1) drop: the served model without the affected shards, at once
        t0 = time.perf_counter()
        dropped = self.served_state(exclude=first)
        drop_s = time.perf_counter() - t0
        dropped_digest = adapter_digest(dropped)

        # the new data version and its commitments
        for org, ids in new.items():
            self._deleted[org].update(ids)
        self.version += 1
        self._commitments[self.version] = self._commit(self.version)

        # (2) replay: roll back to the checkpoint before the first affected round
        t1 = time.perf_counter()
        replayed: dict[int, list[int]] = {}
        for shard in sorted(first):
            start_round = first[shard]
            for r in [r for r in self._states[shard] if r >= start_round]:
                del self._states[shard][r]  # checkpoints that saw the samples are gone
                self._server_states[shard].pop(r, None)  # and the server moments they fed
                self._controls[shard].pop(r, None)  # and SCAFFOLD's controls
            for round_no in range(start_round, self.rounds_done + 1):
                self._shard_round(shard, round_no)
            replayed[shard] = list(range(start_round, self.rounds_done + 1))
        replay_s = time.perf_counter() - t1

        # (3) the new served adapter
        new_state = self.served_state()
        if evaluate:
            if first:
                metrics["dropped"] = self.metrics_of(dropped, forget, cap=metric_cap).to_dict()
            metrics["after"] = self.metrics_of(new_state, forget, cap=metric_cap).to_dict()
        return UnlearningResult(
            requested=new, already_deleted=already, affected_shards=sorted(first),
            first_round=dict(sorted(first.items())), replayed_rounds=replayed,
            old_version=old_version, new_version=self.version, old_served_digest=old_digest,
            dropped_served_digest=dropped_digest, new_served_digest=adapter_digest(new_state),
            commitment_roots=self.commitments().roots_nested(),
            timings={"drop_s": drop_s, "replay_s": replay_s, "total_s": time.perf_counter() - started},
            metrics=metrics,
        )

    def retrain_from_scratch(self, *, checkpoint_dir: str | Path | None = None) -> SisaFederation:
        """A fresh federation over the same model, seeds, shard key, salts and
        participation record, without every sample deleted so far, trained to the same
        round: the reference the replay must equal."""
        other = SisaFederation(
            self.fed, self.sisa, checkpoint_dir=checkpoint_dir, participation=self.participation,
            salts=self.salts, deleted=self._deleted,
        )
        other.train(self.rounds_done)
        return other


def stride(samples: Sequence[Sample], cap: int) -> list[Sample]:
    """At most ``cap`` samples, evenly spaced (all of them when there are fewer)."""
    if len(samples) <= cap:
        return list(samples)
    step = len(samples) / cap
    return [samples[int(i * step)] for i in range(cap)]


def max_abs_diff(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    if set(a) != set(b):
        raise ValueError("states have different keys")
    return max((float((a[k].double() - b[k].double()).abs().max()) for k in a), default=0.0)
