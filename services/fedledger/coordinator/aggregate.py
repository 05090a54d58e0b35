"""Deterministic aggregation of a round, and the adapter layout uploads must have.

* :func:`adapter_context` builds, once per (model, lora, seed) config, the
  :class:`~fedledger.learning.updates.AdapterSpec` every update is checked against and
  the fresh LoRA init that round 1 starts from: it loads the configured base model on
  the CPU and attaches the initial LoRA with
  :func:`fedledger.learning.round.initial_adapter` -- the one definition the simulation
  and the org nodes use, so they and this coordinator agree on the reference adapter.
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
from fedledger.digests import sha256_hex
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.config import LoraConfig, ModelConfig
from fedledger.learning.errors import AggregationError
from fedledger.learning.lora import adapter_config_dict
from fedledger.learning.round import initial_adapter, round_strategy_params
from fedledger.learning.updates import AdapterSpec, load_update_bytes, update_bytes

from .blobs import BlobStore


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
        initial = initial_adapter(ModelConfig.model_validate(dict(model)),
                                  LoraConfig.model_validate(dict(lora)), seed)
        context = AdapterContext(initial.spec, initial.state, adapter_config_dict(initial.model))
        _CACHE[key] = context
        return context


def strategy_of(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Strategy name and params of a round config (exact LoRA keeps the configured rank)."""
    strategy = config["strategy"]
    return strategy["name"], round_strategy_params(strategy["name"], strategy.get("params"),
                                                   config["lora"]["r"])


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


def load_stored_update(blobs: BlobStore, sha: str, context: AdapterContext, *,
                       max_bytes: int) -> dict[str, torch.Tensor]:
    """The stored blob ``sha`` as an update checked against ``context``'s spec
    (AggregationError when the stored bytes no longer hash to ``sha``)."""
    data = blobs.read(sha)
    if sha256_hex(data) != sha:
        raise AggregationError(f"stored blob {sha} is corrupt (hash mismatch)")
    return load_update_bytes(data, context.spec, max_bytes=max_bytes)
