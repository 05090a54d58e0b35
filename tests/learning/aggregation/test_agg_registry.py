"""Building strategies by name: unknown names and parameters fail with the valid choices."""

from __future__ import annotations

import pytest

from fedledger.learning.aggregation import (
    CoordinateMedian,
    ExactLoRA,
    FedAvg,
    Flame,
    MultiKrum,
    NormClipping,
    TrimmedMean,
    available_strategies,
    build_strategy,
    strategy_params,
)
from fedledger.learning.errors import AggregationError


def test_all_strategies_are_registered() -> None:
    assert available_strategies() == [
        "exact_lora",
        "fedavg",
        "flame",
        "median",
        "multi_krum",
        "norm_clipping",
        "trimmed_mean",
    ]


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("fedavg", None, FedAvg()),
        ("exact_lora", {"rank": 8}, ExactLoRA(rank=8)),
        ("norm_clipping", {"max_norm": 2.0}, NormClipping(max_norm=2.0)),
        ("median", {}, CoordinateMedian()),
        ("trimmed_mean", {"beta": 0.1}, TrimmedMean(beta=0.1)),
        ("multi_krum", {"f": 2, "m": 3}, MultiKrum(f=2, m=3)),
        ("flame", {"noise_lambda": 0.001, "seed": 7}, Flame(noise_lambda=0.001, seed=7)),
    ],
)
def test_build_by_name_and_params(name: str, params: dict | None, expected: object) -> None:
    strategy = build_strategy(name, params)
    assert strategy == expected
    assert strategy.name == name


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(
        AggregationError, match=r"unknown aggregation strategy 'krum2' \(known: exact_lora, fedavg"
    ):
        build_strategy("krum2")


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(
        AggregationError,
        match=r"'trimmed_mean' has no parameter 'betta' \(valid parameters: beta\)",
    ):
        build_strategy("trimmed_mean", {"betta": 0.1})
    with pytest.raises(AggregationError, match=r"valid parameters: none"):
        build_strategy("fedavg", {"x": 1})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("trimmed_mean", {"beta": 0.5}, r"beta must be in \[0, 0.5\)"),
        ("trimmed_mean", {"beta": -0.1}, r"beta must be in \[0, 0.5\)"),
        ("trimmed_mean", {"beta": "0.1"}, r"beta must be in"),
        ("multi_krum", {"f": -1}, "f must be an int >= 0"),
        ("multi_krum", {"m": 0}, "m must be None or an int >= 1"),
        ("norm_clipping", {"max_norm": 0.0}, "max_norm must be None or a finite number > 0"),
        (
            "norm_clipping",
            {"max_norm": float("nan")},
            "max_norm must be None or a finite number > 0",
        ),
        ("exact_lora", {"rank": 0}, "rank must be None or an int >= 1"),
        ("flame", {"distance_threshold": 3.0}, r"distance_threshold must be None or in \[0, 2\]"),
        ("flame", {"noise_lambda": -1.0}, "noise_lambda must be a finite number >= 0"),
        ("flame", {"slack": 0.5}, "slack must be a finite number >= 1"),
    ],
)
def test_bad_parameter_values(name: str, params: dict, message: str) -> None:
    with pytest.raises(AggregationError, match=message):
        build_strategy(name, params)


def test_strategy_params_reports_defaults() -> None:
    assert strategy_params("multi_krum") == {"f": 1, "m": None}
    assert strategy_params("flame") == {
        "distance_threshold": None,
        "slack": 2.0,
        "noise_lambda": 0.0,
        "seed": 0,
    }
