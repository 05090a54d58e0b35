"""Loading an untrusted PEFT adapter folder: config first (cheap), then the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fedledger.learning.updates.adapter_config import check_adapter_config
from fedledger.learning.updates.constants import CONFIG_NAME, MAX_CONFIG_BYTES, SAFETENSORS_WEIGHTS_NAME
from fedledger.learning.updates.rejection import parse_json, reject
from fedledger.learning.updates.safetensors_reader import load_update_bytes, read_capped
from fedledger.learning.updates.spec import AdapterSpec

__all__ = ["load_adapter_folder"]


def load_adapter_folder(
    folder: str | Path,
    spec: AdapterSpec,
    *,
    max_bytes: int,
    max_config_bytes: int = MAX_CONFIG_BYTES,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Validate an untrusted PEFT adapter folder; return ``(tensors, adapter_config)``.

    ``max_bytes`` caps the weights file, ``max_config_bytes`` the config file. The config
    must be a LoRA config whose rank agrees with the tensor shapes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise reject(f"adapter folder {str(folder)!r} does not exist", reason="missing_file")
    config_bytes = read_capped(
        folder / CONFIG_NAME, max_bytes=max_config_bytes, member=CONFIG_NAME
    )
    weights = read_capped(
        folder / SAFETENSORS_WEIGHTS_NAME, max_bytes=max_bytes, member=SAFETENSORS_WEIGHTS_NAME
    )
    config = parse_json(config_bytes, what=CONFIG_NAME, reason="bad_config", key=CONFIG_NAME)
    # The config is tiny and cheap to check; doing it before the tensors means a bad
    # config never costs a tensor allocation.
    check_adapter_config(config, spec.shapes)
    tensors = load_update_bytes(weights, spec, max_bytes=max_bytes)
    return tensors, config
