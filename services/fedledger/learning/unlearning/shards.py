"""Keyed-hash assignment of samples to SISA shards and slices.

A sample's shard and slice are functions of (deployment key, sample id) alone: a keyed
BLAKE2b hash of the id, read as a number in [0, 1), picks the bucket. Consequences:

* adding or deleting other samples never moves a sample (what exact unlearning needs:
  a retrain without x sees every other sample in the same shard and slice);
* nobody without the key can steer a chosen sample into a chosen shard;
* bucket sizes are binomial: balanced to within a few percent for large sets.

Slices are introduced over rounds: slice j's samples are first used at round
``first_round(j)`` and in every round after, so a deletion from slice j only has to
replay rounds ``first_round(j)..T`` of its shard.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fedledger.learning.data.records import Sample
from fedledger.learning.errors import ConfigError

_TWO_64 = float(2**64)


@functools.lru_cache(maxsize=64)
def _key(purpose: str, secret: str) -> bytes:
    return hashlib.sha256(f"fedledger/sisa-{purpose}/{secret}".encode()).digest()


def keyed_unit(purpose: str, secret: str, sample_id: str) -> float:
    """A number in [0, 1) depending only on (purpose, secret, sample_id)."""
    digest = hashlib.blake2b(sample_id.encode("utf-8"), key=_key(purpose, secret), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def shard_of(sample_id: str, shards: int, key: str) -> int:
    """The shard of ``sample_id`` among ``shards``, keyed by the deployment's (or org's)
    secret ``key``."""
    return min(int(keyed_unit("shard", key, sample_id) * shards), shards - 1)


def even_slice_rounds(slices: int, rounds: int) -> tuple[int, ...]:
    """Slices spread evenly over the rounds: slice j first used at 1 + floor(j * T / n)."""
    return tuple(1 + (j * rounds) // slices for j in range(slices))


@dataclass(frozen=True)
class ShardScheme:
    """S shards x n slices over T rounds, keyed by a per-deployment secret.

    ``slice_rounds[j]`` is the first round that uses slice j (non-decreasing, starting
    at 1, at most T); default: :func:`even_slice_rounds`.
    """

    shards: int
    rounds: int
    slices: int = 1
    key: str = "fedledger-sisa"
    slice_rounds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("shards", "rounds", "slices"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.key, str) or not self.key:
            raise ConfigError("the shard key must be a non-empty string")
        if self.slice_rounds is None:
            object.__setattr__(self, "slice_rounds", even_slice_rounds(self.slices, self.rounds))
        sr = tuple(self.slice_rounds)  # type: ignore[arg-type]
        object.__setattr__(self, "slice_rounds", sr)
        if len(sr) != self.slices:
            raise ConfigError(f"slice_rounds has {len(sr)} entries for {self.slices} slices")
        if sr[0] != 1 or any(b < a for a, b in zip(sr, sr[1:], strict=False)) or sr[-1] > self.rounds:
            raise ConfigError(
                f"slice_rounds must start at 1, never decrease and stay <= {self.rounds}, got {list(sr)}"
            )

    def shard_of(self, sample_id: str) -> int:
        return shard_of(sample_id, self.shards, self.key)

    def slice_of(self, sample_id: str) -> int:
        if self.slices == 1:
            return 0
        return int(keyed_unit("slice", self.key, sample_id) * self.slices)

    def first_round(self, slice_index: int) -> int:
        return self.slice_rounds[slice_index]  # type: ignore[index]

    def first_round_of(self, sample_id: str) -> int:
        """The first round that trains on ``sample_id`` (in its shard)."""
        return self.first_round(self.slice_of(sample_id))

    def active_slices(self, round_no: int) -> list[int]:
        """Slices in use at ``round_no``."""
        return [j for j, first in enumerate(self.slice_rounds) if first <= round_no]  # type: ignore[arg-type]

    def assign(self, samples: Iterable[Sample]) -> dict[tuple[int, int], list[Sample]]:
        """(shard, slice) -> samples, each list sorted by sample id (a canonical order
        that depends only on the samples themselves, never on input order)."""
        out: dict[tuple[int, int], list[Sample]] = {
            (s, j): [] for s in range(self.shards) for j in range(self.slices)
        }
        for sample in samples:
            out[(self.shard_of(sample.sample_id), self.slice_of(sample.sample_id))].append(sample)
        for bucket in out.values():
            bucket.sort(key=lambda x: x.sample_id)
        return out

    def shard_sizes(self, sample_ids: Sequence[str]) -> list[int]:
        sizes = [0] * self.shards
        for sid in sample_ids:
            sizes[self.shard_of(sid)] += 1
        return sizes
