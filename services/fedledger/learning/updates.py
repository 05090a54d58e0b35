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

Choices worth knowing:

* ``target_modules`` given as a string is a regex that peft evaluates at load time; it is
  type-checked here, not evaluated. ``rank_pattern`` keys are regexes too, so instead of
  matching them, a LoRA rank found in the tensors must be ``r`` or one of the
  ``rank_pattern`` values.
* Writers add ``{"format": "pt"}`` safetensors metadata, as peft does, and
  :func:`update_bytes` yields exactly the bytes :func:`save_adapter` writes, so a digest
  computed before upload equals the digest of the file on disk.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors.torch import load as _safetensors_load
from safetensors.torch import save as _safetensors_save
from safetensors.torch import save_file as _safetensors_save_file

from fedledger.learning.errors import ConfigError, UpdateRejectedError

# peft's file names (peft.utils.constants SAFETENSORS_WEIGHTS_NAME / CONFIG_NAME), spelled
# out rather than imported: importing peft pulls in transformers (~5 s), and services that
# only validate and aggregate updates should not pay for it. A test pins them to peft's.
SAFETENSORS_WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"

__all__ = [
    "CONFIG_NAME",
    "MAX_CONFIG_BYTES",
    "MAX_HEADER_BYTES",
    "SAFETENSORS_WEIGHTS_NAME",
    "AdapterSpec",
    "load_adapter_folder",
    "load_update_bytes",
    "load_update_file",
    "save_adapter",
    "sha256_hex",
    "update_bytes",
]

#: Largest safetensors JSON header accepted. A LoRA adapter of a large model has a few
#: thousand entries (~100 bytes each), so this is generous while bounding the JSON parse.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Default cap on ``adapter_config.json``; peft's own configs are a few KiB.
MAX_CONFIG_BYTES = 1024 * 1024

