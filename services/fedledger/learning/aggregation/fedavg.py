"""FedAvg (McMahan et al., 2017): the sample-weighted mean of the clients' adapters.

    theta = sum_i (n_i / N) * theta_i,   N = sum_i n_i

Applied entry by entry to every tensor of the LoRA state dict, so for a LoRA module it
averages ``lora_A`` and ``lora_B`` separately: the product of the averages is not the
average of the products ``B_i A_i`` (see :mod:`.exact_lora` for that). It is still the
default because it is what every client trained against and keeps the rank fixed.

The sum is accumulated in place per key in float32 (float64 only for float64 inputs),
clients in input order, so the result is bit-for-bit reproducible on a given CPU kernel
set; peak extra memory is one key's accumulator beyond the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from fedledger.learning.aggregation.base import AggregationResult, AggregationStrategy, UpdateBatch
from fedledger.learning.aggregation.ops import weighted_sum

__all__ = ["FedAvg", "fedavg_tensors"]


@dataclass(frozen=True)
class FedAvg(AggregationStrategy):
    """Sample-weighted mean of every tensor. No parameters."""

    name: ClassVar[str] = "fedavg"

    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        return AggregationResult(
            tensors=fedavg_tensors(batch),
            accepted=batch.client_ids,
            rejected={},
            details={"weights": dict(zip(batch.client_ids, batch.weights, strict=True))},
        )


def fedavg_tensors(
    batch: UpdateBatch, keys: tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """The weighted mean of ``keys`` (default: all), shared by strategies that end in FedAvg."""
    out: dict[str, torch.Tensor] = {}
    for key in batch.keys if keys is None else keys:
        column = batch.column(key)
        out[key] = weighted_sum(column, batch.weights).to(column[0].dtype)
    return out
