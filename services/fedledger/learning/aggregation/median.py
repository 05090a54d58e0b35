"""Coordinate-wise median (Yin et al., 2018, "Byzantine-robust distributed learning").

Each output entry is the median of that entry across clients (the mean of the two middle
values when n is even). Fewer than half of the clients, however extreme, cannot drag an
entry outside the range of the honest values, which FedAvg cannot promise for even one.

Sample counts are deliberately ignored: a weight is a claim by the client, and a robust
statistic that a single large claim can steer would defeat its purpose. The price is
statistical efficiency on benign non-IID rounds (and no reference is needed: the median
commutes with shifting every update by the same tensor).

Computed per key with a comparator network of elementwise min/max
(:func:`.ops.mean_of_ranks`), exact and deterministic, in key-sized chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from fedledger.learning.aggregation.base import AggregationResult, AggregationStrategy, UpdateBatch
from fedledger.learning.aggregation.ops import mean_of_ranks

__all__ = ["CoordinateMedian"]


@dataclass(frozen=True)
class CoordinateMedian(AggregationStrategy):
    """Per-entry median across clients (unweighted). No parameters."""

    name: ClassVar[str] = "median"

    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        n = len(batch)
        middle = sorted({(n - 1) // 2, n // 2})
        out: dict[str, torch.Tensor] = {}
        for key in batch.keys:
            column = batch.column(key)
            out[key] = mean_of_ranks(column, middle).to(column[0].dtype)
        return AggregationResult(
            tensors=out,
            accepted=batch.client_ids,
            rejected={},
            details={"ranks": middle, "weighted": False},
        )
