"""Padding encoded samples into tensors.

Classification batches are LEFT-padded so every row's answer sits at the same final
positions; the model then only has to compute the 49k-way LM head for those few
positions (``logits_to_keep``) instead of for every token — most of the cost of a small
model's step. Position ids are passed explicitly so padding never shifts a sample's
positions (the output of a sample must not depend on what it is batched with).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fedledger.learning.tasks import IGNORE_INDEX, EncodedSample


@dataclass(frozen=True)
class Batch:
    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask, position_ids
    targets: torch.Tensor  # (n, T): the tokens to predict at the last T positions
    keep: int  # how many final positions need logits (T + 1 for next-token shift)

    def to(self, device: torch.device) -> Batch:
        return Batch({k: v.to(device) for k, v in self.inputs.items()}, self.targets.to(device), self.keep)


def _left_padded(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            input_ids[row, width - len(seq) :] = torch.tensor(seq)
            attention[row, width - len(seq) :] = 1
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention, "position_ids": positions}


def classification_batch(items: Sequence[EncodedSample], pad_id: int) -> Batch:
    """Prompt + target, left-padded; ``targets`` right-aligned with IGNORE_INDEX filling
    the rows whose target is shorter than the longest."""
    inputs = _left_padded([it.prompt_ids + it.target_ids for it in items], pad_id)
    longest = max(len(it.target_ids) for it in items)
    targets = torch.full((len(items), longest), IGNORE_INDEX, dtype=torch.long)
    for row, it in enumerate(items):
        if it.target_ids:
            targets[row, longest - len(it.target_ids) :] = torch.tensor(it.target_ids)
    return Batch(inputs, targets, keep=longest + 1)


def prompt_batch(items: Sequence[EncodedSample], pad_id: int) -> Batch:
    """The prompts alone (no target): the next-token distribution at the last position."""
    inputs = _left_padded([it.prompt_ids for it in items], pad_id)
    return Batch(inputs, torch.empty((len(items), 0), dtype=torch.long), keep=1)


def lm_batch(items: Sequence[EncodedSample], pad_id: int) -> Batch:
    """Causal LM over the whole sequence: every real token after the first is a target."""
    inputs = _left_padded([it.prompt_ids for it in items], pad_id)
    targets = inputs["input_ids"].clone()
    # Padding predicts nothing, and neither does a row's first real token (nothing precedes it).
    targets[(inputs["attention_mask"] == 0) | (inputs["position_ids"] == 0)] = IGNORE_INDEX
    width = targets.shape[1]
    return Batch(inputs, targets[:, 1:], keep=width)


def target_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of ``targets`` under ``logits`` (the model's last
    ``targets.shape[1] + 1`` positions; the final one predicts nothing) and the mask of
    real targets."""
    steps = targets.shape[1]
    logp = torch.log_softmax(logits[:, -(steps + 1) : -1].float(), dim=-1)
    mask = targets != IGNORE_INDEX
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def batch_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Mean negative log-likelihood of the batch's target tokens."""
    logits = model(**batch.inputs, logits_to_keep=batch.keep).logits
    picked, mask = target_log_probs(logits, batch.targets)
    return -(picked.sum() / mask.sum().clamp(min=1))
