"""One federated round, defined once: the initial adapter, the strategy with its
parameters (including the exact-LoRA rank rule), the seeds by name, local training and
aggregation of one round, and the scoring of an adapter.

Every runner uses this: the in-process simulation (:mod:`.simulation`), the SISA shard
lineages (:mod:`.unlearning.sisa`), the coordinator (which aggregates) and the org nodes
(which train and recompute the aggregate), so all of them start from the same adapter,
draw the same seeds and build the same strategy from a round config.

As in Flower, the strategy owns aggregation; this module owns what surrounds it for one
round, and never talks to a ledger or the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fedledger.learning.aggregation import AggregationResult, AggregationStrategy, ClientUpdate, build_strategy
from fedledger.learning.config import ExperimentConfig, LoraConfig, ModelConfig, TrainConfig
from fedledger.learning.data.records import Sample
from fedledger.learning.evaluation import EvalResult, evaluate
from fedledger.learning.lora import AdapterState, adapter_state, attach_lora
from fedledger.learning.models import load_base_model
from fedledger.learning.scaffold import Control, Controls, client_control, correction, server_control, zeros_like
from fedledger.learning.seeds import derive_seed
from fedledger.learning.server_optimizers import ServerOptimizer, ServerState, build_server_optimizer
from fedledger.learning.tasks import Task
from fedledger.learning.training import TrainResult, train_local
from fedledger.learning.updates import AdapterSpec

__all__ = [
    "InitialAdapter",
    "attach_initial_lora",
    "RoundDefinition",
    "RoundOutcome",
    "evaluate_adapter",
    "initial_adapter",
    "lora_init_seed",
    "round_strategy_params",
    "run_round",
    "shard_round_seed",
    "train_seed",
]


# ------------------------------------------------------------------ seeds by name


def lora_init_seed(seed: int) -> int:
    """The seed of the shared LoRA initialisation every party starts round 1 from."""
    return derive_seed(seed, "lora-init")


def train_seed(seed: int, round_no: int, org: str) -> int:
    """The training seed of ``org`` in round ``round_no`` of a plain (unsharded) federation."""
    return derive_seed(seed, "train", round_no, org)


def shard_round_seed(seed: int, shard: int, step: int, org: str) -> int:
    """The training seed of ``org`` in round ``step`` of shard-group ``shard``. Derived by
    name, never by a position that shifts when samples, orgs or rounds are removed, so a
    replayed round draws the same seed as the round it replaces (the services use it too)."""
    return derive_seed(seed, "sisa-train", f"shard={shard}", f"round={step}", f"org={org}")


# ------------------------------------------------------------------ strategy


def round_strategy_params(name: str, params: Mapping[str, Any] | None, lora_rank: int) -> dict[str, Any]:
    """The parameters a round builds strategy ``name`` with: the configured ones, and for
    ``exact_lora`` the configured LoRA rank unless one is given, so the next round trains
    the same adapter shape."""
    out = dict(params or {})
    if name == "exact_lora":
        out.setdefault("rank", lora_rank)
    return out


# ------------------------------------------------------------------ initial adapter


def round_server_optimizer(section: Mapping[str, Any] | None) -> ServerOptimizer | None:
    """The server optimizer a round config's ``server_optimizer`` section names (``{"name",
    "params"}``; absent: none), built the same way by the coordinator and every org."""
    if not section:
        return None
    return build_server_optimizer(section["name"], dict(section.get("params") or {}))


@dataclass(frozen=True)
class InitialAdapter:
    """The base model with the round-1 LoRA attached, and that adapter's state and layout."""

    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    state: AdapterState
    spec: AdapterSpec


def attach_initial_lora(model: PreTrainedModel, lora: LoraConfig, seed: int) -> PeftModel:
    """Wrap ``model`` with the federation's fresh LoRA (init seed :func:`lora_init_seed`)."""
    return attach_lora(model, lora, seed=lora_init_seed(seed))


def initial_adapter(model: ModelConfig, lora: LoraConfig, seed: int) -> InitialAdapter:
    """Load the base model and attach the initial LoRA: what every party of a federation
    with these ``model`` / ``lora`` / ``seed`` sections starts from."""
    loaded = load_base_model(model)
    peft_model = attach_initial_lora(loaded.model, lora, seed)
    state = adapter_state(peft_model)
    return InitialAdapter(peft_model, loaded.tokenizer, state, AdapterSpec.from_state_dict(state))


# ------------------------------------------------------------------ one round


@dataclass(frozen=True)
class RoundOutcome:
    """One round: the next global adapter, the strategy's result (None when no org took
    part: the start adapter is kept), each trained org's local result, and the server
    optimizer's state and SCAFFOLD's controls after the round (None without them)."""

    state: AdapterState
    aggregate: AggregationResult | None
    trained: dict[str, TrainResult] = field(default_factory=dict)
    server_state: ServerState | None = None
    #: SCAFFOLD's controls after the round (None without drift control)
    controls: Controls | None = None


