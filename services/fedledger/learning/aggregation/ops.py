"""Tensor kernels shared by the strategies, written for memory and speed on CPU.

Three rules keep aggregation within one update's worth of extra memory and one or two
passes over the data, whatever the number of clients:

* Work key by key. Only the tensors of ONE key across all clients are ever stacked (a
  LoRA key is at most a few hundred thousand numbers), never all updates at once.
* Accumulate in place in one buffer per key (``add_`` with ``alpha``): no per-client
  weighted copies, which is what makes ``numpy``-style ``reduce(np.add, [w*x ...])``
  slow and memory hungry.
* Let torch use its intra-op threads on each large op (they release the GIL). Python
  only loops over keys and clients.

Everything here is deterministic: sums run in a fixed client order, order statistics
come from a fixed comparator network of ``minimum``/``maximum`` (exact operations), and
Gram matrices are accumulated key by key in a fixed order in float64. Elementwise sums
do not depend on the thread count, so two machines with the same torch build and CPU
instruction set produce the same bits; a different vector unit (AVX-512 vs AVX2, FMA
or not) may round the last bit differently, which is why aggregate digests should be
compared between like builds. Gram matrices only steer selections (Krum, FLAME).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "accumulation_dtype",
    "centers_for",
    "gram_matrix",
    "mean_of_ranks",
    "sorting_network",
    "squared_norms",
    "weighted_sum",
]

# Elements per chunk of the comparator network: large enough that each min/max runs on
# all intra-op threads, small enough that the n + 1 chunk buffers (at most
# _NETWORK_BUDGET elements together) stay in the last-level cache whatever n is.
_NETWORK_CHUNK = 1 << 18
_NETWORK_BUDGET = 1 << 22
# Columns per block of the Gram product: on the 2-core benchmark machine MKL ran a batch
# of (n x 4096) @ (4096 x n) products 1.3-2x faster than one (n x K) @ (K x n), tiny n.
_GRAM_BLOCK = 4096


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float32/16/bfloat16 (half precision sums drift), float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def weighted_sum(
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float],
    *,
    base: torch.Tensor | None = None,
    base_weight: float = 0.0,
) -> torch.Tensor:
    """``base_weight * base + sum_i weights[i] * tensors[i]`` in one accumulation buffer.

    Returned in the accumulation dtype; the caller casts back once per key.
    """
    acc_dtype = accumulation_dtype(tensors[0].dtype)
    if base is not None:
        acc = _scaled_copy(base, base_weight, acc_dtype)
        start = 0
    else:
        acc = _scaled_copy(tensors[0], weights[0], acc_dtype)
        start = 1
    for t, w in zip(tensors[start:], weights[start:], strict=True):
        acc.add_(t, alpha=w)
    return acc


def _scaled_copy(t: torch.Tensor, w: float, acc_dtype: torch.dtype) -> torch.Tensor:
    if t.dtype == acc_dtype:
        return torch.mul(t, w)
    return t.to(acc_dtype).mul_(w)


def squared_norms(
    batch_columns: Sequence[Sequence[torch.Tensor]],
    centers: Sequence[torch.Tensor | None],
) -> np.ndarray:
    """Per client ``sum over keys ||t - center||^2`` in float64 (no center: ``||t||^2``).

    ``batch_columns[k]`` holds key k's tensors across clients, ``centers[k]`` its center.
    One row-norm reduction per key over the centred stack (see :func:`gram_matrix`).
    """
    n = len(batch_columns[0])
    out = np.zeros(n, dtype=np.float64)
    stack = _Stack()
    for column, center in zip(batch_columns, centers, strict=True):
        x = stack.fill(column, center)
        out += torch.linalg.vector_norm(x, dim=1).to(torch.float64).cpu().numpy() ** 2
    return out


def gram_matrix(
    batch_columns: Sequence[Sequence[torch.Tensor]],
    centers: Sequence[torch.Tensor | None],
) -> np.ndarray:
    """``G[i, j] = sum over keys <t_i - c, t_j - c>`` as a float64 (n x n) array.

    One pass over the data: per key the n tensors are copied (centred) into one
    (n x numel) buffer and ``X @ X^T`` is added to ``G``. Centring matters for accuracy,
    not just meaning: updates of one round are close to each other, so the uncentred
    ``||x_i||^2 + ||x_j||^2 - 2<x_i, x_j>`` would cancel catastrophically in float32;
    the product of the differences does not.
    """
    n = len(batch_columns[0])
    gram = np.zeros((n, n), dtype=np.float64)
    stack = _Stack()
    for column, center in zip(batch_columns, centers, strict=True):
        gram += _gram_block(stack.fill(column, center)).to(torch.float64).cpu().numpy()
    return gram


class _Stack:
    """One (n x numel) buffer reused across keys: no allocation (and no page faults or
    heap growth) per key once the largest key has been seen."""

    def __init__(self) -> None:
        self._buf: torch.Tensor | None = None

    def fill(self, column: Sequence[torch.Tensor], center: torch.Tensor | None) -> torch.Tensor:
        n, numel = len(column), column[0].numel()
        dtype = accumulation_dtype(column[0].dtype)
        buf = self._buf
        if buf is None or buf.numel() < n * numel or buf.dtype != dtype:
            buf = self._buf = torch.empty(n * numel, dtype=dtype, device=column[0].device)
        x = buf[: n * numel].view(n, numel)
        for i, t in enumerate(column):
            if center is None:
                x[i].copy_(t.reshape(-1))
            else:
                torch.sub(t.reshape(-1), center.reshape(-1), out=x[i])
        return x


def _gram_block(x: torch.Tensor) -> torch.Tensor:
    n, numel = x.shape
    blocks = numel // _GRAM_BLOCK
    if blocks < 2:
        return x @ x.T
    head = blocks * _GRAM_BLOCK
    # (blocks, n, B) @ (blocks, B, n): a batched product of views, no copy.
    xb = x[:, :head].reshape(n, blocks, _GRAM_BLOCK).transpose(0, 1)
    g = torch.bmm(xb, xb.transpose(1, 2)).sum(dim=0)
    if head < numel:
        tail = x[:, head:]
        g += tail @ tail.T
    return g


@lru_cache(maxsize=64)
def sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort on n inputs, as (low, high) comparator pairs.

    Built for the next power of two and cut to n: treating the missing inputs as +inf,
    a comparator that touches one never swaps, so dropping it leaves a valid network.
    O(n log^2 n) comparators (32 for n = 10).
    """
    p = 1
    while p < n:
        p *= 2
    pairs: list[tuple[int, int]] = []
    size = 1
    while size < p:
        k = size
        while k >= 1:
            j = k % size
            while j <= p - 1 - k:
                for i in range(min(k - 1, p - j - k - 1) + 1):
                    if (i + j) // (size * 2) == (i + j + k) // (size * 2):
                        pairs.append((i + j, i + j + k))
                j += 2 * k
            k //= 2
        size *= 2
    return tuple((a, b) for a, b in pairs if b < n)


