"""The participation agent's settings (pydantic, with help text and checks).

They are the org's own choice, not the consortium's: each org is an independent agent
and decides how it weighs tokens, compute and model quality. The org node reads them
from its settings (``OrgNodeSettings.participation``); the economic simulator and the
benchmark build them directly.

Units: rewards are in *tokens* = wei / ``token_wei`` of the Staking contract; compute is
in local optimizer steps; accuracy in [0, 1] (``gain_weight`` tokens per 1.0, i.e.
``gain_weight / 100`` tokens per accuracy point).
"""

from __future__ import annotations

import itertools

from pydantic import Field, field_validator, model_validator

from fedledger.settings import FrozenSection

#: What an agent can do in a round: decline it, or train with one of three efforts.
ACTIONS: tuple[str, ...] = ("skip", "low", "medium", "high")
EFFORTS: tuple[str, ...] = ACTIONS[1:]


class EffortConfig(FrozenSection):
    """Local effort of each action, as a multiple of the round's ``train.local_steps``
    (a skip trains nothing: the org declines the round)."""

    low: float = Field(default=0.5, gt=0, le=10, description="local steps = low x train.local_steps")
    medium: float = Field(default=1.0, gt=0, le=10, description="... = medium x train.local_steps")
    high: float = Field(default=1.5, gt=0, le=10, description="... = high x train.local_steps")

    @model_validator(mode="after")
    def _ordered(self) -> EffortConfig:
        if not self.low <= self.medium <= self.high:
            raise ValueError("efforts must be ordered: low <= medium <= high")
        return self

    def multiplier(self, action: str) -> float:
        return 0.0 if action == "skip" else float(getattr(self, action))


class RewardConfig(FrozenSection):
    """reward = tokens earned - compute_price x local steps + gain_weight x gain, where
    gain is the change of the org's own test accuracy over the round."""

    token_wei: int = Field(default=10**15, gt=0, description="wei per token (the Staking contract's "
                           "rewards and slashes are divided by this)")
    compute_price: float = Field(default=0.1, ge=0, description="tokens one local optimizer step costs")
    gain_weight: float = Field(default=100.0, ge=0, description="tokens per unit of own accuracy "
                               "gain (100: one token per accuracy point)")


class StateBins(FrozenSection):
    """How the org's signals are cut into the discrete state of the Q-table. Each list
    holds increasing edges: a value gets the index of the last edge it reaches (0 below
    the first)."""

    step_edges: list[int] = Field(
        default_factory=lambda: [2, 4, 7, 10],
        description="the round's step in its lineage (how many rounds the model has been "
        "trained for, 1-based): a smaller step means a model with more left to learn")
    gain_edges: list[float] = Field(
        default_factory=lambda: [0.02],
        description="the last measured change of the org's own test accuracy (default: "
        "below 2 points, or more; a small test split measures with about that much noise)")
    token_edges: list[float] = Field(
        default_factory=lambda: [0.0, 1e-9],
        description="net tokens of the org's last settled round (slashed < 0 <= nothing < "
        "rewarded)")
    stake_edges: list[float] = Field(
        default_factory=lambda: [0.999],
        description="stake now / stake wanted (below, at or above)")
    budget_edges: list[float] = Field(
        default_factory=lambda: [0.1, 0.4],
        description="share of the compute budget left (unlimited budget: top bin)")

    @field_validator("step_edges", "gain_edges", "token_edges", "stake_edges", "budget_edges")
    @classmethod
    def _increasing(cls, edges: list) -> list:
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("edges must be strictly increasing")
        return edges


class QLearningConfig(FrozenSection):
    """Tabular Q-learning with epsilon-greedy exploration (docs/incentives.md)."""

    alpha: float = Field(default=0.1, gt=0, le=1, description="learning rate of the Q update")
    sample_average: bool = Field(
        default=True, description="the n-th update of an entry steps by max(alpha, 1/n): the plain "
        "average of its first 1/alpha targets, then alpha (noisy early targets and the "
        "initial value weigh no more than later ones); False: always alpha")
    gamma: float = Field(default=0.9, ge=0, lt=1, description="discount of future rewards")
    epsilon: float = Field(default=0.2, ge=0, le=1, description="exploration rate of the first decision")
    epsilon_min: float = Field(default=0.02, ge=0, le=1, description="exploration never decays below this")
    epsilon_decay: float = Field(default=0.95, gt=0, le=1, description="epsilon is multiplied by this "
                                 "after every decision")
    initial_q: float = Field(default=0.0, description="value of an action never tried")
    effort: EffortConfig = Field(default_factory=EffortConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    bins: StateBins = Field(default_factory=StateBins)
    budget_steps: int | None = Field(
        default=None, gt=0, description="local steps this org is willing to spend in all (None: no "
        "limit); actions it cannot afford any more are not chosen")
    settle_wait_rounds: int = Field(
        default=3, ge=0, description="a decision's reward waits for the Staking settlement of its "
        "round at most this many rounds, then counts the tokens seen so far")
    seed: int = Field(default=0, description="seed of the exploration draws (one draw per round)")

    @model_validator(mode="after")
    def _epsilons(self) -> QLearningConfig:
        if self.epsilon_min > self.epsilon:
            raise ValueError("epsilon_min must not exceed epsilon")
        return self
