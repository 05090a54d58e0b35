"""What a validator of the committee checks in a candidate update, without knowing any
trigger (FLock's voters score by loss only; these checks add two that catch boosted and
flipped updates, which a loss on clean data can miss):

* **loss change**: the candidate's mean label loss on the validator's own held-out data
  minus the round's starting point's; a poisoned or broken update raises it;
* **norm ratio**: the update's L2 norm (``candidate - reference``) over the median norm
  of the round's candidates; a boosted (model-replacement) update stands out;
* **cosine** to the mean of the other candidates' updates; a sign-flipped update points
  away from the rest.

:func:`score_updates` measures the candidates (this module: torch); the vote itself and
the committee's verdict are :mod:`fedledger.learning.voting` (plain Python, so the bridge
and the coordinator decide outcomes without loading a model).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import torch
from peft import PeftModel

from fedledger.learning.data.records import Sample
from fedledger.learning.evaluation import evaluate
from fedledger.learning.lora import load_adapter_state
from fedledger.learning.tasks import Task
from fedledger.learning.voting import UpdateScore, VotingPolicy, committee_verdict, score_update

__all__ = ["UpdateScore", "VotingPolicy", "committee_verdict", "heldout_loss", "score_update",
           "score_updates", "update_geometry"]


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
