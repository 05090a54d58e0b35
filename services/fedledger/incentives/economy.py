"""An economic simulator of the federation: many rounds fast, without training.

The global model's accuracy on each org's own data follows a parametric model of gain
versus participation and effort (docs/incentives.md, "The simulator"):

    E_i(t)     = (w_i e_i(t)^b + rho * sum_{j != i} w_j e_j(t)^b) / (w_i + rho * sum_{j != i} w_j)
    acc_i(t+1) = acc_i(t) + (A_i - acc_i(t)) * (1 - exp(-kappa * E_i(t)))

``e_j(t)`` is org j's effort in round t (its local steps over the round's base
``train.local_steps``: 0 for a skip, 0.5 / 1 / 1.5 for low / medium / high), ``w_j`` its
data weight, ``rho`` how much another org's data helps org i's domain (non-IID
transfer), ``A_i`` the accuracy the model can reach on org i's data and ``kappa`` the
speed. Returns diminish within a round (``b < 1``: more local steps drift further on
one org's data) and over rounds (the gap to ``A_i`` shrinks). Every org *observes* its
accuracy with Gaussian noise (a finite test split); welfare is computed on the true
accuracies.

Each participating org earns ``reward_tokens`` per round (what the Staking outcome pays
an accepted proposer); the simulator has no attackers, so nobody is slashed.
:func:`fit_gain_model` calibrates ``A_i`` and ``kappa`` on measured accuracy curves (a
real federated run), which makes the model a learned one for that deployment.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fedledger.incentives.config import ACTIONS, QLearningConfig
from fedledger.incentives.qlearning import affordable
from fedledger.incentives.reward import local_steps, round_reward, welfare
from fedledger.incentives.state import Signals


class EconomyConfig(BaseModel):
    """The simulated federation (its defaults are a small consortium of equal orgs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orgs: int = Field(default=4, ge=1, le=64, description="organizations")
    rounds: int = Field(default=12, ge=1, description="rounds per episode (one fine-tuning campaign)")
    base_steps: int = Field(default=10, ge=1, description="the rounds' train.local_steps (medium effort)")
    initial_accuracy: list[float] | float = Field(
        default=0.45, description="accuracy of the starting model on each org's data (one value or "
        "one per org)")
    ceiling: list[float] | float = Field(
        default=0.80, description="accuracy the federation can reach on each org's data (A_i)")
    kappa: float = Field(default=0.3, gt=0, description="learning speed: the gap to the ceiling "
                         "shrinks by exp(-kappa) per round of full (medium) effort")
    effort_exponent: float = Field(
        default=0.7, gt=0, le=1, description="beta: a round's effort counts as e ** beta, so local "
        "steps have diminishing returns within a round (client drift on non-IID data); "
        "1 = only the total number of steps matters")
    transfer: float = Field(default=0.5, ge=0, le=1, description="rho: how much another org's "
                            "training helps this org's domain (1 = as much as its own)")
    data_weights: list[float] | None = Field(default=None, description="w_i (None: equal)")
    noise: float = Field(default=0.01, ge=0, description="std of an org's measured accuracy")
    reward_tokens: float = Field(default=1.0, ge=0, description="tokens a participating org earns "
                                 "per round")
    budget_steps: int | None = Field(default=150, gt=0, description="local steps each org may spend "
                                     "per episode (None: no limit)")
    stake_tokens: float = Field(default=100.0, gt=0, description="each org's stake at the start")

    @model_validator(mode="after")
    def _lengths(self) -> EconomyConfig:
        for name in ("initial_accuracy", "ceiling", "data_weights"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != self.orgs:
                raise ValueError(f"{name} needs one value per org ({self.orgs})")
        for a0, a in zip(self.per_org(self.initial_accuracy), self.per_org(self.ceiling), strict=True):
            if not 0 <= a0 <= 1 or not 0 <= a <= 1:
                raise ValueError("accuracies are in [0, 1]")
        return self

    def per_org(self, value: list[float] | float | None, default: float = 1.0) -> list[float]:
        if value is None:
            return [default] * self.orgs
        return list(value) if isinstance(value, list) else [float(value)] * self.orgs


class GainModel:
    """The parametric accuracy dynamics of the module docs."""

    def __init__(self, config: EconomyConfig) -> None:
        self.config = config
        self.weights = config.per_org(config.data_weights)
        self.ceiling = config.per_org(config.ceiling)

    def effective_effort(self, efforts: Sequence[float]) -> list[float]:
        rho, w = self.config.transfer, self.weights
        efforts = [e ** self.config.effort_exponent for e in efforts]
        total = sum(wj * ej for wj, ej in zip(w, efforts, strict=True))
        out = []
        for _i, (wi, ei) in enumerate(zip(w, efforts, strict=True)):
            others_w = sum(w) - wi
            denominator = wi + rho * others_w
            out.append((wi * ei + rho * (total - wi * ei)) / denominator if denominator else 0.0)
        return out

    def step(self, accuracy: Sequence[float], efforts: Sequence[float]) -> list[float]:
        """Accuracies after one round in which org i spent ``efforts[i]``."""
        kappa = self.config.kappa
        return [a + (top - a) * (1 - math.exp(-kappa * e)) for a, top, e in
                zip(accuracy, self.ceiling, self.effective_effort(efforts), strict=True)]


@dataclass
class Observation:
    """What a policy is shown before a round. ``accuracy`` (the true accuracies) and
    ``last_efforts`` are for oracle baselines only; agents use ``signals``."""

    org: int
    step: int
    signals: Signals
    allowed: list[str]
    accuracy: list[float]
    last_efforts: list[float]


class Policy(Protocol):
    name: str

    def begin_episode(self, episode: int) -> None: ...

    def act(self, obs: Observation) -> str: ...

    def feedback(self, org: int, reward: float, next_obs: Observation | None) -> None: ...


@dataclass
class EpisodeResult:
    welfare: float
    compute: int
    gains: list[float]                 # true accuracy gain per org
    net_reward: list[float]            # per org: tokens + valued own gain - cost
    actions: dict[str, int]
    accuracy: list[float]              # mean true accuracy after each round (0 = start)
    per_round_actions: list[list[str]] = field(default_factory=list)


def run_episode(policy: Policy, config: EconomyConfig, agent: QLearningConfig, *,
                episode: int, seed: int) -> EpisodeResult:
    """One campaign of ``config.rounds`` rounds under ``policy`` (every org follows it).
    The measurement noise depends on (seed, episode) only, so policies compared on the
    same episodes see the same noise."""
    model = GainModel(config)
    rng = random.Random(f"economy:{seed}:{episode}")
    n, base, rcfg = config.orgs, config.base_steps, agent.reward
    accuracy = config.per_org(config.initial_accuracy)
    start = list(accuracy)
    measured = [a + rng.gauss(0, config.noise) for a in accuracy]
    last_gain: list[float | None] = [None] * n
    last_tokens = [0.0] * n
    stake = [config.stake_tokens] * n
    spent = [0] * n
    last_efforts = [1.0] * n
    budget = config.budget_steps
    earned, costs = [0.0] * n, [0.0] * n
    counts = dict.fromkeys(ACTIONS, 0)
    curve, per_round = [sum(accuracy) / n], []

    def observe(org: int, step: int) -> Observation:
        left = None if budget is None else budget - spent[org]
        signals = Signals(step=step, gain=last_gain[org], tokens=last_tokens[org],
                          stake_ratio=stake[org] / config.stake_tokens,
                          budget_left=None if left is None or budget is None else max(0.0, left / budget))
        return Observation(org, step, signals, affordable(left, base, agent), list(accuracy),
                           list(last_efforts))

    policy.begin_episode(episode)
    observations = [observe(i, 1) for i in range(n)]
    for step in range(1, config.rounds + 1):
        actions = []
        for i in range(n):
            action = policy.act(observations[i])
            if action not in observations[i].allowed:
                raise ValueError(f"{policy.name} chose {action!r}, not allowed "
                                 f"{observations[i].allowed}")
            actions.append(action)
        steps = [local_steps(a, base, agent.effort) for a in actions]
        efforts = [s / base for s in steps]
        accuracy = model.step(accuracy, efforts)
        rewards = []
        for i in range(n):
            counts[actions[i]] += 1
            tokens = config.reward_tokens if steps[i] else 0.0
            now = accuracy[i] + rng.gauss(0, config.noise)
            gain, measured[i] = now - measured[i], now
            rewards.append(round_reward(tokens, steps[i], gain, rcfg))
            spent[i] += steps[i]
            stake[i] += tokens
            earned[i] += tokens
            costs[i] += rcfg.compute_price * steps[i]
            last_gain[i], last_tokens[i] = gain, tokens
        last_efforts = efforts
        curve.append(sum(accuracy) / n)
        per_round.append(actions)
        last = step == config.rounds
        observations = [] if last else [observe(i, step + 1) for i in range(n)]
        for i in range(n):
            policy.feedback(i, rewards[i], None if last else observations[i])
    gains = [a - a0 for a, a0 in zip(accuracy, start, strict=True)]
    return EpisodeResult(
        welfare=welfare(gains, sum(spent), rcfg), compute=sum(spent), gains=gains,
        net_reward=[earned[i] + rcfg.gain_weight * gains[i] - costs[i] for i in range(n)],
        actions=counts, accuracy=curve, per_round_actions=per_round)


@dataclass(frozen=True)
class FittedModel:
    kappa: float
    initial_accuracy: list[float]
    ceiling: list[float]
    noise: float        # residual std of the fit
    rmse: float


def fit_gain_model(curves: Sequence[Sequence[float]], efforts: Sequence[Sequence[float]] | None
                   = None, *, transfer: float = 0.5) -> FittedModel:
    """Fit ``kappa`` (shared) and ``A_i`` (per org) to measured accuracy curves.

    ``curves[i][t]`` is org i's accuracy after t rounds (t = 0: the start);
    ``efforts[t][i]`` org i's effort in round t+1 (default: 1, everyone medium). For a
    given kappa the model is linear in ``A_i`` (acc_t = A (1 - P_t) + a_0 P_t with
    P_t = exp(-kappa sum E)), so ``A_i`` is solved in closed form and kappa by a grid
    search on the squared error."""
    n, rounds = len(curves), len(curves[0]) - 1
    if n == 0 or rounds < 1 or any(len(c) != rounds + 1 for c in curves):
        raise ValueError("curves need equal lengths of at least 2")
    efforts = efforts or [[1.0] * n for _ in range(rounds)]
    probe = GainModel(EconomyConfig(orgs=n, rounds=rounds, transfer=transfer,
                                    initial_accuracy=0.5, ceiling=0.5))
    cumulative = [[0.0] * n]
    for round_efforts in efforts:
        e = probe.effective_effort(round_efforts)
        cumulative.append([c + x for c, x in zip(cumulative[-1], e, strict=True)])
    best: tuple[float, float, list[float]] | None = None
    for k in range(1, 601):
        kappa = k * 0.005
        error, ceilings = 0.0, []
        for i, curve in enumerate(curves):
            a0 = curve[0]
            xs = [1 - math.exp(-kappa * cumulative[t][i]) for t in range(rounds + 1)]
            ys = [curve[t] - a0 * (1 - xs[t]) for t in range(rounds + 1)]
            denom = sum(x * x for x in xs)
            ceiling = sum(x * y for x, y in zip(xs, ys, strict=True)) / denom if denom else a0
            ceiling = min(1.0, max(0.0, ceiling))
            ceilings.append(ceiling)
            error += sum((a0 + (ceiling - a0) * x - y0) ** 2 for x, y0 in zip(xs, curve, strict=True))
        if best is None or error < best[0]:
            best = (error, kappa, ceilings)
    assert best is not None
    error, kappa, ceilings = best
    points = n * rounds  # the start of each curve is fitted exactly
    rmse = math.sqrt(error / points)
    return FittedModel(kappa=kappa, initial_accuracy=[c[0] for c in curves], ceiling=ceilings,
                       noise=rmse, rmse=rmse)
