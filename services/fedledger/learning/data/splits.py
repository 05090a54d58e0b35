"""Train / validation / test splits that never move a sample once it is assigned.

Each sample's split is a function of (seed, sample id) alone: a keyed BLAKE2b hash of
the id, read as a number in [0, 1), is compared with the fractions. Consequences:

* adding, removing or reordering other samples never moves a sample between splits,
  which is what exact unlearning needs (a retrain without sample x must see the same
  train set minus x) and what lets an org append data without leaking old test items;
* split sizes are binomial, close to the fractions for large sets but not exact;
* the split is not stratified by label: with thousands of samples per class the
  per-class proportions land within a few percent of the fractions, and stratifying
  exactly would make one sample's split depend on the others.

The hash key includes a purpose string, so these draws are independent of the other
keyed-hash assignments in the project (e.g. SISA shards) even under the same seed.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

from fedledger.learning.data.records import Sample
from fedledger.learning.errors import DatasetError

SplitName = Literal["train", "val", "test"]

_TWO_64 = float(2**64)


class Split(NamedTuple):
    """The three parts of a split, each in the input's order."""

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]


@functools.lru_cache(maxsize=64)
def _hash_key(purpose: str, seed: int) -> bytes:
    # hashed down to 32 bytes so any seed fits BLAKE2b's 64-byte key limit
    return hashlib.sha256(f"fedledger/{purpose}/{seed}".encode()).digest()


def unit_hash(purpose: str, seed: int, sample_id: str) -> float:
    """A number in [0, 1) that depends only on (purpose, seed, sample_id).

    BLAKE2b keyed by the purpose and seed: a well-mixed, platform-independent digest
    (Python's ``hash`` is salted per process, ``random`` depends on call order).
    """
    digest = hashlib.blake2b(
        sample_id.encode("utf-8"), key=_hash_key(purpose, seed), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def check_seed(seed: int) -> int:
    """Reject seeds that are not plain integers (a float or bool seed is a caller bug)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"seed must be an integer, got {seed!r}")
    return seed


def check_unique_ids(samples: Iterable[Sample]) -> None:
    """Raise if two samples share an id: every keyed-hash assignment would put them
    together, and deletions by id would be ambiguous."""
    seen: set[str] = set()
    for s in samples:
        if s.sample_id in seen:
            raise DatasetError(f"duplicate sample id {s.sample_id!r}")
        seen.add(s.sample_id)


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0.0 <= value < 1.0
        ):
            raise DatasetError(f"{name} must be a number in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        raise DatasetError(
            f"val_fraction + test_fraction must be below 1 to leave training data, "
            f"got {val_fraction} + {test_fraction}"
        )


def assign_split(
    sample_id: str,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> SplitName:
    """The split ``sample_id`` belongs to under these settings (same rule as
    ``split_samples``), e.g. to tell whether a deletion request touches the test set."""
    _check_fractions(val_fraction, test_fraction)
    u = unit_hash("split", check_seed(seed), sample_id)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_samples(
    samples: Sequence[Sample],
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Split ``samples`` into train / val / test by a keyed hash of each sample id.

    Deterministic, order-preserving, and stable per sample (see the module docstring).
    Raises ``DatasetError`` for invalid fractions, a non-integer seed or duplicate ids.
    """
    _check_fractions(val_fraction, test_fraction)
    check_seed(seed)
    check_unique_ids(samples)
    parts: dict[SplitName, list[Sample]] = {"train": [], "val": [], "test": []}
    for s in samples:
        parts[
            assign_split(
                s.sample_id, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
            )
        ].append(s)
    return Split(train=parts["train"], val=parts["val"], test=parts["test"])
