"""Aggregation strategies: pure, deterministic functions of a round's LoRA updates.

One file per algorithm, named after it; :mod:`.base` holds the contract and input
checks, :mod:`.ops` the shared tensor kernels, :mod:`.registry` the name -> class map.

>>> from fedledger.learning.aggregation import ClientUpdate, build_strategy
>>> strategy = build_strategy("multi_krum", {"f": 1})
>>> result = strategy.aggregate(updates, reference=global_adapter)  # doctest: +SKIP
>>> result.tensors, result.accepted, result.rejected, result.details  # doctest: +SKIP
"""

from fedledger.learning.aggregation.base import (
    AggregationResult,
    AggregationStrategy,
    ClientUpdate,
    UpdateBatch,
    validate_updates,
)
from fedledger.learning.aggregation.exact_lora import ExactLoRA, pair_lora_keys, scaled_lora_alpha
from fedledger.learning.aggregation.fedavg import FedAvg
from fedledger.learning.aggregation.flame import Flame
from fedledger.learning.aggregation.krum import MultiKrum
from fedledger.learning.aggregation.median import CoordinateMedian
from fedledger.learning.aggregation.norm_clipping import NormClipping
from fedledger.learning.aggregation.registry import (
    STRATEGIES,
    available_strategies,
    build_strategy,
    strategy_params,
)
from fedledger.learning.aggregation.trimmed_mean import TrimmedMean

__all__ = [
    "STRATEGIES",
    "AggregationResult",
    "AggregationStrategy",
    "ClientUpdate",
    "CoordinateMedian",
    "ExactLoRA",
    "FedAvg",
    "Flame",
    "MultiKrum",
    "NormClipping",
    "TrimmedMean",
    "UpdateBatch",
    "available_strategies",
    "build_strategy",
    "pair_lora_keys",
    "scaled_lora_alpha",
    "strategy_params",
    "validate_updates",
]
