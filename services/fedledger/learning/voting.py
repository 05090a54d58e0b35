"""A validator's vote and the committee's verdict, from measures alone (plain Python:
the coordinator, every org node and the bridge compute the same verdict from the votes
on the ledger without loading a model; the measuring is
:mod:`fedledger.learning.validation`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from fedledger.learning.errors import ConfigError


@dataclass(frozen=True)
class VotingPolicy:
    """Thresholds of a validator's vote (help text: ``docs/defense.md``)."""

    max_loss_increase: float = 0.05
    max_norm_ratio: float = 3.0
    min_cosine: float = -0.2

    def __post_init__(self) -> None:
        if self.max_norm_ratio <= 1:
            raise ConfigError("max_norm_ratio must exceed 1 (the median update has ratio 1)")
        if not -1 <= self.min_cosine <= 1:
            raise ConfigError("min_cosine must lie in [-1, 1]")
        if not math.isfinite(self.max_loss_increase):
            raise ConfigError("max_loss_increase must be finite")


@dataclass(frozen=True)
class UpdateScore:
    org: str
    loss_reference: float
    loss_candidate: float
    norm: float
    norm_ratio: float
    cosine: float | None
    accept: bool
    reasons: tuple[str, ...] = field(default=())

    @property
    def loss_delta(self) -> float:
        return self.loss_candidate - self.loss_reference

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "loss_delta": self.loss_delta, "reasons": list(self.reasons)}


def score_update(org: str, *, loss_reference: float, loss_candidate: float, norm: float,
                 norm_ratio: float, cosine: float | None, policy: VotingPolicy) -> UpdateScore:
    """The vote on one candidate from its measures."""
    reasons = []
    if not math.isfinite(loss_candidate) or loss_candidate - loss_reference > policy.max_loss_increase:
        reasons.append(f"loss on held-out data rose by {loss_candidate - loss_reference:.4f} "
                       f"(> {policy.max_loss_increase})")
    if norm_ratio > policy.max_norm_ratio:
        reasons.append(f"update norm {norm_ratio:.2f}x the median (> {policy.max_norm_ratio})")
    if cosine is not None and cosine < policy.min_cosine:
        reasons.append(f"cosine {cosine:.3f} to the other updates (< {policy.min_cosine})")
    return UpdateScore(org=org, loss_reference=loss_reference, loss_candidate=loss_candidate,
                       norm=norm, norm_ratio=norm_ratio, cosine=cosine, accept=not reasons,
                       reasons=tuple(reasons))


def committee_verdict(votes: Mapping[str, Mapping[str, bool]], candidates: Sequence[str]
                      ) -> dict[str, bool]:
    """``votes``: validator -> target -> accept. A candidate is rejected when more of the
    votes cast on it reject than accept; without votes, or on a tie, it is accepted (no
    majority against it)."""
    verdict = {}
    for target in candidates:
        cast = [v[target] for v in votes.values() if target in v]
        verdict[target] = sum(cast) * 2 >= len(cast)
    return verdict
