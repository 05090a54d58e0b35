"""Checks of an ``adapter_config.json`` against the tensors it describes: a LoRA config
whose rank agrees with the tensor shapes.

``target_modules`` given as a string is a regex that peft evaluates at load time; it is
type-checked here, not evaluated. ``rank_pattern`` keys are regexes too, so instead of
matching them, a LoRA rank found in the tensors must be ``r`` or one of the
``rank_pattern`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedledger.learning.lora_keys import factor_rank
from fedledger.learning.updates.constants import CONFIG_NAME
from fedledger.learning.updates.rejection import fmt_shape, is_int, is_number, reject

__all__ = ["check_adapter_config"]


def _check_number_map(config: dict[str, Any], key: str, *, positive_int: bool) -> list[Any]:
    """Values of an optional ``{module pattern: number}`` map such as ``rank_pattern``."""
    value = config.get(key)
    if value is None:
        return []
    valid = (lambda v: is_int(v) and v > 0) if positive_int else is_number
    if not isinstance(value, dict) or not all(valid(v) for v in value.values()):
        expected = "positive integers" if positive_int else "numbers"
        raise reject(
            f"adapter config {key!r} must map module patterns to {expected}, "
            f"found {value!r:.200}",
            reason="bad_config",
            key=key,
        )
    return list(value.values())


def check_adapter_config(config: Any, shapes: Mapping[str, tuple[int, ...]]) -> None:
    if not isinstance(config, dict):
        raise reject(
            f"{CONFIG_NAME} is a JSON {type(config).__name__}, expected an object",
            reason="bad_config",
            key=CONFIG_NAME,
        )
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise reject(
            f"adapter config 'peft_type' is {peft_type!r:.100}, expected 'LORA'",
            reason="bad_config",
            key="peft_type",
        )
    r = config.get("r")
    if not is_int(r) or r <= 0:
        raise reject(
            f"adapter config 'r' is {r!r:.100}, expected a positive integer",
            reason="bad_config",
            key="r",
        )
    alpha = config.get("lora_alpha")
    if not is_number(alpha):
        raise reject(
            f"adapter config 'lora_alpha' is {alpha!r:.100}, expected a finite number",
            reason="bad_config",
            key="lora_alpha",
        )
    targets = config.get("target_modules")
    if not (
        isinstance(targets, str)
        or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        raise reject(
            f"adapter config 'target_modules' is {targets!r:.100}, expected a list of "
            "module names or a regex string",
            reason="bad_config",
            key="target_modules",
        )
    allowed_ranks = {r, *_check_number_map(config, "rank_pattern", positive_int=True)}
    _check_number_map(config, "alpha_pattern", positive_int=False)
    for name, shape in shapes.items():
        rank = factor_rank(name, shape)
        if rank is not None and rank not in allowed_ranks:
            expected = f"r={r}" if allowed_ranks == {r} else f"one of {sorted(allowed_ranks)}"
            raise reject(
                f"tensor {name!r} has shape {fmt_shape(shape)}, i.e. LoRA rank {rank}, but "
                f"adapter config says {expected}",
                reason="bad_config",
                key="r",
            )
