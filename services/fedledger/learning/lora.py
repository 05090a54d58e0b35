"""peft LoRA wrapping and the adapter state that federated rounds exchange.

The state dict uses peft's own key naming (``get_peft_model_state_dict``), so a saved
adapter folder loads with ``PeftModel.from_pretrained`` and a received update can be
checked key-by-key against the expected layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import PreTrainedModel

from fedledger.learning.config import LoraConfig
from fedledger.learning.seeds import seeded_global_rng

AdapterState = dict[str, torch.Tensor]


def peft_lora_config(config: LoraConfig, *, r: int | None = None) -> PeftLoraConfig:
    rank = r or config.r
    # alpha is scaled with the rank so alpha/r, the update's scale, stays the same when an
    # aggregation strategy returns a different rank (exact LoRA aggregation can).
    alpha = config.alpha * rank / config.r
    return PeftLoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; a scaled alpha can be fractional
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach_lora(model: PreTrainedModel, config: LoraConfig, *, seed: int) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters. The init (kaiming A, zero B) draws from a
    generator seeded here, so every org starting from one seed starts identical."""
    with seeded_global_rng(seed):
        return get_peft_model(model, peft_lora_config(config))


def adapter_state(model: PeftModel) -> AdapterState:
    """A detached fp32 CPU copy of the adapter weights."""
    return {
        key: value.detach().to("cpu", torch.float32).clone()
        for key, value in get_peft_model_state_dict(model).items()
    }


def load_adapter_state(model: PeftModel, state: Mapping[str, torch.Tensor]) -> None:
    result = set_peft_model_state_dict(model, dict(state))
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise KeyError(f"adapter state has keys the model lacks: {sorted(unexpected)[:3]}")


def adapter_config_dict(model: PeftModel) -> dict[str, Any]:
    """The adapter_config.json content, JSON-safe (peft keeps target_modules as a set)."""
    raw = model.peft_config["default"].to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in raw.items()}


def state_norm(state: Mapping[str, torch.Tensor]) -> float:
    zero = torch.zeros((), dtype=torch.float64)  # sum()'s start; 0 + x is exact
    return float(torch.sqrt(sum(((t.double() ** 2).sum() for t in state.values()), zero)))
