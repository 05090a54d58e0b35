"""What an org sees before a round, and the discrete state its Q-table is indexed by.

The signals are the org's own (docs/incentives.md, "What the agent sees"):

* ``step``: the round's step in its shard-group's lineage (1 = the first training of
  that model), i.e. how far training has come;
* ``gain``: the last measured change of the org's own test accuracy (the global model
  on its own data), ``None`` before two measurements;
* ``tokens``: net tokens of its last settled round on the Staking contract (rewards
  minus slashes);
* ``stake_ratio``: its stake now over the stake it wants (``None`` without staking);
* ``budget_left``: the share of its compute budget left (``None``: no budget).

Each is cut by :class:`~fedledger.incentives.config.StateBins`; the state is the tuple of
bin indexes and its key a short string (``"s1.g2.t2.k1.b2"``) that names a Q-table row.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from fedledger.incentives.config import StateBins

#: Feature names in key order, with their one-letter key prefixes.
FEATURES: tuple[tuple[str, str], ...] = (("step", "s"), ("gain", "g"), ("tokens", "t"),
                                         ("stake", "k"), ("budget", "b"))


@dataclass(frozen=True)
class Signals:
    step: int
    gain: float | None = None
    tokens: float = 0.0
    stake_ratio: float | None = None
    budget_left: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"step": self.step, "gain": self.gain, "tokens": self.tokens,
                "stake_ratio": self.stake_ratio, "budget_left": self.budget_left}


@dataclass(frozen=True)
class State:
    """Bin index per feature; ``gain`` is -1 while unknown."""

    step: int
    gain: int
    tokens: int
    stake: int
    budget: int

    @property
    def key(self) -> str:
        return ".".join(f"{prefix}{getattr(self, name)}" for name, prefix in FEATURES)

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name, _ in FEATURES}

    @classmethod
    def from_key(cls, key: str) -> State:
        parts = key.split(".")
        if len(parts) != len(FEATURES) or any(
                not p.startswith(prefix) for p, (_, prefix) in zip(parts, FEATURES, strict=True)):
            raise ValueError(f"not a state key: {key!r}")
        return cls(*(int(p[1:]) for p in parts))


def bin_index(value: float, edges: Sequence[float]) -> int:
    """0 below the first edge, i when ``edges[i-1] <= value < edges[i]``, len(edges) above."""
    return bisect.bisect_right(list(edges), value)


def encode(signals: Signals, bins: StateBins) -> State:
    """The discrete state of ``signals``. A missing stake counts as "at the wanted
    stake", a missing budget as "plenty left" (the top bins)."""
    if signals.step < 1:
        raise ValueError("step is 1-based")
    stake = (len(bins.stake_edges) if signals.stake_ratio is None
             else bin_index(signals.stake_ratio, bins.stake_edges))
    budget = (len(bins.budget_edges) if signals.budget_left is None
              else bin_index(signals.budget_left, bins.budget_edges))
    return State(step=bin_index(signals.step, bins.step_edges),
                 gain=-1 if signals.gain is None else bin_index(signals.gain, bins.gain_edges),
                 tokens=bin_index(signals.tokens, bins.token_edges),
                 stake=stake, budget=budget)
