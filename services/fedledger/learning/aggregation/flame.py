"""FLAME-like filtering (Nguyen et al., 2022, "FLAME: Taming backdoors in federated learning").

FLAME's three steps, with its HDBSCAN clustering replaced by a deterministic rule that
needs no extra dependency and no tuning:

1. **Filter by direction.** Cosine distances ``D_ij = 1 - cos(delta_i, delta_j)``
   between the clients' deltas (``update - reference``). FLAME clusters them with
   HDBSCAN (min cluster size n/2 + 1) and keeps the majority cluster. Here:

   * each client's *crowd distance* is the median of its distances to the others; an
     honest client (honest clients are a majority) has its median among honest
     distances, an attacker among attacker-to-honest ones;
   * the *core* is the ``n // 2 + 1`` clients with the smallest crowd distances (ties
     by input order): a majority, hence at least one honest client even in the worst
     case, and in practice the tightest honest group;
   * the threshold is ``slack`` (default 2) times the largest crowd distance inside the
     core, i.e. twice what a still-central honest client shows, unless
     ``distance_threshold`` fixes it. Honest stragglers (more local noise, other data)
     land within a small factor of the core; a flipped or unrelated update lands near
     1-2, far above honest spreads of a few hundredths to a few tenths;
   * accepted = the core plus every client whose crowd distance is within the
     threshold. The rest are labelled -1 (outliers), as HDBSCAN would.

   Where this departs from FLAME: HDBSCAN with min cluster size n/2 + 1 keeps only the
   first majority component of the single-linkage tree, so it also drops honest
   clients that join it a little later; the slack keeps them. When honest deltas are
   mutually orthogonal (crowd distance ~1) the threshold reaches ~2 and direction
   filtering stops rejecting: nothing separates an attacker from such a crowd by
   angle, and step 2 still bounds it.

   A client with a zero delta has no direction; it is put at distance 1 (orthogonal)
   from everyone.
2. **Clip by norm.** The bound is the median L2 norm of *all* deltas; accepted deltas
   above it are scaled down to it. This catches the boosted updates that point the
   right way, which step 1 cannot.
3. **Average**, sample-weighted over the accepted clients, and optionally add Gaussian
   noise of standard deviation ``noise_lambda * bound`` (FLAME's adaptive noise; off by
   default, seeded with ``seed`` so the aggregate stays reproducible).

Without ``reference`` the updates themselves are compared, which for LoRA is dominated
by the shared random ``lora_A`` initialisation; pass the round's starting adapter.
Cost: one Gram pass (:func:`.ops.gram_matrix`) plus one averaging pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from fedledger.learning.aggregation.base import AggregationResult, AggregationStrategy, UpdateBatch
from fedledger.learning.aggregation.norm_clipping import clip_factors, clipped_mean
from fedledger.learning.aggregation.ops import centers_for, gram_matrix
from fedledger.learning.errors import AggregationError

__all__ = ["Flame", "cosine_distances", "majority_filter"]


@dataclass(frozen=True)
class Flame(AggregationStrategy):
    """Keep the majority cluster by cosine distance, clip to the median norm, average."""

    name: ClassVar[str] = "flame"
    distance_threshold: float | None = None
    slack: float = 2.0
    noise_lambda: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        t = self.distance_threshold
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 2.0
        ):
            raise AggregationError(
                f"flame: distance_threshold must be None or in [0, 2], got {t!r}"
            )
        sl = self.slack
        if (
            isinstance(sl, bool)
            or not isinstance(sl, (int, float))
            or not math.isfinite(sl)
            or sl < 1.0
        ):
            raise AggregationError(f"flame: slack must be a finite number >= 1, got {sl!r}")
        lam = self.noise_lambda
        if (
            isinstance(lam, bool)
            or not isinstance(lam, (int, float))
            or not math.isfinite(lam)
            or lam < 0
        ):
            raise AggregationError(f"flame: noise_lambda must be a finite number >= 0, got {lam!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise AggregationError(f"flame: seed must be an int, got {self.seed!r}")

    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        gram = gram_matrix(
            [batch.column(k) for k in batch.keys], centers_for(batch.keys, batch.reference)
        )
        norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
        dist = cosine_distances(gram)
        accepted_idx, crowd, threshold, core = majority_filter(
            dist, self.distance_threshold, self.slack
        )

        bound = float(np.median(norms))
        kept = batch.subset(accepted_idx)
        factors = clip_factors(norms[accepted_idx], bound)
        tensors = clipped_mean(kept, factors)
        sigma = self.noise_lambda * bound
        if sigma > 0.0:
            _add_noise(tensors, batch.keys, sigma, self.seed)

        ids = batch.client_ids
        accepted_set = set(accepted_idx)
        rejected = {
            ids[i]: (
                f"cosine outlier: median cosine distance to the others {crowd[i]:.4g} "
                f"> threshold {threshold:.4g}"
            )
            for i in range(len(ids))
            if i not in accepted_set
        }
        details: dict[str, Any] = {
            "labels": {ids[i]: (0 if i in accepted_set else -1) for i in range(len(ids))},
            "crowd_distance": dict(zip(ids, crowd.tolist(), strict=True)),
            "threshold": threshold,
            "threshold_adaptive": self.distance_threshold is None,
            "slack": float(self.slack),
            "core": [ids[i] for i in core],
            "cosine_distances": dist.tolist(),
            "norms": dict(zip(ids, norms.tolist(), strict=True)),
            "clip_bound": bound,
            "clip_factors": dict(zip(kept.client_ids, factors, strict=True)),
            "noise_sigma": sigma,
            "relative_to_reference": batch.reference is not None,
        }
        return AggregationResult(
            tensors=tensors,
            accepted=[ids[i] for i in accepted_idx],
            rejected=rejected,
            details=details,
        )


def cosine_distances(gram: np.ndarray) -> np.ndarray:
    """``1 - cos`` from a Gram matrix; zero vectors are at distance 1 from everyone."""
    g = (gram + gram.T) / 2.0
    norms = np.sqrt(np.maximum(np.diag(g), 0.0))
    outer = norms[:, None] * norms[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(outer > 0.0, g / np.where(outer > 0.0, outer, 1.0), 0.0)
    dist = np.clip(1.0 - cos, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    return dist


def majority_filter(
    dist: np.ndarray, threshold: float | None = None, slack: float = 2.0
) -> tuple[list[int], np.ndarray, float, list[int]]:
    """(accepted indices, crowd distances, threshold used, core indices); see module doc."""
    n = dist.shape[0]
    if n == 1:
        return [0], np.zeros(1), 0.0 if threshold is None else float(threshold), [0]
    crowd = np.array([float(np.median(np.delete(dist[i], i))) for i in range(n)])
    core = sorted(int(i) for i in np.argsort(crowd, kind="stable")[: n // 2 + 1])
    if threshold is None:
        threshold = slack * float(crowd[core].max())
    core_set = set(core)
    accepted = [i for i in range(n) if i in core_set or crowd[i] <= threshold]
    return accepted, crowd, float(threshold), core


def _add_noise(
    tensors: dict[str, torch.Tensor], keys: tuple[str, ...], sigma: float, seed: int
) -> None:
    # One generator walked in sorted key order: the same seed gives the same noise.
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for key in keys:
        t = tensors[key]
        noise = torch.randn(t.shape, generator=gen, dtype=torch.float32).mul_(sigma).to(t.device)
        tensors[key] = (t.to(torch.float32) + noise).to(t.dtype)