@lru_cache(maxsize=256)
def _pruned_network(n: int, positions: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Only the comparators that can influence the values ending at ``positions``."""
    needed = set(positions)
    kept: list[tuple[int, int]] = []
    for a, b in reversed(sorting_network(n)):
        if a in needed or b in needed:
            kept.append((a, b))
            needed.update((a, b))
    return tuple(reversed(kept))


def mean_of_ranks(tensors: Sequence[torch.Tensor], positions: Sequence[int]) -> torch.Tensor:
    """Per coordinate, the mean of the values at the given ranks (0 = smallest).

    Median: the middle rank(s); trimmed mean: ranks k..n-k-1. Computed by a comparator
    network of elementwise ``minimum``/``maximum`` on chunks, because ``torch.sort``
    along the client axis is two orders of magnitude slower for small n (it sorts
    millions of 10-element rows one by one). Returns the accumulation dtype.
    """
    n = len(tensors)
    ranks = tuple(sorted(set(positions)))
    # All ranks: their mean is the plain mean, which needs no ordering at all.
    network = () if len(ranks) == n else _pruned_network(n, ranks)
    shape = tensors[0].shape
    acc_dtype = accumulation_dtype(tensors[0].dtype)
    flats = [t.reshape(-1) for t in tensors]
    numel = flats[0].numel()
    out = torch.empty(numel, dtype=acc_dtype, device=flats[0].device)
    chunk = max(1, min(numel, _NETWORK_CHUNK, max(4096, _NETWORK_BUDGET // (n + 1))))
    pool = [torch.empty(chunk, dtype=flats[0].dtype, device=flats[0].device) for _ in range(n + 1)]
    scale = 1.0 / len(ranks)
    for start in range(0, numel, chunk):
        stop = min(numel, start + chunk)
        size = stop - start
        values = _run_network([f[start:stop] for f in flats], network, [b[:size] for b in pool])
        target = out[start:stop]
        target.copy_(values[ranks[0]])
        for r in ranks[1:]:
            target.add_(values[r])
        if scale != 1.0:
            target.mul_(scale)
    return out.view(shape)


def _run_network(
    inputs: list[torch.Tensor],
    network: Sequence[tuple[int, int]],
    pool: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Apply comparators; inputs are read-only views, results go to ``pool`` buffers.

    Each comparator costs two elementwise ops and no allocation: the min goes to a free
    buffer, the max overwrites an owned operand (or a second free buffer).
    """
    values = list(inputs)
    owned = [False] * len(values)
    free = list(pool)
    for lo, hi in network:
        a, b = values[lo], values[hi]
        low = free.pop()
        torch.minimum(a, b, out=low)
        if owned[hi]:
            torch.maximum(a, b, out=b)
            high = b
            if owned[lo]:
                free.append(a)
        elif owned[lo]:
            torch.maximum(a, b, out=a)
            high = a
        else:
            high = free.pop()
            torch.maximum(a, b, out=high)
        values[lo], values[hi] = low, high
        owned[lo] = owned[hi] = True
    return values


def centers_for(
    keys: Sequence[str],
    reference: Mapping[str, torch.Tensor] | None,
) -> list[torch.Tensor | None]:
    """Per key center: the reference tensor, or None (measure the updates themselves)."""
    if reference is None:
        return [None] * len(keys)
    return [reference[k] for k in keys]
