"""Deterministic aggregation of a round, and the adapter layout uploads must have.

* :func:`adapter_context` builds, once per (model, lora, seed) config, the
  :class:`~fedledger.learning.updates.AdapterSpec` every update is checked against and
  the fresh LoRA init that round 1 starts from: it loads the configured base model on
  the CPU and attaches the initial LoRA with
  :func:`fedledger.learning.round.initial_adapter` -- the one definition the simulation
  and the org nodes use, so they and this coordinator agree on the reference adapter.
* :func:`aggregate_updates` runs the configured strategy over the included updates
  sorted by org, with the round's base adapter as reference, then the round's server
  optimizer (if any) from the base adapter and state; the digest is the sha256 of
  ``learning.updates.update_bytes(next adapter)``, which are also the stored blob's bytes,
  and the server state is stored and digested the same way.
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
from fedledger.learning.round import initial_adapter, round_server_optimizer, round_strategy_params
from fedledger.learning.server_optimizers import ServerOptimizer, ServerState
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


def server_optimizer_of(config: Mapping[str, Any]) -> ServerOptimizer | None:
    """The round config's server optimizer (None: the aggregate is the next adapter)."""
    return round_server_optimizer(config.get("server_optimizer"))


@dataclass(frozen=True)
class AggregateOutcome:
    """The next adapter (``data``, ``digest``: after the server step, if any), the
    strategy's verdicts, and the server state after the step (None without one)."""

    data: bytes
    digest: str
    accepted: list[str]
    rejected: dict[str, str]
    details: dict[str, Any]
    server_state_data: bytes | None = None
    server_state_digest: str | None = None


def aggregate_updates(name: str, params: Mapping[str, Any],
                      updates: Mapping[str, tuple[Mapping[str, torch.Tensor], int]],
                      reference: Mapping[str, torch.Tensor], *,
                      server: ServerOptimizer | None = None,
                      server_state: ServerState | None = None) -> AggregateOutcome:
    """``updates``: org -> (tensors, num_samples). Inputs go to the strategy sorted by org;
    with ``server``, its step from ``reference`` and ``server_state`` (None: the initial
    state) gives the next adapter."""
    strategy = build_strategy(name, dict(params))
    inputs = [ClientUpdate(client_id=org, tensors=tensors, num_samples=n)
              for org, (tensors, n) in sorted(updates.items())]
    result = strategy.aggregate(inputs, reference=reference)
    details = json.loads(json.dumps(result.details, default=str))
    if server is None:
        data = update_bytes(result.tensors)
        return AggregateOutcome(data, sha256_hex(data), list(result.accepted),
                                dict(result.rejected), details)
    stepped = server.step(reference, result.tensors, server_state)
    data, state_data = update_bytes(stepped.tensors), update_bytes(stepped.state)
    return AggregateOutcome(data, sha256_hex(data), list(result.accepted), dict(result.rejected),
                            details, state_data, sha256_hex(state_data))


def load_stored_update(blobs: BlobStore, sha: str, context: AdapterContext, *,
                       max_bytes: int) -> dict[str, torch.Tensor]:
    """The stored blob ``sha`` as an update checked against ``context``'s spec
    (AggregationError when the stored bytes no longer hash to ``sha``)."""
    data = blobs.read(sha)
    if sha256_hex(data) != sha:
        raise AggregationError(f"stored blob {sha} is corrupt (hash mismatch)")
    return load_update_bytes(data, context.spec, max_bytes=max_bytes)
