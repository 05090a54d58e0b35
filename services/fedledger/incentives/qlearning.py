"""Tabular Q-learning with epsilon-greedy exploration: one agent per org.

Update rule (Watkins): after taking ``a`` in state ``s``, receiving reward ``r`` and
seeing the next state ``s'``,

    Q(s, a) <- Q(s, a) + alpha_n * (r + gamma * max_a' Q(s', a') - Q(s, a))

with ``max_a'`` over the actions allowed in ``s'``, no bootstrap term when the episode
ended (``s'`` is None), and ``alpha_n = max(alpha, 1/n)`` for the entry's n-th update
(``sample_average``; else ``alpha``): a sample average of the first targets, then a
constant step that keeps following a changing environment (the other orgs learn too).

Exploration: with probability ``epsilon_n = max(epsilon_min, epsilon *
epsilon_decay ** n)`` (``n`` = decisions made before) a uniformly random allowed
action, else the best allowed one (ties broken by the same random draw). Every draw
comes from a generator seeded by (seed, org, round), so a restarted node makes the same
decision again.

The Q-table lives behind :class:`QStore` (in memory here; in the org node's database in
``fedledger.orgnode.participation``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fedledger.incentives.config import ACTIONS, QLearningConfig
from fedledger.incentives.errors import IncentiveConfigError, NoAllowedAction
from fedledger.incentives.reward import local_steps


class QStore(Protocol):
    """Where Q-values and visit counts are kept; a missing entry is never visited."""

    def get(self, state: str) -> dict[str, tuple[float, int]]:
        """action -> (value, visits) of the entries of ``state`` that exist."""
        ...

    def put(self, state: str, action: str, value: float, visits: int) -> None: ...


@dataclass
class QTable:
    """An in-memory :class:`QStore`."""

    entries: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)

    def get(self, state: str) -> dict[str, tuple[float, int]]:
        return dict(self.entries.get(state, {}))

    def put(self, state: str, action: str, value: float, visits: int) -> None:
        self.entries.setdefault(state, {})[action] = (float(value), int(visits))

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        return {s: {a: [v, n] for a, (v, n) in sorted(acts.items())}
                for s, acts in sorted(self.entries.items())}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Sequence[float]]]) -> QTable:
        return cls({s: {a: (float(v[0]), int(v[1])) for a, v in acts.items()}
                    for s, acts in data.items()})


def draw_rng(seed: int, *parts: object) -> random.Random:
    """A generator seeded by name (sha256 of ``seed:part:...``): reproducible across
    processes, unlike ``hash()``."""
    material = ":".join([str(seed), *map(str, parts)]).encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))


def td_target(reward: float, next_values: Iterable[float] | None, gamma: float) -> float:
    """r + gamma * max Q(s', .), or r at the end of an episode."""
    if next_values is None:
        return reward
    return reward + gamma * max(next_values)


def q_update(value: float, target: float, alpha: float) -> float:
    return value + alpha * (target - value)


def step_size(config: QLearningConfig, update: int) -> float:
    """The step of an entry's ``update``-th update (1-based)."""
    if config.sample_average:
        return max(config.alpha, 1.0 / max(1, update))
    return config.alpha


@dataclass(frozen=True)
class Choice:
    action: str
    explored: bool
    epsilon: float
    q_values: dict[str, float]


class QAgent:
    def __init__(self, config: QLearningConfig, store: QStore) -> None:
        self.config = config
        self.store = store

    def epsilon(self, decisions: int) -> float:
        """Exploration rate after ``decisions`` earlier decisions."""
        c = self.config
        return max(c.epsilon_min, c.epsilon * c.epsilon_decay ** max(0, decisions))

    def values(self, state: str, allowed: Sequence[str] = ACTIONS) -> dict[str, float]:
        stored = self.store.get(state)
        return {a: stored[a][0] if a in stored else self.config.initial_q for a in allowed}

    def choose(self, state: str, *, decisions: int, rng: random.Random,
               allowed: Sequence[str] = ACTIONS, explore: bool = True) -> Choice:
        """Epsilon-greedy over ``allowed`` (``explore=False``: greedy)."""
        allowed = _check(allowed)
        values = self.values(state, allowed)
        epsilon = self.epsilon(decisions) if explore else 0.0
        # Both draws are always made, so the generator's state does not depend on the
        # branch taken (reproducible whatever the Q-values).
        u, pick = rng.random(), rng.random()
        if u < epsilon:
            return Choice(allowed[int(pick * len(allowed))], True, epsilon, values)
        best = max(values.values())
        ties = [a for a in allowed if values[a] == best]
        return Choice(ties[int(pick * len(ties))], False, epsilon, values)

    def learn(self, state: str, action: str, reward: float, next_state: str | None,
              next_allowed: Sequence[str] = ACTIONS) -> float:
        """One Q update; returns the new Q(state, action)."""
        _check([action])
        stored = self.store.get(state)
        value, visits = stored.get(action, (self.config.initial_q, 0))
        next_values = (None if next_state is None
                       else self.values(next_state, _check(next_allowed)).values())
        new = q_update(value, td_target(reward, next_values, self.config.gamma),
                       step_size(self.config, visits + 1))
        self.store.put(state, action, new, visits + 1)
        return new

    def greedy(self, state: str, allowed: Sequence[str] = ACTIONS) -> str:
        """The best allowed action (first in ACTIONS order on ties)."""
        values = self.values(state, _check(allowed))
        return max(allowed, key=lambda a: (values[a], -ACTIONS.index(a)))


def _check(actions: Sequence[str]) -> list[str]:
    actions = list(actions)
    if not actions:
        raise NoAllowedAction("no action is allowed")
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise IncentiveConfigError(f"unknown action(s) {unknown} (one of {ACTIONS})")
    return actions


def affordable(budget_left_steps: float | None, base_steps: int, config: QLearningConfig
               ) -> list[str]:
    """The actions whose local steps fit in what is left of the budget (skip always)."""
    if budget_left_steps is None:
        return list(ACTIONS)
    return [a for a in ACTIONS
            if local_steps(a, base_steps, config.effort) <= budget_left_steps]
