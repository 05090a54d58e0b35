"""Server optimizers: the step the server takes with a round's aggregate, treating
``aggregate - start`` as a pseudo-gradient (Reddi et al., "Adaptive Federated
Optimization", ICLR 2021; Hsu et al. 2019 for server momentum).

With start adapter ``x``, aggregate ``a`` (the output of the round's aggregation strategy,
FedAvg or a robust one) and pseudo-gradient ``d = a - x``, per tensor entry:

=============  ====================================================================
``fedavgm``    ``m = momentum * m + d``;                     ``x' = x + lr * m``
``fedadagrad`` ``m = b1 * m + (1 - b1) * d``;  ``v = v + d^2``;                    ``x' = x + lr * m / (sqrt(v) + tau)``
``fedadam``    ``m = b1 * m + (1 - b1) * d``;  ``v = b2 * v + (1 - b2) * d^2``;    same update
``fedyogi``    ``m = b1 * m + (1 - b1) * d``;  ``v = v - (1 - b2) * d^2 * sign(v - d^2)``; same update
=============  ====================================================================

As in the paper's Algorithm 2, there is no bias correction, ``m`` starts at 0 and ``v`` at
``tau^2``. The state (``m``, ``v``, and the step count) is an explicit value passed in and
returned, never kept on the optimizer: every org must be able to recompute the new global
adapter from the previous one, the previous state and the accepted updates, and a replay
for unlearning must reproduce it bit for bit. Each step runs in float32 per entry on CPU,
in key order, so it is deterministic.

The default ``none`` is no optimizer: the aggregate is the next adapter, bit for bit what
the strategy produced. A server optimizer needs the aggregate in the start adapter's
shape, so it cannot follow ``exact_lora`` (whose rank grows); that pairing is refused.

Defaults: ``fedavgm`` lr 1.0, momentum 0.9 (Hsu et al.); the adaptive ones b1 0.9, b2 0.99
and tau 1e-3 (the paper's grid), lr 1e-2: LoRA deltas of a few local AdamW steps are about
1e-3 per entry, so a normalized step of lr 1e-2 moves an entry a few times what FedAvg does
(the paper tunes lr per task; so should a deployment, see benchmarks/federated_vs_isolated.py).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from fedledger.learning.errors import ConfigError, LearningError
from fedledger.learning.updates import MAX_HEADER_BYTES, AdapterSpec, TensorLayout, load_tensor_bytes

__all__ = [
    "SERVER_OPTIMIZERS",
    "FedAdagrad",
    "FedAdam",
    "FedAvgM",
    "FedYogi",
    "ServerOptimizer",
    "ServerOptimizerError",
    "ServerState",
    "ServerStep",
    "build_server_optimizer",
    "server_optimizer_params",
]

#: Tensors of a server state: ``m/<key>`` and ``v/<key>`` per adapter key, and ``step``
#: (int64 scalar, rounds taken). Plain tensors, so the state is a safetensors file and
#: has a digest like any adapter.
ServerState = dict[str, torch.Tensor]

STEP_KEY = "step"


class ServerOptimizerError(LearningError, ValueError):
    """A server optimizer cannot take this step (bad parameters, a state or aggregate
    that does not match the start adapter)."""


@dataclass(frozen=True)
class ServerStep:
    """The next global adapter and the state to start the next round from."""

    tensors: dict[str, torch.Tensor]
    state: ServerState


@dataclass(frozen=True)
class ServerOptimizer(ABC):
    """A pure server step: ``step(start, aggregate, state) -> ServerStep``."""

    name: ClassVar[str]
    #: the state's moment tensors, by prefix, in the order they are kept
    moments: ClassVar[tuple[str, ...]]

    lr: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ServerOptimizerError(f"{self.name}: {f.name} must be a finite number, not {value!r}")
        if self.lr <= 0:
            raise ServerOptimizerError(f"{self.name}: lr must be > 0, not {self.lr}")

    def initial_state(self, start: Mapping[str, torch.Tensor]) -> ServerState:
        """The state before round 1: zero moments (``v`` at ``tau^2``), step 0."""
        state: ServerState = {STEP_KEY: torch.zeros((), dtype=torch.int64)}
        for key in sorted(start):
            for moment in self.moments:
                state[f"{moment}/{key}"] = torch.full_like(
                    start[key], self._initial(moment), dtype=torch.float32, device="cpu")
        return state

    def _initial(self, moment: str) -> float:
        return 0.0

    def state_layout(self, adapter: AdapterSpec) -> TensorLayout:
        """What a state of an adapter with layout ``adapter`` holds: a float32 moment per
        adapter tensor and moment, and the int64 scalar step."""
        layout: dict[str, tuple[tuple[int, ...], str]] = {STEP_KEY: ((), "I64")}
        for key, shape in adapter.shapes.items():
            for moment in self.moments:
                layout[f"{moment}/{key}"] = (shape, "F32")
        return layout

    def state_max_bytes(self, adapter: AdapterSpec) -> int:
        """The largest state file of this layout: its exact data size (float32 moments, the
        int64 step) plus the largest header a safetensors file may have."""
        moments = sum(4 * math.prod(shape) for shape in adapter.shapes.values()) * len(self.moments)
        return 8 + MAX_HEADER_BYTES + moments + 8

    def load_state_bytes(self, data: bytes, adapter: AdapterSpec) -> ServerState:
        """A received state (safetensors bytes, e.g. the coordinator's blob) checked against
        :meth:`state_layout` like an untrusted update (UpdateRejectedError, size capped at
        :meth:`state_max_bytes`), then for a non-negative step."""
        state = load_tensor_bytes(data, self.state_layout(adapter),
                                  max_bytes=self.state_max_bytes(adapter))
        if int(state[STEP_KEY]) < 0:
            raise ServerOptimizerError(f"{self.name}: server state step is {int(state[STEP_KEY])}")
        return state

    def step(self, start: Mapping[str, torch.Tensor], aggregate: Mapping[str, torch.Tensor],
             state: ServerState | None) -> ServerStep:
        """Move ``start`` along ``aggregate - start``; ``state`` None is the initial one."""
        if set(aggregate) != set(start):
            raise ServerOptimizerError(f"{self.name}: the aggregate's keys differ from the start "
                                       "adapter's")
        state = self.initial_state(start) if state is None else state
        self._check_state(start, state)
        out: dict[str, torch.Tensor] = {}
        new_state: ServerState = {STEP_KEY: state[STEP_KEY] + 1}
        for key in sorted(start):
            x, a = start[key], aggregate[key]
            if a.shape != x.shape:
                raise ServerOptimizerError(
                    f"{self.name}: aggregate {key} has shape {tuple(a.shape)}, the start adapter "
                    f"{tuple(x.shape)} (a server optimizer cannot follow a rank-changing "
                    "strategy such as exact_lora)")
            x32 = x.detach().to("cpu", torch.float32)
            d = a.detach().to("cpu", torch.float32) - x32
            moments = {m: state[f"{m}/{key}"] for m in self.moments}
            move, updated = self._update(d, moments)
            out[key] = (x32 + self.lr * move).to(x.dtype)
            new_state.update({f"{m}/{key}": t for m, t in updated.items()})
        return ServerStep(out, new_state)

    def _check_state(self, start: Mapping[str, torch.Tensor], state: ServerState) -> None:
        expected = {STEP_KEY} | {f"{m}/{k}" for k in start for m in self.moments}
        if set(state) != expected:
            missing = sorted(expected - set(state))[:1]
            extra = sorted(set(state) - expected)[:1]
            raise ServerOptimizerError(
                f"{self.name}: the server state does not fit the adapter ("
                + (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}") + ")")
        step = state[STEP_KEY]
        if step.dtype != torch.int64 or step.shape != () or int(step) < 0:
            raise ServerOptimizerError(f"{self.name}: server state step must be a non-negative "
                                       f"int64 scalar, not {step.dtype} {tuple(step.shape)}")
        for key in start:
            for m in self.moments:
                t = state[f"{m}/{key}"]
                if t.shape != start[key].shape or t.dtype != torch.float32:
                    raise ServerOptimizerError(f"{self.name}: server state {m}/{key} is "
                                               f"{t.dtype} {tuple(t.shape)}, expected float32 "
                                               f"{tuple(start[key].shape)}")

    @abstractmethod
    def _update(self, d: torch.Tensor, moments: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The direction to move (before ``lr``) and the new moments, for one tensor."""


@dataclass(frozen=True)
class FedAvgM(ServerOptimizer):
    """Server momentum (Hsu et al. 2019): ``m = momentum * m + d``, ``x += lr * m``."""

    name: ClassVar[str] = "fedavgm"
    moments: ClassVar[tuple[str, ...]] = ("m",)

    lr: float = 1.0
    momentum: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.momentum < 1:
            raise ServerOptimizerError(f"fedavgm: momentum must be in [0, 1), not {self.momentum}")

    def _update(self, d: torch.Tensor, moments: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = self.momentum * moments["m"] + d
        return m, {"m": m}


@dataclass(frozen=True)
class _Adaptive(ServerOptimizer):
    """What FedAdagrad, FedAdam and FedYogi share: first moment, ``lr * m / (sqrt(v) + tau)``."""

    moments: ClassVar[tuple[str, ...]] = ("m", "v")

    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        for label, value in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0 <= value < 1:
                raise ServerOptimizerError(f"{self.name}: {label} must be in [0, 1), not {value}")
        if self.tau <= 0:
            raise ServerOptimizerError(f"{self.name}: tau must be > 0, not {self.tau}")

    def _initial(self, moment: str) -> float:
        return self.tau * self.tau if moment == "v" else 0.0

    def _update(self, d: torch.Tensor, moments: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = self.beta1 * moments["m"] + (1 - self.beta1) * d
        v = self._second(moments["v"], d * d)
        return m / (torch.sqrt(v) + self.tau), {"m": m, "v": v}

    @abstractmethod
    def _second(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class FedAdagrad(_Adaptive):
    """``v = v + d^2``."""

    name: ClassVar[str] = "fedadagrad"

    def _second(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return v + d2


@dataclass(frozen=True)
class FedAdam(_Adaptive):
    """``v = b2 * v + (1 - b2) * d^2``."""

    name: ClassVar[str] = "fedadam"

    def _second(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1 - self.beta2) * d2


@dataclass(frozen=True)
class FedYogi(_Adaptive):
    """``v = v - (1 - b2) * d^2 * sign(v - d^2)``: ``v`` grows only as fast as ``d^2``
    does, so a few large pseudo-gradients do not shrink every later step (Zaheer et al.)."""

    name: ClassVar[str] = "fedyogi"

    def _second(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return v - (1 - self.beta2) * d2 * torch.sign(v - d2)


SERVER_OPTIMIZERS: dict[str, type[ServerOptimizer]] = {
    cls.name: cls for cls in (FedAvgM, FedAdagrad, FedAdam, FedYogi)
}

#: The name of "no server optimizer" in configs: the aggregate is the next adapter.
NONE = "none"


def server_optimizer_params(name: str) -> dict[str, Any]:
    """Parameter names of server optimizer ``name`` with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(_lookup(name))}


def build_server_optimizer(name: str, params: Mapping[str, Any] | None = None
                           ) -> ServerOptimizer | None:
    """The server optimizer ``name`` (None for ``"none"``); unknown names or parameters
    raise :class:`ConfigError` listing the valid ones."""
    if name == NONE:
        if params:
            raise ConfigError(f"server optimizer 'none' takes no parameters, got {sorted(params)}")
        return None
    accepted = server_optimizer_params(name)
    unknown = sorted(set(params or {}) - set(accepted))
    if unknown:
        raise ConfigError(f"server optimizer {name!r} has no parameter {unknown[0]!r} "
                          f"(valid parameters: {', '.join(sorted(accepted))})")
    return _lookup(name)(**dict(params or {}))


def _lookup(name: str) -> type[ServerOptimizer]:
    try:
        return SERVER_OPTIMIZERS[name]
    except (KeyError, TypeError):
        known = ", ".join([NONE, *sorted(SERVER_OPTIMIZERS)])
        raise ConfigError(f"unknown server optimizer {name!r} (known: {known})") from None
