"""The contract every aggregation strategy follows, and the one place inputs are checked.

A strategy is a pure, deterministic function of the round's client updates: no I/O, no
logging, no hidden state between calls. That is what lets every organization recompute
the coordinator's aggregate from the content-addressed update blobs and attest the same
digest (see ``docs/architecture.md``).

Inputs are LoRA state dicts *after* local training (not deltas), e.g.
``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` of shape (r, in) and
the matching ``...lora_B.weight`` of shape (out, r).

Reference point
---------------
Some strategies measure each client against the global adapter the round started from
(norm clipping, FLAME). That adapter is passed per call as the keyword ``reference`` of
:meth:`AggregationStrategy.aggregate`, never stored on the strategy, so one strategy
object serves every round and stays a value (frozen dataclass, comparable, hashable).
When ``reference`` is given, norms and cosines are taken on ``update - reference``;
when it is ``None`` they are taken on the updates themselves, which for LoRA (random
``lora_A`` init) is rarely what you want, so pass it. Strategies whose maths does not
depend on a reference (FedAvg, median, trimmed mean, exact LoRA) still check that it
matches the updates; Krum's pairwise distances are translation invariant, so it uses
the reference only as the numerically best centre for its float32 Gram matrix.

Checks
------
:func:`validate_updates` runs once per call, before any arithmetic: a non-empty list,
unique client ids, finite positive sample counts, identical key sets, and per key the
same shape, dtype and device everywhere (reference included), floating point only.
Tensor *values* are not scanned for NaN/Inf here: untrusted updates are only ever read
through the update-file reader, which rejects non-finite values, and a second full pass
over every update would cost as much as FedAvg itself.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from fedledger.learning.errors import AggregationError

__all__ = [
    "AggregationResult",
    "AggregationStrategy",
    "ClientUpdate",
    "UpdateBatch",
    "validate_updates",
]


@dataclass(frozen=True)
class ClientUpdate:
    """One organization's adapter after local training, with the weight it claims."""

    client_id: str
    tensors: Mapping[str, torch.Tensor]
    num_samples: int


@dataclass(frozen=True)
class AggregationResult:
    """The aggregate plus an account of who was used and why others were not.

    ``details`` holds plain Python numbers, lists and dicts (JSON-serializable), so a
    round record can store them next to the aggregate's digest.
    """

    tensors: dict[str, torch.Tensor]
    accepted: list[str]
    rejected: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateBatch:
    """Updates that passed :func:`validate_updates`, in input order.

    ``keys`` is sorted, so every strategy walks tensors in the same order on every
    machine; ``weights`` are ``num_samples`` normalised to sum to one.
    """

    updates: tuple[ClientUpdate, ...]
    keys: tuple[str, ...]
    weights: tuple[float, ...]
    reference: Mapping[str, torch.Tensor] | None

    @property
    def client_ids(self) -> list[str]:
        return [u.client_id for u in self.updates]

    def __len__(self) -> int:
        return len(self.updates)

    def column(self, key: str) -> list[torch.Tensor]:
        """The tensors of one key across all clients (no copy)."""
        return [u.tensors[key] for u in self.updates]

    def numel(self) -> int:
        """Parameters in one update."""
        first = self.updates[0].tensors
        return sum(first[k].numel() for k in self.keys)

    def subset(self, indices: Sequence[int]) -> UpdateBatch:
        """The selected clients, weights renormalised among them."""
        picked = tuple(self.updates[i] for i in indices)
        total = math.fsum(float(u.num_samples) for u in picked)
        return UpdateBatch(
            updates=picked,
            keys=self.keys,
            weights=tuple(float(u.num_samples) / total for u in picked),
            reference=self.reference,
        )


