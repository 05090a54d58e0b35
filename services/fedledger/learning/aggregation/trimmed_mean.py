"""Coordinate-wise trimmed mean (Yin et al., 2018).

Per entry, sort the n client values, drop the ``k = floor(beta * n)`` smallest and the
k largest, and average the rest. Up to k arbitrary clients per entry are cut off, and
unlike the median it still averages the n - 2k central values, so it loses less
accuracy when everyone is honest. ``beta = 0`` is the plain (unweighted) mean; beta must
stay below 0.5 so at least one value survives.

Unweighted for the same reason as the median (a sample count is a claim). Computed per
key with a comparator network (:func:`.ops.mean_of_ranks`): the middle ranks are summed
directly, never as ``total - extremes``, which would cancel catastrophically in float32
exactly when an outlier is huge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from fedledger.learning.aggregation.base import AggregationResult, AggregationStrategy, UpdateBatch
from fedledger.learning.aggregation.ops import mean_of_ranks
from fedledger.learning.errors import AggregationError

__all__ = ["TrimmedMean"]


@dataclass(frozen=True)
class TrimmedMean(AggregationStrategy):
    """Drop the ``floor(beta * n)`` lowest and highest values per entry, average the rest."""

    name: ClassVar[str] = "trimmed_mean"
    beta: float = 0.1

    def __post_init__(self) -> None:
        b = self.beta
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not (0.0 <= b < 0.5):
            raise AggregationError(f"trimmed_mean: beta must be in [0, 0.5), got {b!r}")

    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        n = len(batch)
        k = math.floor(self.beta * n)
        ranks = list(range(k, n - k))
        out: dict[str, torch.Tensor] = {}
        for key in batch.keys:
            column = batch.column(key)
            out[key] = mean_of_ranks(column, ranks).to(column[0].dtype)
        return AggregationResult(
            tensors=out,
            accepted=batch.client_ids,
            rejected={},
            details={
                "beta": float(self.beta),
                "trimmed_each_end": k,
                "kept": n - 2 * k,
                "weighted": False,
            },
        )
