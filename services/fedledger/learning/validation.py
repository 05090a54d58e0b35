"""What a validator of the committee checks in a candidate update, without knowing any
trigger (FLock's voters score by loss only; these checks add two that catch boosted and
flipped updates, which a loss on clean data can miss):

* **loss change**: the candidate's mean label loss on the validator's own held-out data
  minus the round's starting point's; a poisoned or broken update raises it;
* **norm ratio**: the update's L2 norm (``candidate - reference``) over the median norm
  of the round's candidates; a boosted (model-replacement) update stands out;
* **cosine** to the mean of the other candidates' updates; a sign-flipped update points
  away from the rest.

:func:`score_update` measures one candidate; :class:`VotingPolicy` turns the measures into
an accept/reject vote with the reasons; :func:`committee_verdict` combines the votes of
the committee. Pure functions of their inputs: the coordinator and every org node
compute the same verdict from the votes on the ledger.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
from peft import PeftModel

from fedledger.learning.data.records import Sample
from fedledger.learning.errors import ConfigError
from fedledger.learning.evaluation import evaluate
from fedledger.learning.lora import load_adapter_state
from fedledger.learning.tasks import Task


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


def _delta(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
           ) -> torch.Tensor:
    return torch.cat([(state[k].double() - reference[k].double()).flatten() for k in sorted(state)])


def update_geometry(updates: Mapping[str, Mapping[str, torch.Tensor]],
                    reference: Mapping[str, torch.Tensor]) -> dict[str, tuple[float, float, float | None]]:
    """Per org: (norm, norm / median norm, cosine to the mean of the other updates)."""
    deltas = {org: _delta(state, reference) for org, state in sorted(updates.items())}
    norms = {org: float(d.norm()) for org, d in deltas.items()}
    median = statistics.median(norms.values()) if norms else 0.0
    out = {}
    for org, d in deltas.items():
        others = [v for o, v in deltas.items() if o != org]
        cosine = None
        if others:
            mean = torch.stack(others).mean(dim=0)
            denominator = float(d.norm() * mean.norm())
            cosine = float(d @ mean) / denominator if denominator > 0 else 0.0
        ratio = norms[org] / median if median > 0 else (1.0 if norms[org] == 0 else math.inf)
        out[org] = (norms[org], ratio, cosine)
    return out


def heldout_loss(model: PeftModel, task: Task, samples: Sequence[Sample],
                 state: Mapping[str, torch.Tensor], *, batch_size: int, device: str) -> float:
    load_adapter_state(model, state)
    return float(evaluate(model, task, list(samples), batch_size=batch_size, device=device).loss)


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


def score_updates(model: PeftModel, task: Task, heldout: Sequence[Sample],
                  reference: Mapping[str, torch.Tensor],
                  updates: Mapping[str, Mapping[str, torch.Tensor]], policy: VotingPolicy, *,
                  batch_size: int = 32, device: str = "auto",
                  skip: Sequence[str] = ()) -> dict[str, UpdateScore]:
    """A validator's scores of every candidate but those in ``skip`` (its own)."""
    if not heldout:
        raise ValueError("a validator needs held-out samples to score updates on")
    geometry = update_geometry(updates, reference)
    base = heldout_loss(model, task, heldout, reference, batch_size=batch_size, device=device)
    scores = {}
    for org, state in sorted(updates.items()):
        if org in skip:
            continue
        loss = heldout_loss(model, task, heldout, state, batch_size=batch_size, device=device)
        norm, ratio, cosine = geometry[org]
        scores[org] = score_update(org, loss_reference=base, loss_candidate=loss, norm=norm,
                                   norm_ratio=ratio, cosine=cosine, policy=policy)
    return scores


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
