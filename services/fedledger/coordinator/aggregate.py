"""Deterministic aggregation of a round, and the adapter layout uploads must have.

* :func:`adapter_context` builds, once per (model, lora, seed) config, the
  :class:`~fedledger.learning.updates.AdapterSpec` every update is checked against and
  the fresh LoRA init that round 1 starts from: it loads the configured base model on
  the CPU and attaches LoRA with the seed ``derive_seed(seed, "lora-init")`` -- the same
  steps as ``learning.simulation.Federation.build``, so org nodes that start from that
  init and this coordinator agree on the reference adapter.
* :func:`aggregate_updates` runs the configured strategy over the included updates
  sorted by org, with the round's base adapter as reference; the digest is the sha256
  of ``learning.updates.update_bytes(aggregate)``, which are also the stored blob's bytes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from fedledger.canonical import canonical_json
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.updates import AdapterSpec, sha256_hex, update_bytes


@dataclass(frozen=True)
class AdapterContext:
    spec: AdapterSpec
    initial_state: dict[str, torch.Tensor]
    adapter_config: dict[str, Any]


_CACHE: dict[bytes, AdapterContext] = {}
_CACHE_LOCK = threading.Lock()


def adapter_context(model: Mapping[str, Any], lora: Mapping[str, Any], seed: int) -> AdapterContext:
    """Spec + initial adapter of a round config's ``model`` / ``lora`` sections (cached)."""
    key = canonical_json({"model": model, "lora": lora, "seed": seed})
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        # Imported here: transformers/peft cost seconds and only this needs them.
        from fedledger.learning.config import LoraConfig, ModelConfig
        from fedledger.learning.lora import adapter_config_dict, adapter_state, attach_lora
        from fedledger.learning.models import load_base_model
        from fedledger.learning.seeds import derive_seed

        loaded = load_base_model(ModelConfig.model_validate(dict(model)))
        peft_model = attach_lora(loaded.model, LoraConfig.model_validate(dict(lora)),
                                 seed=derive_seed(seed, "lora-init"))
        state = adapter_state(peft_model)
        context = AdapterContext(AdapterSpec.from_state_dict(state), state,
                                 adapter_config_dict(peft_model))
        _CACHE[key] = context
        return context


def strategy_of(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Strategy name and params of a round config (exact LoRA keeps the configured rank)."""
    strategy = config["strategy"]
    params = dict(strategy.get("params") or {})
    if strategy["name"] == "exact_lora":
        params.setdefault("rank", config["lora"]["r"])
    return strategy["name"], params


@dataclass(frozen=True)
class AggregateOutcome:
    data: bytes
    digest: str
    accepted: list[str]
    rejected: dict[str, str]
    details: dict[str, Any]


def aggregate_updates(name: str, params: Mapping[str, Any],
                      updates: Mapping[str, tuple[Mapping[str, torch.Tensor], int]],
                      reference: Mapping[str, torch.Tensor] | None) -> AggregateOutcome:
    """``updates``: org -> (tensors, num_samples). Inputs go to the strategy sorted by org."""
    strategy = build_strategy(name, dict(params))
    inputs = [ClientUpdate(client_id=org, tensors=tensors, num_samples=n)
              for org, (tensors, n) in sorted(updates.items())]
    result = strategy.aggregate(inputs, reference=reference)
    data = update_bytes(result.tensors)
    details = json.loads(json.dumps(result.details, default=str))
    return AggregateOutcome(data, sha256_hex(data), list(result.accepted), dict(result.rejected),
                            details)
