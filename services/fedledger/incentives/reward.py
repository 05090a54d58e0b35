"""The agent's reward for one round, and the effort -> local steps mapping.

reward = tokens earned - compute_price x local steps + gain_weight x gain

``tokens`` is what the round moved on the org's stake (Staking rewards minus slashes,
in tokens); ``gain`` the change of its own test accuracy over the round (the global
model on its own data). Tokens are transfers between the orgs and the reward pool, so
they count for the org but not for welfare (:func:`welfare`).
"""

from __future__ import annotations

from collections.abc import Iterable

from fedledger.incentives.config import ACTIONS, EffortConfig, RewardConfig
from fedledger.incentives.errors import IncentiveConfigError


def local_steps(action: str, base_steps: int, effort: EffortConfig) -> int:
    """Local optimizer steps of ``action`` in a round whose config says ``base_steps``:
    0 for a skip, else ``multiplier x base_steps`` rounded half up, at least 1."""
    if action not in ACTIONS:
        raise IncentiveConfigError(f"unknown action {action!r} (one of {ACTIONS})")
    if action == "skip":
        return 0
    return max(1, int(effort.multiplier(action) * base_steps + 0.5))


def round_reward(tokens: float, steps: int, gain: float | None, config: RewardConfig) -> float:
    """The org's reward for one round (an unknown gain counts as none)."""
    return tokens - config.compute_price * steps + config.gain_weight * (gain or 0.0)


def tokens_of(wei: int, config: RewardConfig) -> float:
    return wei / config.token_wei


def welfare(gains: Iterable[float], steps: int, config: RewardConfig) -> float:
    """Total welfare: the orgs' accuracy gains on their own data (valued at
    ``gain_weight``) minus the compute all of them spent (at ``compute_price``)."""
    return config.gain_weight * sum(gains) - config.compute_price * steps
