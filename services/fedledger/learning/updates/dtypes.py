"""The safetensors dtype codes an update may carry, and their torch dtypes."""

from __future__ import annotations

import torch

# safetensors dtype code -> (torch dtype, bytes per element). Only whole-byte dtypes are
# listed: the byte-length check needs an exact element size, and sub-byte formats
# (F4, F6_*) are never a valid LoRA update here anyway.
DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
    "U16": (torch.uint16, 2),
    "U32": (torch.uint32, 4),
    "U64": (torch.uint64, 8),
    "C64": (torch.complex64, 8),
    "F8_E4M3": (torch.float8_e4m3fn, 1),
    "F8_E5M2": (torch.float8_e5m2, 1),
}
DTYPE_CODES: dict[torch.dtype, str] = {dt: code for code, (dt, _) in DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """``float32`` for ``torch.float32``."""
    return str(dtype).removeprefix("torch.")
