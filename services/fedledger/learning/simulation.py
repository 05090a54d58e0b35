"""In-process federated simulation: N orgs x R rounds on one machine, no ledger.

Each round every org starts from the global adapter, trains locally on its own data,
and the configured aggregation strategy combines the updates into the next global
adapter. The global adapter of every round is saved in PEFT's format (the checkpoints
unlearning rolls back to), and the global model is scored after every round on the
union of the orgs' test sets, overall, per org and per domain.

The services run the same steps across processes; this runner is the reference they
are checked against.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from peft import PeftModel

from fedledger.learning.config import ExperimentConfig
from fedledger.learning.evaluation import EvalResult
from fedledger.learning.lora import AdapterState, adapter_config_dict, load_adapter_state
from fedledger.learning.orgdata import FederationData, prepare_federation_data
from fedledger.learning.round import RoundDefinition, evaluate_adapter, run_round, train_seed
from fedledger.learning.tasks import Task, build_task
from fedledger.learning.updates import save_adapter


@dataclass
class RoundRecord:
    """One round's outcome. ``accuracy`` and ``loss`` are None on rounds that were not
    scored (see ``FederationConfig.eval_every``)."""

    round: int
    accuracy: float | None
    loss: float | None
    per_org: dict[str, float]
    per_domain: dict[str, float]
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    train_loss: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class SimulationResult:
    name: str
    config: dict[str, Any]
    orgs: dict[str, dict[str, int]]
    rounds: list[RoundRecord]
    adapter_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rounds": [asdict(r) for r in self.rounds]}


@dataclass
class Federation:
    """The loaded pieces an experiment runs on, built once and reusable (benchmarks run
    several training regimes over one loaded model)."""

    config: ExperimentConfig
    model: PeftModel
    task: Task
    data: FederationData
    initial_state: AdapterState

    @classmethod
    def build(cls, config: ExperimentConfig) -> Federation:
        data = prepare_federation_data(config.data)
        initial = RoundDefinition.of(config).initial_adapter(config.model)
        task = build_task(config.train.task, initial.tokenizer, data.dataset.labels, config.train.max_text_tokens)
        return cls(config, initial.model, task, data, initial.state)

    def evaluate_state(self, state: AdapterState) -> tuple[EvalResult, dict[str, float]]:
        """Score an adapter on the union test set; also per org (its own test slice)."""
        load_adapter_state(self.model, state)
        result = evaluate_adapter(self.model, self.task, self.data.union_test(), self.config.train)
        owners = self.data.test_owner()
        per_org = {org: result.subset_accuracy([o == org for o in owners]) for org in self.data.org_names}
        return result, per_org


Callback = Callable[[RoundRecord], None]


def run_rounds(
    fed: Federation,
    *,
    rounds: int | None = None,
    progress: bool = False,
    on_round: Callback | None = None,
    adapter_dir: Path | None = None,
) -> tuple[AdapterState, list[RoundRecord]]:
    """Run the federated rounds from the initial adapter; returns the final global
    adapter and one record per round (round 0 = before training)."""
    config = fed.config
    definition = RoundDefinition.of(config)
    strategy = definition.build_strategy()
    global_state = fed.initial_state
    server_state = None  # the server optimizer's moments, carried round to round
    controls = None  # SCAFFOLD's controls, carried round to round
    records: list[RoundRecord] = []

    total = rounds or config.federation.rounds
    every = config.federation.eval_every

    def record(round_no: int, extra: dict[str, Any], seconds: float) -> None:
        if round_no % every == 0 or round_no == total:
            result, per_org = fed.evaluate_state(global_state)
            rec = RoundRecord(round_no, result.accuracy, result.loss, per_org, result.per_domain,
                              seconds=seconds, **extra)
        else:
            rec = RoundRecord(round_no, None, None, {}, {}, seconds=seconds, **extra)
        records.append(rec)
        if adapter_dir is not None:
            save_adapter(adapter_dir / f"round-{round_no:03d}", global_state, adapter_config_dict(fed.model))
        if on_round is not None:
            on_round(rec)

    record(0, {}, 0.0)
    for round_no in range(1, total + 1):
        started = time.perf_counter()
        orgs = fed.data.org_names
        outcome = run_round(
            definition, strategy, fed.model, fed.task, global_state,
            {org: fed.data.orgs[org].train for org in orgs},
            {org: train_seed(config.seed, round_no, org) for org in orgs},
            server_state=server_state, controls=controls,
            descriptions={org: f"round {round_no} {org}" for org in orgs}, progress=progress,
        )
        server_state, controls = outcome.server_state, outcome.controls
        # no org: the strategy refuses an empty round, as it always did
        aggregate = outcome.aggregate or strategy.aggregate([], reference=global_state)
        global_state = outcome.state
        losses = {org: result.mean_loss for org, result in outcome.trained.items()}
        record(round_no, {"accepted": list(aggregate.accepted), "rejected": dict(aggregate.rejected),
                          "train_loss": losses}, time.perf_counter() - started)
    return global_state, records


def run_simulation(
    config: ExperimentConfig, *, progress: bool = False, on_round: Callback | None = None
) -> SimulationResult:
    fed = Federation.build(config)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, records = run_rounds(fed, progress=progress, on_round=on_round, adapter_dir=out / "adapters")
    result = SimulationResult(
        name=config.name,
        config=config.model_dump(mode="json"),
        orgs={org: {"train": len(s.train), "val": len(s.val), "test": len(s.test)} for org, s in fed.data.orgs.items()},
        rounds=records,
        adapter_dir=str(out / "adapters"),
    )
    (out / "report.json").write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    return result
