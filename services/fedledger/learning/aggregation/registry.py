"""Build a strategy from configuration: ``build_strategy("trimmed_mean", {"beta": 0.1})``.

Round configuration (coordinator API, CLI, experiment files) names a strategy and its
parameters as plain data; this is the one place that maps them to classes, so an unknown
name or a misspelt parameter fails loudly with the list of valid choices instead of
being silently ignored. Parameter *values* are checked by each strategy's
``__post_init__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fedledger.learning.aggregation.base import AggregationStrategy
from fedledger.learning.aggregation.exact_lora import ExactLoRA
from fedledger.learning.aggregation.fedavg import FedAvg
from fedledger.learning.aggregation.flame import Flame
from fedledger.learning.aggregation.krum import MultiKrum
from fedledger.learning.aggregation.median import CoordinateMedian
from fedledger.learning.aggregation.norm_clipping import NormClipping
from fedledger.learning.aggregation.trimmed_mean import TrimmedMean
from fedledger.learning.errors import AggregationError

__all__ = ["STRATEGIES", "available_strategies", "build_strategy", "strategy_params"]

STRATEGIES: dict[str, type[AggregationStrategy]] = {
    cls.name: cls
    for cls in (FedAvg, ExactLoRA, NormClipping, CoordinateMedian, TrimmedMean, MultiKrum, Flame)
}


def available_strategies() -> list[str]:
    return sorted(STRATEGIES)


def strategy_params(name: str) -> dict[str, Any]:
    """Parameter names of strategy ``name`` with their defaults."""
    cls = _lookup(name)
    return {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def build_strategy(name: str, params: Mapping[str, Any] | None = None) -> AggregationStrategy:
    """Instantiate strategy ``name``; raise :class:`AggregationError` on unknown names/params."""
    cls = _lookup(name)
    params = dict(params or {})
    accepted = strategy_params(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none"
        raise AggregationError(
            f"strategy {name!r} has no parameter {unknown[0]!r} (valid parameters: {valid})"
        )
    return cls(**params)


def _lookup(name: str) -> type[AggregationStrategy]:
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise AggregationError(
            f"unknown aggregation strategy {name!r} (known: {', '.join(available_strategies())})"
        ) from None