# safetensors dtype code -> (torch dtype, bytes per element). Only whole-byte dtypes are
# listed: the byte-length check needs an exact element size, and sub-byte formats
# (F4, F6_*) are never a valid LoRA update here anyway.
_DTYPES: dict[str, tuple[torch.dtype, int]] = {
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
_DTYPE_CODES: dict[torch.dtype, str] = {dt: code for code, (dt, _) in _DTYPES.items()}

_METADATA_KEY = "__metadata__"
_ENTRY_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_SAVE_METADATA = {"format": "pt"}
# Key layout produced by peft.get_peft_model_state_dict for LoRA linear/conv layers:
# lora_A has shape (r, in, ...), lora_B has shape (out, r, ...).
_LORA_A_SUFFIXES = (".lora_A.weight", ".lora_embedding_A")
_LORA_B_SUFFIXES = (".lora_B.weight", ".lora_embedding_B")


def _reject(message: str, *, reason: str, key: str | None = None) -> UpdateRejectedError:
    return UpdateRejectedError(f"update rejected: {message}", reason=reason, key=key)


def _fmt_shape(shape: Iterable[int]) -> str:
    return str(tuple(shape))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------- spec


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
            if not isinstance(name, str) or not name or name == _METADATA_KEY:
                raise ConfigError(f"AdapterSpec: invalid tensor name {name!r}")
            dims = tuple(shape)
            if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
                raise ConfigError(f"AdapterSpec: tensor {name!r} has invalid shape {shape!r}")
            frozen[name] = dims
        if not frozen:
            raise ConfigError("AdapterSpec: an adapter needs at least one tensor")
        if self.dtype not in _DTYPE_CODES:
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
        return _DTYPE_CODES[self.dtype]

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data a conforming file holds (its header comes on top)."""
        size = _DTYPES[self.dtype_code][1]
        return sum(math.prod(shape) * size for shape in self.shapes.values())

    def digest(self) -> str:
        """sha256 of the canonical JSON of names, shapes and dtype: equal specs, equal
        digests, on every machine (it can be recorded on a ledger and recomputed)."""
        obj = {
            "dtype": _dtype_name(self.dtype),
            "shapes": {name: list(shape) for name, shape in self.shapes.items()},
        }
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- writing


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses non-contiguous tensors and serializes from host memory.
    return {name: t.detach().to("cpu").contiguous() for name, t in state.items()}


def update_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    """The safetensors bytes of ``state``, identical to the file :func:`save_adapter` writes."""
    return _safetensors_save(_cpu_state(state), metadata=dict(_SAVE_METADATA))


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``: the content address of an update blob."""
    return hashlib.sha256(data).hexdigest()


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
        _check_adapter_config(config, shapes)
    except UpdateRejectedError as exc:
        raise ConfigError(f"save_adapter: invalid adapter config: {exc}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    _safetensors_save_file(
        _cpu_state(state), str(folder / SAFETENSORS_WEIGHTS_NAME), metadata=dict(_SAVE_METADATA)
    )
    text = json.dumps(config, sort_keys=True, indent=2, allow_nan=False) + "\n"
    (folder / CONFIG_NAME).write_text(text, encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last duplicate silently; another parser might keep the first,
    # so two readers could disagree about what a file contains.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _reject(f"duplicate key {key!r} in JSON", reason="duplicate_key", key=key)
        out[key] = value
    return out


def _no_constants(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token}")


def _parse_json(text: bytes, *, what: str, reason: str, key: str | None = None) -> Any:
    try:
        return json.loads(
            text.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except UpdateRejectedError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and over-long integer literals.
        raise _reject(f"{what} is not valid JSON ({exc})", reason=reason, key=key) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_header(data: bytes, *, max_bytes: int) -> tuple[list[_Entry], int]:
    """Parse and structurally check a safetensors header; return entries and the offset
    of the data section. Reads nothing but the header."""
    if not data:
        raise _reject("update is empty (0 bytes)", reason="empty")
    if len(data) > max_bytes:
        raise _reject(
            f"update is {len(data)} bytes, larger than the limit of {max_bytes}", reason="too_large"
        )
    if len(data) < 8:
        raise _reject(
            f"update is {len(data)} bytes, too short for the 8-byte safetensors header length",
            reason="truncated",
        )
    (header_len,) = struct.unpack("<Q", data[:8])
    # safetensors headers are JSON objects, so byte 8 is '{'. Checking it first rejects a
    # pickle or zip (torch.save) file for what it is, whatever its first 8 bytes decode to.
    if len(data) > 8 and data[8:9] != b"{":
        raise _reject(
            f"not a safetensors file (byte 8 is {data[8:9]!r}, expected b'{{'; "
            f"starts with {data[:8]!r})",
            reason="not_safetensors",
        )
    if header_len > MAX_HEADER_BYTES:
        raise _reject(
            f"header length {header_len} exceeds the header cap of {MAX_HEADER_BYTES} bytes",
            reason="header_too_large",
        )
    if header_len > len(data) - 8:
        raise _reject(
            f"header length {header_len} runs past the end of the {len(data)}-byte update",
            reason="truncated",
        )
    header = _parse_json(data[8 : 8 + header_len], what="safetensors header", reason="bad_header")
    if not isinstance(header, dict):
        raise _reject(
            f"safetensors header is a JSON {type(header).__name__}, expected an object",
            reason="bad_header",
        )

    entries: list[_Entry] = []
    for name, info in header.items():
        if name == _METADATA_KEY:
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise _reject(
                    f"header entry {name!r} must map strings to strings, found {info!r:.200}",
                    reason="bad_metadata",
                    key=name,
                )
            continue
        entries.append(_parse_entry(name, info))
    return entries, 8 + header_len


def _parse_entry(name: str, info: Any) -> _Entry:
    if not isinstance(info, dict):
        raise _reject(
            f"header entry for tensor {name!r} is a JSON {type(info).__name__}, expected an object",
            reason="bad_header",
            key=name,
        )
    fields = set(info)
    if fields != _ENTRY_FIELDS:
        missing = sorted(_ENTRY_FIELDS - fields)
        extra = sorted(fields - _ENTRY_FIELDS)
        raise _reject(
            f"header entry for tensor {name!r} must have exactly dtype, shape and "
            f"data_offsets (missing {missing}, unexpected {extra})",
            reason="bad_header",
            key=name,
        )
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise _reject(
            f"tensor {name!r} has unsupported dtype {dtype!r}", reason="bad_header", key=name
        )
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise _reject(
            f"tensor {name!r} has invalid shape {shape!r:.200}, expected a list of "
            "non-negative integers",
            reason="bad_header",
            key=name,
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _reject(
            f"tensor {name!r} has invalid data_offsets {offsets!r:.200}, expected "
            "[begin, end] with 0 <= begin <= end",
            reason="bad_offsets",
            key=name,
        )
    return _Entry(name, dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(entries: list[_Entry], data_len: int) -> None:
    """Each tensor's byte range must fit its dtype x shape, and the ranges must tile the
    data section exactly: no gaps (hidden payload), no overlap (aliasing), nothing past
    the end."""
    for e in entries:
        expected = math.prod(e.shape) * _DTYPES[e.dtype][1]
        if e.end - e.begin != expected:
            raise _reject(
                f"tensor {e.name!r} data_offsets [{e.begin}, {e.end}] span {e.end - e.begin} "
                f"bytes, but dtype {e.dtype} x shape {_fmt_shape(e.shape)} needs {expected}",
                reason="bad_offsets",
                key=e.name,
            )
        if e.end > data_len:
            raise _reject(
                f"tensor {e.name!r} data_offsets [{e.begin}, {e.end}] run past the end of the "
                f"{data_len}-byte data section",
                reason="bad_offsets",
                key=e.name,
            )
    position = 0
    for e in sorted(entries, key=lambda e: (e.begin, e.end, e.name)):
        if e.begin != position:
            kind = "overlaps the previous tensor" if e.begin < position else "leaves a gap"
            raise _reject(
                f"tensor {e.name!r} data_offsets [{e.begin}, {e.end}] {kind} "
                f"(expected begin {position})",
                reason="bad_offsets",
                key=e.name,
            )
        position = e.end
    if position != data_len:
        raise _reject(
            f"tensors cover {position} bytes, but the data section has {data_len}",
            reason="bad_offsets",
        )


def _check_spec(entries: list[_Entry], spec: AdapterSpec) -> None:
    found = {e.name: e for e in entries}
    missing = sorted(set(spec.shapes) - set(found))
    if missing:
        raise _reject(
            f"tensor {missing[0]!r} is missing ({len(missing)} expected tensor(s) missing)",
            reason="missing_key",
            key=missing[0],
        )
    unexpected = sorted(set(found) - set(spec.shapes))
    if unexpected:
        raise _reject(
            f"tensor {unexpected[0]!r} is not part of the adapter "
            f"({len(unexpected)} unexpected tensor(s))",
            reason="unexpected_key",
            key=unexpected[0],
        )
    for name, shape in spec.shapes.items():
        entry = found[name]
        if entry.shape != shape:
            raise _reject(
                f"tensor {name!r} has shape {_fmt_shape(entry.shape)}, "
                f"expected {_fmt_shape(shape)}",
                reason="shape_mismatch",
                key=name,
            )
    for name in spec.shapes:
        entry = found[name]
        if entry.dtype != spec.dtype_code:
            found_dtype = _dtype_name(_DTYPES[entry.dtype][0])
            raise _reject(
                f"tensor {name!r} has dtype {entry.dtype} ({found_dtype}), expected "
                f"{spec.dtype_code} ({_dtype_name(spec.dtype)})",
                reason="dtype_mismatch",
                key=name,
            )


def load_update_bytes(data: bytes, spec: AdapterSpec, *, max_bytes: int) -> dict[str, torch.Tensor]:
    """Validate untrusted safetensors ``data`` against ``spec`` and return its tensors.

    Size, header, byte layout, names, shapes and dtype are all checked before any tensor
    is built; values are checked to be finite afterwards. Raises UpdateRejectedError.
    """
    entries, data_start = _parse_header(data, max_bytes=max_bytes)
    _check_layout(entries, len(data) - data_start)
    _check_spec(entries, spec)
    try:
        tensors = _safetensors_load(bytes(data))
    except Exception as exc:  # the checks above should make this unreachable
        raise _reject(
            f"safetensors could not decode the update ({exc})", reason="corrupt"
        ) from None
    for name in spec.shapes:
        tensor = tensors[name]
        if tensor.is_floating_point() or tensor.is_complex():
            if not bool(torch.isfinite(tensor).all()):
                bad = tensor[~torch.isfinite(tensor)].flatten()[0].item()
                raise _reject(
                    f"tensor {name!r} contains non-finite values (e.g. {bad})",
                    reason="non_finite",
                    key=name,
                )
    return {name: tensors[name] for name in spec.shapes}


def _read_capped(path: Path, *, max_bytes: int, member: str) -> bytes:
    # Check the size before reading, then read at most max_bytes + 1 so a file that grows
    # between stat and read still cannot make us read more than the cap.
    try:
        if not path.is_file():
            raise _reject(f"file {member!r} is missing ({path})", reason="missing_file", key=member)
        size = path.stat().st_size
    except OSError as exc:
        raise _reject(
            f"file {member!r} cannot be read ({exc})", reason="missing_file", key=member
        ) from None
    if size > max_bytes:
        raise _reject(
            f"file {member!r} is {size} bytes, larger than the limit of {max_bytes}",
            reason="too_large",
            key=member,
        )
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _reject(
            f"file {member!r} grew past the limit of {max_bytes} bytes while reading",
            reason="too_large",
            key=member,
        )
    return data


def load_update_file(
    path: str | Path, spec: AdapterSpec, *, max_bytes: int
) -> dict[str, torch.Tensor]:
    """:func:`load_update_bytes` for a file, refusing oversized files before reading them."""
    path = Path(path)
    data = _read_capped(path, max_bytes=max_bytes, member=path.name)
    return load_update_bytes(data, spec, max_bytes=max_bytes)


def _lora_rank(name: str, shape: tuple[int, ...]) -> int | None:
    if name.endswith(_LORA_A_SUFFIXES) and len(shape) >= 2:
        return shape[0]
    if name.endswith(_LORA_B_SUFFIXES) and len(shape) >= 2:
        return shape[1]
    return None


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )


def _check_number_map(config: dict[str, Any], key: str, *, positive_int: bool) -> list[Any]:
    """Values of an optional ``{module pattern: number}`` map such as ``rank_pattern``."""
    value = config.get(key)
    if value is None:
        return []
    valid = (lambda v: _is_int(v) and v > 0) if positive_int else _is_number
    if not isinstance(value, dict) or not all(valid(v) for v in value.values()):
        expected = "positive integers" if positive_int else "numbers"
        raise _reject(
            f"adapter config {key!r} must map module patterns to {expected}, "
            f"found {value!r:.200}",
            reason="bad_config",
            key=key,
        )
    return list(value.values())


def _check_adapter_config(config: Any, shapes: Mapping[str, tuple[int, ...]]) -> None:
    if not isinstance(config, dict):
        raise _reject(
            f"{CONFIG_NAME} is a JSON {type(config).__name__}, expected an object",
            reason="bad_config",
            key=CONFIG_NAME,
        )
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise _reject(
            f"adapter config 'peft_type' is {peft_type!r:.100}, expected 'LORA'",
            reason="bad_config",
            key="peft_type",
        )
    r = config.get("r")
    if not _is_int(r) or r <= 0:
        raise _reject(
            f"adapter config 'r' is {r!r:.100}, expected a positive integer",
            reason="bad_config",
            key="r",
        )
    alpha = config.get("lora_alpha")
    if not _is_number(alpha):
        raise _reject(
            f"adapter config 'lora_alpha' is {alpha!r:.100}, expected a finite number",
            reason="bad_config",
            key="lora_alpha",
        )
    targets = config.get("target_modules")
    if not (
        isinstance(targets, str)
        or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        raise _reject(
            f"adapter config 'target_modules' is {targets!r:.100}, expected a list of "
            "module names or a regex string",
            reason="bad_config",
            key="target_modules",
        )
    allowed_ranks = {r, *_check_number_map(config, "rank_pattern", positive_int=True)}
    _check_number_map(config, "alpha_pattern", positive_int=False)
    for name, shape in shapes.items():
        rank = _lora_rank(name, shape)
        if rank is not None and rank not in allowed_ranks:
            expected = f"r={r}" if allowed_ranks == {r} else f"one of {sorted(allowed_ranks)}"
            raise _reject(
                f"tensor {name!r} has shape {_fmt_shape(shape)}, i.e. LoRA rank {rank}, but "
                f"adapter config says {expected}",
                reason="bad_config",
                key="r",
            )


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
        raise _reject(f"adapter folder {str(folder)!r} does not exist", reason="missing_file")
    config_bytes = _read_capped(
        folder / CONFIG_NAME, max_bytes=max_config_bytes, member=CONFIG_NAME
    )
    weights = _read_capped(
        folder / SAFETENSORS_WEIGHTS_NAME, max_bytes=max_bytes, member=SAFETENSORS_WEIGHTS_NAME
    )
    config = _parse_json(config_bytes, what=CONFIG_NAME, reason="bad_config", key=CONFIG_NAME)
    # The config is tiny and cheap to check; doing it before the tensors means a bad
    # config never costs a tensor allocation.
    _check_adapter_config(config, spec.shapes)
    tensors = load_update_bytes(weights, spec, max_bytes=max_bytes)
    return tensors, config
