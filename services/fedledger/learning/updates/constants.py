"""The names and limits of the PEFT adapter format as fedledger exchanges it.

peft's file names (peft.utils.constants SAFETENSORS_WEIGHTS_NAME / CONFIG_NAME) are spelled
out rather than imported: importing peft pulls in transformers (~5 s), and services that
only validate and aggregate updates should not pay for it. A test pins them to peft's.
"""

from __future__ import annotations

SAFETENSORS_WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"

#: Largest safetensors JSON header accepted. A LoRA adapter of a large model has a few
#: thousand entries (~100 bytes each), so this is generous while bounding the JSON parse.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Default cap on ``adapter_config.json``; peft's own configs are a few KiB.
MAX_CONFIG_BYTES = 1024 * 1024

#: The reserved safetensors header key of the string -> string metadata map.
METADATA_KEY = "__metadata__"
#: Metadata writers add, as peft does.
SAVE_METADATA = {"format": "pt"}
