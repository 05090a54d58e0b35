"""Multi-Krum (Blanchard et al., 2017, "Machine learning with adversaries").

With at most ``f`` Byzantine clients among n, score every update by the sum of its
squared distances to its ``n - f - 2`` nearest neighbours: an honest update sits in a
crowd of honest ones and scores low; a poisoned one is far from most and scores high.
Keep the ``m`` lowest scores (``m = 1`` is classic Krum; default ``n - f``) and take
their sample-weighted mean. Needs ``n >= 2 f + 3`` so each client has a neighbour.

Distances in one pass, without stacking the updates: the squared distances come from the
Gram matrix, ``d_ij = G_ii + G_jj - 2 G_ij``, and G is a sum over keys, so per key the n
tensors of that key are stacked into an (n x numel) buffer and ``X X^T`` is added to a
float64 (n x n) accumulator (:func:`.ops.gram_matrix`). Memory: one key's stack.
Distances are translation invariant, so the rows are centred first for float32
accuracy: on ``reference`` when given (the round's start point, close to the honest
crowd: best), else on the first update. Without a reference, an update 10^3 times
farther away than the honest spread can blur the *order among the honest clients* (the
far update itself still scores last).

Ties in score are broken by input order, so the selection is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedledger.learning.aggregation.base import AggregationResult, AggregationStrategy, UpdateBatch
from fedledger.learning.aggregation.fedavg import fedavg_tensors
from fedledger.learning.aggregation.ops import gram_matrix
from fedledger.learning.errors import AggregationError

__all__ = ["MultiKrum", "krum_scores", "squared_distances"]


@dataclass(frozen=True)
class MultiKrum(AggregationStrategy):
    """Average the ``m`` updates with the lowest Krum scores (assuming ``f`` attackers)."""

    name: ClassVar[str] = "multi_krum"
    f: int = 1
    m: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.f, bool) or not isinstance(self.f, int) or self.f < 0:
            raise AggregationError(f"multi_krum: f must be an int >= 0, got {self.f!r}")
        if self.m is not None and (
            isinstance(self.m, bool) or not isinstance(self.m, int) or self.m < 1
        ):
            raise AggregationError(f"multi_krum: m must be None or an int >= 1, got {self.m!r}")

    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        n = len(batch)
        if n < 2 * self.f + 3:
            raise AggregationError(
                f"multi_krum: f={self.f} is too large for n={n} updates "
                f"(needs n >= 2f + 3 = {2 * self.f + 3})"
            )
        m = n - self.f if self.m is None else self.m
        if m > n:
            raise AggregationError(f"multi_krum: m={m} exceeds the number of updates n={n}")

        first = batch.updates[0].tensors
        center = batch.reference if batch.reference is not None else first
        gram = gram_matrix([batch.column(k) for k in batch.keys], [center[k] for k in batch.keys])
        scores = krum_scores(squared_distances(gram), n - self.f - 2)
        order = np.argsort(scores, kind="stable")
        selected = sorted(int(i) for i in order[:m])
        rank_of = {int(i): r + 1 for r, i in enumerate(order)}

        ids = batch.client_ids
        rejected = {
            ids[i]: (
                f"multi-krum score {scores[i]:.6g} ranked {rank_of[i]}/{n}; "
                f"only the {m} lowest are kept (f={self.f})"
            )
            for i in range(n)
            if i not in selected
        }
        kept = batch.subset(selected)
        return AggregationResult(
            tensors=fedavg_tensors(kept),
            accepted=[ids[i] for i in selected],
            rejected=rejected,
            details={
                "f": self.f,
                "m": m,
                "neighbours": n - self.f - 2,
                "scores": dict(zip(ids, scores.tolist(), strict=True)),
                "weights": dict(zip(kept.client_ids, kept.weights, strict=True)),
            },
        )


def squared_distances(gram: np.ndarray) -> np.ndarray:
    """``||x_i - x_j||^2`` from a Gram matrix, symmetrised and clamped at 0 (rounding)."""
    g = (gram + gram.T) / 2.0
    diag = np.diag(g)
    d = diag[:, None] + diag[None, :] - 2.0 * g
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0)


def krum_scores(dist2: np.ndarray, neighbours: int) -> np.ndarray:
    """Per row, the sum of the ``neighbours`` smallest squared distances to others."""
    n = dist2.shape[0]
    scores = np.empty(n, dtype=np.float64)
    for i in range(n):
        others = np.sort(np.delete(dist2[i], i))
        scores[i] = float(np.sum(others[:neighbours]))
    return scores
