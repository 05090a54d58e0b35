"""Norm clipping (Sun et al., 2019, "Can you really backdoor federated learning?").

A boosted (scaled-up) malicious update moves FedAvg in proportion to its norm. Clipping
every client's change to an L2 bound caps what any one client can do, at no cost to
clients that stay within it:

    delta_i = update_i - reference                (the update itself without reference)
    c_i     = min(1, max_norm / ||delta_i||)
    result  = reference + sum_i w_i c_i delta_i   (w_i = n_i / N)

``max_norm=None`` picks the bound adaptively as the median of the clients' norms, so an
honest majority sets it. The norm is taken over the whole adapter (all keys at once),
which preserves each client's direction.

Two passes over the data and no per-client copies: first the norms (one key-sized
scratch buffer for the difference), then ``out = (1 - sum_i w_i c_i) reference +
sum_i w_i c_i update_i`` accumulated in place per key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from fedledger.learning.aggregation.base import AggregationResult, AggregationStrategy, UpdateBatch
from fedledger.learning.aggregation.ops import centers_for, squared_norms, weighted_sum
from fedledger.learning.errors import AggregationError

__all__ = ["NormClipping", "clip_factors", "clipped_mean"]


@dataclass(frozen=True)
class NormClipping(AggregationStrategy):
    """Clip each client's delta to ``max_norm`` (None: median delta norm), then FedAvg."""

    name: ClassVar[str] = "norm_clipping"
    max_norm: float | None = None

    def __post_init__(self) -> None:
        if self.max_norm is not None:
            m = self.max_norm
            if (
                isinstance(m, bool)
                or not isinstance(m, (int, float))
                or not math.isfinite(m)
                or m <= 0
            ):
                raise AggregationError(
                    f"norm_clipping: max_norm must be None or a finite number > 0, got {m!r}"
                )

    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        norms = np.sqrt(
            squared_norms(
                [batch.column(k) for k in batch.keys], centers_for(batch.keys, batch.reference)
            )
        )
        bound = float(np.median(norms)) if self.max_norm is None else float(self.max_norm)
        factors = clip_factors(norms, bound)
        ids = batch.client_ids
        return AggregationResult(
            tensors=clipped_mean(batch, factors),
            accepted=ids,
            rejected={},
            details={
                "max_norm": bound,
                "adaptive": self.max_norm is None,
                "norms": dict(zip(ids, norms.tolist(), strict=True)),
                "clip_factors": dict(zip(ids, factors, strict=True)),
                "clipped": [i for i, f in zip(ids, factors, strict=True) if f < 1.0],
                "relative_to_reference": batch.reference is not None,
            },
        )


def clip_factors(norms: np.ndarray, bound: float) -> list[float]:
    """``min(1, bound / norm)`` per client; a zero delta needs no clipping."""
    return [1.0 if n <= bound or n == 0.0 else bound / float(n) for n in norms]


def clipped_mean(batch: UpdateBatch, factors: list[float]) -> dict[str, torch.Tensor]:
    """``reference + sum_i w_i c_i (update_i - reference)`` (reference 0 when absent)."""
    scaled = [w * c for w, c in zip(batch.weights, factors, strict=True)]
    # The reference keeps the weight the clipped clients gave up (about 0 if none were).
    base_weight = 1.0 - math.fsum(scaled)
    out: dict[str, torch.Tensor] = {}
    for key in batch.keys:
        column = batch.column(key)
        if batch.reference is None:
            acc = weighted_sum(column, scaled)
        else:
            acc = weighted_sum(column, scaled, base=batch.reference[key], base_weight=base_weight)
        out[key] = acc.to(column[0].dtype)
    return out
