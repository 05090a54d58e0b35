"""The layout an update must have (:class:`AdapterSpec`), built from the trusted side."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from fedledger.learning.errors import ConfigError
from fedledger.learning.updates.constants import METADATA_KEY
from fedledger.learning.updates.dtypes import DTYPE_CODES, DTYPES, dtype_name


@dataclass(frozen=True)
class AdapterSpec:
    """The layout an update must have: tensor names (as saved in adapter files, e.g.
    ``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``), their shapes and
    one dtype shared by all tensors.

    Built from the trusted side -- the local model (:meth:`from_model`) or a state dict
    this process produced (:meth:`from_state_dict`) -- never from a received file.
    """

    shapes: Mapping[str, tuple[int, ...]]
    dtype: torch.dtype = field(default=torch.float32)

    def __post_init__(self) -> None:
        # Freeze the mapping so a spec shared between threads/rounds cannot drift.
        frozen: dict[str, tuple[int, ...]] = {}
        for name, shape in self.shapes.items():
            if not isinstance(name, str) or not name or name == METADATA_KEY:
                raise ConfigError(f"AdapterSpec: invalid tensor name {name!r}")
            dims = tuple(shape)
            if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
                raise ConfigError(f"AdapterSpec: tensor {name!r} has invalid shape {shape!r}")
            frozen[name] = dims
        if not frozen:
            raise ConfigError("AdapterSpec: an adapter needs at least one tensor")
        if self.dtype not in DTYPE_CODES:
            raise ConfigError(f"AdapterSpec: unsupported dtype {self.dtype}")
        object.__setattr__(self, "shapes", MappingProxyType(dict(sorted(frozen.items()))))

    def __hash__(self) -> int:
        return hash(self.digest())

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, torch.Tensor], *, dtype: torch.dtype | None = None
    ) -> AdapterSpec:
        """Spec of ``state``; ``dtype`` defaults to the tensors' (single) dtype."""
        dtypes = {t.dtype for t in state.values()}
        if dtype is None:
            if len(dtypes) != 1:
                raise ConfigError(
                    f"AdapterSpec: tensors have mixed dtypes {sorted(map(str, dtypes))}; "
                    "pass dtype= explicitly"
                )
            dtype = dtypes.pop()
        return cls({name: tuple(t.shape) for name, t in state.items()}, dtype)

    @classmethod
    def from_model(
        cls, peft_model: Any, *, adapter_name: str = "default", dtype: torch.dtype | None = None
    ) -> AdapterSpec:
        """Spec of a peft model's adapter, keyed exactly as ``save_pretrained`` keys it."""
        from peft import get_peft_model_state_dict  # lazy: see the file-name constants

        state = get_peft_model_state_dict(peft_model, adapter_name=adapter_name)
        return cls.from_state_dict(state, dtype=dtype)

    @property
    def dtype_code(self) -> str:
        """The safetensors dtype code files must carry (``F32`` for ``torch.float32``)."""
        return DTYPE_CODES[self.dtype]

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data a conforming file holds (its header comes on top)."""
        size = DTYPES[self.dtype_code][1]
        return sum(math.prod(shape) * size for shape in self.shapes.values())

    def digest(self) -> str:
        """sha256 of the canonical JSON of names, shapes and dtype: equal specs, equal
        digests, on every machine (it can be recorded on a ledger and recomputed)."""
        obj = {
            "dtype": dtype_name(self.dtype),
            "shapes": {name: list(shape) for name, shape in self.shapes.items()},
        }
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
