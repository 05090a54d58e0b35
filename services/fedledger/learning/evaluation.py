"""Evaluation: accuracy (overall and per domain) and mean loss on the label tokens.

Prediction is by label-token likelihood: for single-token labels one forward pass over
the prompt gives every label's log-probability at the last position; multi-token labels
are scored by teacher-forcing each label after the prompt and summing its tokens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fedledger.learning.batching import batch_loss, classification_batch, lm_batch, prompt_batch, target_log_probs
from fedledger.learning.data.records import Sample
from fedledger.learning.device import autocast, resolve_device
from fedledger.learning.tasks import ClassificationTask, EncodedSample, Task


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    loss: float
    n: int
    per_domain: dict[str, float] = field(default_factory=dict)
    per_domain_n: dict[str, int] = field(default_factory=dict)
    # Per-sample outcome, in input order, so callers can slice accuracy any way they like.
    correct: tuple[bool, ...] = field(default=(), repr=False)

    def subset_accuracy(self, mask: Sequence[bool]) -> float:
        picked = [ok for ok, keep in zip(self.correct, mask, strict=True) if keep]
        return sum(picked) / len(picked) if picked else float("nan")

    def to_dict(self) -> dict[str, object]:
        return {
            "accuracy": self.accuracy, "loss": self.loss, "n": self.n,
            "per_domain": dict(self.per_domain), "per_domain_n": dict(self.per_domain_n),
        }


@torch.no_grad()
def label_log_probs(
    model: torch.nn.Module, task: ClassificationTask, items: Sequence[EncodedSample], device: torch.device
) -> torch.Tensor:
    """(n, n_labels) log-likelihood of each label after each prompt."""
    pad_id = task.tokenizer.pad_token_id
    if task.single_token_labels:
        batch = prompt_batch(items, pad_id).to(device)
        with autocast(device):
            logits = model(**batch.inputs, logits_to_keep=1).logits
        label_ids = torch.tensor([ids[0] for ids in task.label_token_ids], device=device)
        return torch.log_softmax(logits[:, -1].float(), dim=-1)[:, label_ids].cpu()
    scores = torch.empty(len(items), len(task.labels))
    for j, token_ids in enumerate(task.label_token_ids):
        forced = [EncodedSample(it.prompt_ids, token_ids, j) for it in items]
        batch = classification_batch(forced, pad_id).to(device)
        with autocast(device):
            logits = model(**batch.inputs, logits_to_keep=batch.keep).logits
        picked, _ = target_log_probs(logits, batch.targets)
        scores[:, j] = picked.sum(dim=1).cpu()
    return scores


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, task: Task, samples: Sequence[Sample], *, batch_size: int = 32, device: str = "auto"
) -> EvalResult:
    if not samples:
        raise ValueError("cannot evaluate on an empty sample set")
    dev = resolve_device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    encoded = [task.encode(s) for s in samples]
    correct: list[bool] = []
    losses: list[float] = []
    try:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            if isinstance(task, ClassificationTask):
                scores = label_log_probs(model, task, chunk, dev)
                gold = torch.tensor([it.label_index for it in chunk])
                correct.extend((scores.argmax(dim=1) == gold).tolist())
                # Loss: negative log-likelihood of the gold label word (all its tokens).
                losses.extend((-scores[torch.arange(len(chunk)), gold]).tolist())
            else:
                batch = lm_batch(chunk, task.tokenizer.pad_token_id).to(dev)
                with autocast(dev):
                    losses.extend([batch_loss(model, batch).item()] * len(chunk))
    finally:
        model.train(was_training)
    by_domain: dict[str, list[bool]] = defaultdict(list)
    for sample, ok in zip(samples, correct, strict=False):
        by_domain[sample.domain].append(ok)
    return EvalResult(
        accuracy=sum(correct) / len(correct) if correct else float("nan"),
        loss=sum(losses) / len(losses),
        n=len(samples),
        per_domain={d: sum(v) / len(v) for d, v in sorted(by_domain.items())},
        per_domain_n={d: len(v) for d, v in sorted(by_domain.items())},
        correct=tuple(correct),
    )
