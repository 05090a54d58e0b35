"""Writing updates: the safetensors bytes of a state dict and the PEFT adapter folder.

Writers add ``{"format": "pt"}`` safetensors metadata, as peft does, and
:func:`update_bytes` yields exactly the bytes :func:`save_adapter` writes, so a digest
computed before upload equals the digest of the file on disk.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as _safetensors_save
from safetensors.torch import save_file as _safetensors_save_file

from fedledger.learning.errors import ConfigError, UpdateRejectedError
from fedledger.learning.updates.adapter_config import check_adapter_config
from fedledger.learning.updates.constants import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, SAVE_METADATA

__all__ = ["save_adapter", "update_bytes"]


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses non-contiguous tensors and serializes from host memory.
    return {name: t.detach().to("cpu").contiguous() for name, t in state.items()}


def update_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    """The safetensors bytes of ``state``, identical to the file :func:`save_adapter` writes."""
    return _safetensors_save(_cpu_state(state), metadata=dict(SAVE_METADATA))


def _jsonable(value: Any) -> Any:
    # peft configs hold sets (target_modules) and str-enums (peft_type, task_type), which
    # the json module either refuses or would write in an arbitrary order.
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=lambda v: (type(v).__name__, str(v)))
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def save_adapter(
    folder: str | Path, state: Mapping[str, torch.Tensor], adapter_config: Mapping[str, Any]
) -> Path:
    """Write ``state`` and ``adapter_config`` as a PEFT adapter folder and return it.

    The config is checked with the same rules the loader applies, so this never writes a
    folder that :func:`load_adapter_folder` would reject for its config.
    """
    folder = Path(folder)
    config = _jsonable(dict(adapter_config))
    shapes = {name: tuple(t.shape) for name, t in state.items()}
    try:
        check_adapter_config(config, shapes)
    except UpdateRejectedError as exc:
        raise ConfigError(f"save_adapter: invalid adapter config: {exc}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    _safetensors_save_file(
        _cpu_state(state), str(folder / SAFETENSORS_WEIGHTS_NAME), metadata=dict(SAVE_METADATA)
    )
    text = json.dumps(config, sort_keys=True, indent=2, allow_nan=False) + "\n"
    (folder / CONFIG_NAME).write_text(text, encoding="utf-8")
    return folder