@dataclass(frozen=True)
class RoundDefinition:
    """What every runner of a federation's rounds agrees on: the master seed, the LoRA
    and training sections, the strategy (name and parameters after the rank rule) and
    the server optimizer (``"none"``: the aggregate is the next adapter)."""

    seed: int
    lora: LoraConfig
    train: TrainConfig
    strategy_name: str
    strategy_params: Mapping[str, Any]
    server_optimizer_name: str = "none"
    server_optimizer_params: Mapping[str, Any] = field(default_factory=dict)
    drift_control: str = "none"

    @classmethod
    def of(cls, config: ExperimentConfig, *, train: TrainConfig | None = None) -> RoundDefinition:
        strategy = config.federation.strategy
        server = config.federation.server_optimizer
        return cls(
            seed=config.seed, lora=config.lora, train=train or config.train, strategy_name=strategy.name,
            strategy_params=round_strategy_params(strategy.name, strategy.params, config.lora.r),
            server_optimizer_name=server.name, server_optimizer_params=dict(server.params),
            drift_control=config.federation.drift_control,
        )

    def build_strategy(self) -> AggregationStrategy:
        return build_strategy(self.strategy_name, dict(self.strategy_params))

    def build_server_optimizer(self) -> ServerOptimizer | None:
        return build_server_optimizer(self.server_optimizer_name, dict(self.server_optimizer_params))

    def initial_adapter(self, model: ModelConfig) -> InitialAdapter:
        return initial_adapter(model, self.lora, self.seed)


def run_round(
    definition: RoundDefinition,
    strategy: AggregationStrategy,
    model: PeftModel,
    task: Task,
    start: AdapterState,
    data: Mapping[str, Sequence[Sample]],
    seeds: Mapping[str, int],
    *,
    server_state: ServerState | None = None,
    controls: Controls | None = None,
    descriptions: Mapping[str, str] | None = None,
    progress: bool = False,
) -> RoundOutcome:
    """Train every org of ``data`` (in its order) from ``start`` with its seed, aggregate
    their updates with ``strategy``, the round's start as reference, then take the server
    optimizer's step from ``start`` and ``server_state`` (the previous round's; None before
    the first). With SCAFFOLD each org's training is corrected by ``controls`` (the
    previous round's; None: zero) and the round returns the updated ones."""
    scaffold = definition.drift_control == "scaffold"
    if scaffold and controls is None:
        controls = Controls(zeros_like(start))
    updates: list[ClientUpdate] = []
    trained: dict[str, TrainResult] = {}
    changes: dict[str, Control] = {}
    clients = dict(controls.clients) if controls is not None else {}
    for org, samples in data.items():
        correction_of_org = None
        if scaffold and controls is not None:
            own = clients.get(org) or zeros_like(start)
            correction_of_org = correction(controls.server, own, start)
        result = train_local(
            model, task, samples, definition.train, start_state=start, seed=seeds[org], progress=progress,
            description=(descriptions or {}).get(org, org), drift_correction=correction_of_org,
        )
        if scaffold and controls is not None:
            updated = client_control(own, controls.server, start, result.state, steps=result.steps,
                                     lr=definition.train.learning_rate)
            changes[org] = {key: updated[key] - own[key] for key in updated}
            clients[org] = updated
        updates.append(ClientUpdate(client_id=org, tensors=result.state, num_samples=result.num_samples))
        trained[org] = result
    if not updates:
        return RoundOutcome(dict(start), None, trained, server_state, controls)
    aggregate = strategy.aggregate(updates, reference=start)
    if controls is not None:
        # Only accepted updates move the server's control: a rejected (e.g. poisoned)
        # org's control change is kept by that org alone.
        controls = Controls(server_control(controls.server,
                                           [changes[o] for o in aggregate.accepted if o in changes],
                                           federation_size=len(clients)), clients)
    server = definition.build_server_optimizer()
    if server is None:
        return RoundOutcome(aggregate.tensors, aggregate, trained, None, controls)
    stepped = server.step(start, aggregate.tensors, server_state)
    return RoundOutcome(stepped.tensors, aggregate, trained, stepped.state, controls)


# ------------------------------------------------------------------ evaluation


def evaluate_adapter(
    model: PeftModel, task: Task, samples: Sequence[Sample], train: TrainConfig
) -> EvalResult:
    """Score the adapter ``model`` holds on ``samples`` (the round's evaluation settings)."""
    return evaluate(model, task, list(samples), batch_size=train.eval_batch_size, device=train.device)
