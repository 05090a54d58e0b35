"""Verification metrics of an unlearning request.

* forget-set loss and accuracy: how well the served model still fits the deleted samples;
* retain and test accuracy: what the deletion cost in quality;
* membership-inference AUC of a loss-threshold attack: the score of a sample is its
  negative loss, forget-set samples are the positives and held-out samples (never
  trained on) the negatives. 0.5 means the attacker cannot tell them apart; a model that
  memorised the forget set scores above 0.5. Rank-based (Mann-Whitney U) with ties
  counted one half, no sklearn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from fedledger.learning.batching import lm_batch, target_log_probs
from fedledger.learning.data.records import Sample
from fedledger.learning.device import autocast, resolve_device
from fedledger.learning.evaluation import label_log_probs
from fedledger.learning.tasks import ClassificationTask, Task


def rank_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(score of a positive > score of a negative) + 0.5 P(tie), via average ranks."""
    n_pos, n_neg = len(positives), len(negatives)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative score")
    scored = sorted([(float(v), 1) for v in positives] + [(float(v), 0) for v in negatives])
    rank_sum = 0.0
    i = 0
    while i < len(scored):
        j = i
        while j + 1 < len(scored) and scored[j + 1][0] == scored[i][0]:
            j += 1
        average_rank = (i + j) / 2.0 + 1.0  # ranks are 1-based
        rank_sum += average_rank * sum(label for _, label in scored[i : j + 1])
        i = j + 1
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def membership_auc(member_losses: Sequence[float], nonmember_losses: Sequence[float]) -> float:
    """AUC of the loss-threshold attack: score = -loss, members positive."""
    return rank_auc([-x for x in member_losses], [-x for x in nonmember_losses])


@torch.no_grad()
def per_sample_losses(
    model: torch.nn.Module, task: Task, samples: Sequence[Sample], *, batch_size: int = 32,
    device: str = "auto",
) -> tuple[list[float], list[bool]]:
    """Per-sample loss (NLL of the gold label; LM: mean token NLL) and correctness
    (classification; all False for LM)."""
    dev = resolve_device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    losses: list[float] = []
    correct: list[bool] = []
    try:
        encoded = [task.encode(s) for s in samples]
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            if isinstance(task, ClassificationTask):
                scores = label_log_probs(model, task, chunk, dev)
                gold = torch.tensor([it.label_index for it in chunk])
                losses.extend((-scores[torch.arange(len(chunk)), gold]).tolist())
                correct.extend((scores.argmax(dim=1) == gold).tolist())
            else:
                batch = lm_batch(chunk, task.tokenizer.pad_token_id).to(dev)
                with autocast(dev):
                    logits = model(**batch.inputs, logits_to_keep=batch.keep).logits
                picked, mask = target_log_probs(logits, batch.targets)
                per_row = -(picked.sum(dim=1) / mask.sum(dim=1).clamp(min=1))
                losses.extend(per_row.float().cpu().tolist())
                correct.extend([False] * len(chunk))
    finally:
        model.train(was_training)
    return losses, correct


@dataclass(frozen=True)
class UnlearningMetrics:
    forget_loss: float
    forget_accuracy: float
    retain_accuracy: float
    test_accuracy: float
    mia_auc: float
    n_forget: int
    n_retain: int
    n_test: int
    n_heldout: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def unlearning_metrics(
    model: torch.nn.Module,
    task: Task,
    *,
    forget: Sequence[Sample],
    retain: Sequence[Sample],
    test: Sequence[Sample],
    heldout: Sequence[Sample] | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> UnlearningMetrics:
    """Score the model (as it is loaded) on the forget, retain and test sets; the MIA
    negatives are ``heldout`` (default: ``test``)."""
    if not forget:
        raise ValueError("the forget set is empty")
    heldout = test if heldout is None else heldout

    def run(samples: Sequence[Sample]) -> tuple[list[float], list[bool]]:
        return per_sample_losses(model, task, samples, batch_size=batch_size, device=device) if samples else ([], [])

    f_loss, f_ok = run(forget)
    _, r_ok = run(retain)
    t_loss, t_ok = run(test)
    h_loss = t_loss if heldout is test else run(heldout)[0]
    return UnlearningMetrics(
        forget_loss=_mean(f_loss),
        forget_accuracy=_mean([float(x) for x in f_ok]),
        retain_accuracy=_mean([float(x) for x in r_ok]),
        test_accuracy=_mean([float(x) for x in t_ok]),
        mia_auc=membership_auc(f_loss, h_loss) if h_loss else float("nan"),
        n_forget=len(forget), n_retain=len(retain), n_test=len(test), n_heldout=len(heldout),
    )