class AggregationStrategy(ABC):
    """Base of every strategy: validate once, then the subclass does the maths.

    Subclasses are frozen dataclasses whose fields are the strategy's parameters
    (checked in ``__post_init__``, raising :class:`AggregationError`), and implement
    :meth:`_aggregate` on an already validated :class:`UpdateBatch`.
    """

    #: Registry name, e.g. ``"trimmed_mean"``.
    name: ClassVar[str]

    def aggregate(
        self,
        updates: Sequence[ClientUpdate],
        *,
        reference: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """Aggregate one round. ``reference`` is the global adapter the round started from."""
        batch = validate_updates(updates, reference)
        return self._aggregate(batch)

    @abstractmethod
    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        """The strategy's maths on validated input."""


def validate_updates(
    updates: Sequence[ClientUpdate],
    reference: Mapping[str, torch.Tensor] | None = None,
) -> UpdateBatch:
    """Check structure and weights once; raise :class:`AggregationError` naming the problem."""
    if isinstance(updates, (str, bytes)) or not isinstance(updates, Sequence):
        raise AggregationError("updates must be a sequence of ClientUpdate")
    updates = tuple(updates)
    if not updates:
        raise AggregationError("no updates to aggregate (empty list)")
    for u in updates:
        if not isinstance(u, ClientUpdate):
            raise AggregationError(f"expected ClientUpdate, got {type(u).__name__}")
    weights = _normalised_weights(updates)

    first = updates[0]
    if not first.tensors:
        raise AggregationError(f"update from {first.client_id!r} has no tensors")
    keys = tuple(sorted(first.tensors))
    expected = set(keys)
    for u in updates[1:]:
        _check_key_set(set(u.tensors), expected, f"update from {u.client_id!r}")
    for key in keys:
        t0 = first.tensors[key]
        _check_tensor(t0, key, first.client_id)
        for u in updates[1:]:
            t = u.tensors[key]
            _check_tensor(t, key, u.client_id)
            _check_like(t, t0, key, f"update from {u.client_id!r}", first.client_id)

    if reference is not None:
        if not isinstance(reference, Mapping):
            raise AggregationError("reference must be a mapping of key -> tensor")
        _check_key_set(set(reference), expected, "reference")
        for key in keys:
            t = reference[key]
            _check_tensor(t, key, "reference")
            _check_like(t, first.tensors[key], key, "reference", first.client_id)
    return UpdateBatch(updates=updates, keys=keys, weights=weights, reference=reference)


def _normalised_weights(updates: tuple[ClientUpdate, ...]) -> tuple[float, ...]:
    seen: set[str] = set()
    counts: list[float] = []
    for u in updates:
        if u.client_id in seen:
            raise AggregationError(f"duplicate client id {u.client_id!r}")
        seen.add(u.client_id)
        n = u.num_samples
        # bool is an int subclass; True samples is a bug, not a weight of one.
        if isinstance(n, bool) or not isinstance(n, numbers.Real):
            raise AggregationError(
                f"client {u.client_id!r}: num_samples must be a number, got {type(n).__name__}"
            )
        if not math.isfinite(n):
            raise AggregationError(
                f"client {u.client_id!r}: num_samples weight is not finite ({n})"
            )
        counts.append(float(n))
    total = math.fsum(counts)
    if total == 0.0 and all(c == 0.0 for c in counts):
        raise AggregationError("total sample weight is zero (every num_samples is 0)")
    for u, c in zip(updates, counts, strict=True):
        if c <= 0.0:
            raise AggregationError(
                f"client {u.client_id!r}: num_samples weight must be positive, got {u.num_samples}"
            )
    return tuple(c / total for c in counts)


def _check_key_set(got: set[str], expected: set[str], who: str) -> None:
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise AggregationError(f"{who} lacks key {missing[0]!r}{more}")
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise AggregationError(f"{who} has unexpected key {extra[0]!r}{more}")


def _check_tensor(t: object, key: str, who: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise AggregationError(
            f"key {key!r} from {who!r} is {type(t).__name__}, not a torch.Tensor"
        )
    if not t.is_floating_point():
        raise AggregationError(
            f"key {key!r} from {who!r} has dtype {t.dtype}; aggregation needs floating point"
        )


def _check_like(t: torch.Tensor, t0: torch.Tensor, key: str, who: str, first: str) -> None:
    if t.shape != t0.shape:
        raise AggregationError(
            f"key {key!r}: {who} has shape {tuple(t.shape)}, "
            f"expected {tuple(t0.shape)} (as in update from {first!r})"
        )
    if t.dtype != t0.dtype:
        raise AggregationError(
            f"key {key!r}: {who} has dtype {t.dtype}, expected {t0.dtype} "
            f"(as in update from {first!r})"
        )
    if t.device != t0.device:
        raise AggregationError(
            f"key {key!r}: {who} is on {t.device}, expected {t0.device} "
            f"(as in update from {first!r})"
        )
