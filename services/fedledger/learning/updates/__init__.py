"""LoRA update files: the PEFT adapter format on disk, and strict loading of untrusted bytes.

An update is a PEFT adapter folder (``adapter_model.safetensors`` + ``adapter_config.json``),
the same format ``PeftModel.save_pretrained`` writes, so any model version the consortium
produces loads with ``PeftModel.from_pretrained(base, folder)`` and nothing else.

Every update that arrives from another organization (or from the coordinator, which is not
trusted either, see DESIGN.md "Trust model") is hostile until proven otherwise:

* **safetensors only.** Pickle-based formats (``torch.save`` / ``torch.load``) execute code
  while loading, so they are never opened; bytes that do not look like safetensors are
  rejected before anything is interpreted.
* **validate before allocate.** The safetensors header is parsed here, by hand, with size
  caps, and checked completely -- structure, byte layout, tensor names, shapes and dtype
  against an :class:`AdapterSpec` -- before ``safetensors.torch.load`` builds a single
  tensor. A malformed or oversized file therefore costs at most the header parse.
* **finite values.** A NaN or Inf in one update would poison an average across all orgs,
  so every tensor is checked once it is built.

Every failure raises :class:`~fedledger.learning.errors.UpdateRejectedError` with a short
``reason`` code and a message naming the offending tensor (or file member), what was
expected and what was found. Reason codes:

``empty``, ``too_large``, ``truncated``, ``header_too_large``, ``not_safetensors``,
``bad_header``, ``duplicate_key``, ``bad_metadata``, ``bad_offsets``, ``missing_key``,
``unexpected_key``, ``shape_mismatch``, ``dtype_mismatch``, ``corrupt``, ``non_finite``,
``missing_file``, ``bad_config``.

One job per module: :mod:`.constants` (file names, caps), :mod:`.dtypes`,
:mod:`.spec` (:class:`AdapterSpec`), :mod:`.writer` (:func:`update_bytes`,
:func:`save_adapter`), :mod:`.safetensors_reader` (the hostile-input parser),
:mod:`.adapter_config` (the PEFT config validator), :mod:`.folder` (an adapter folder),
:mod:`.rejection` (the error factory and strict JSON). A blob's digest is
:func:`fedledger.digests.sha256_hex` of :func:`update_bytes`.
"""

from fedledger.learning.updates.constants import (
    CONFIG_NAME,
    MAX_CONFIG_BYTES,
    MAX_HEADER_BYTES,
    SAFETENSORS_WEIGHTS_NAME,
)
from fedledger.learning.updates.folder import load_adapter_folder
from fedledger.learning.updates.safetensors_reader import (
    TensorLayout,
    load_tensor_bytes,
    load_update_bytes,
    load_update_file,
)
from fedledger.learning.updates.spec import AdapterSpec
from fedledger.learning.updates.writer import save_adapter, update_bytes

__all__ = [
    "CONFIG_NAME",
    "MAX_CONFIG_BYTES",
    "MAX_HEADER_BYTES",
    "SAFETENSORS_WEIGHTS_NAME",
    "AdapterSpec",
    "TensorLayout",
    "load_adapter_folder",
    "load_tensor_bytes",
    "load_update_bytes",
    "load_update_file",
    "save_adapter",
    "update_bytes",
]
