"""The hostile-input safetensors reader: a hand-written header parse with size caps,
checked completely (structure, byte layout, names, shapes, dtype against an
:class:`~.spec.AdapterSpec`) before ``safetensors.torch.load`` builds a single tensor, then
a finiteness check of every value."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _safetensors_load

from fedledger.learning.updates.constants import MAX_HEADER_BYTES, METADATA_KEY
from fedledger.learning.updates.dtypes import DTYPES, dtype_name
from fedledger.learning.updates.rejection import fmt_shape, is_int, parse_json, reject
from fedledger.learning.updates.spec import AdapterSpec

__all__ = ["TensorLayout", "load_tensor_bytes", "load_update_bytes", "load_update_file", "read_capped"]

_ENTRY_FIELDS = frozenset({"dtype", "shape", "data_offsets"})


@dataclass(frozen=True)
class _Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _parse_header(data: bytes, *, max_bytes: int) -> tuple[list[_Entry], int]:
    """Parse and structurally check a safetensors header; return entries and the offset
    of the data section. Reads nothing but the header."""
    if not data:
        raise reject("update is empty (0 bytes)", reason="empty")
    if len(data) > max_bytes:
        raise reject(
            f"update is {len(data)} bytes, larger than the limit of {max_bytes}", reason="too_large"
        )
    if len(data) < 8:
        raise reject(
            f"update is {len(data)} bytes, too short for the 8-byte safetensors header length",
            reason="truncated",
        )
    (header_len,) = struct.unpack("<Q", data[:8])
    # safetensors headers are JSON objects, so byte 8 is '{'. Checking it first rejects a
    # pickle or zip (torch.save) file for what it is, whatever its first 8 bytes decode to.
    if len(data) > 8 and data[8:9] != b"{":
        raise reject(
            f"not a safetensors file (byte 8 is {data[8:9]!r}, expected b'{{'; "
            f"starts with {data[:8]!r})",
            reason="not_safetensors",
        )
    if header_len > MAX_HEADER_BYTES:
        raise reject(
            f"header length {header_len} exceeds the header cap of {MAX_HEADER_BYTES} bytes",
            reason="header_too_large",
        )
    if header_len > len(data) - 8:
        raise reject(
            f"header length {header_len} runs past the end of the {len(data)}-byte update",
            reason="truncated",
        )
    header = parse_json(data[8 : 8 + header_len], what="safetensors header", reason="bad_header")
    if not isinstance(header, dict):
        raise reject(
            f"safetensors header is a JSON {type(header).__name__}, expected an object",
            reason="bad_header",
        )

    entries: list[_Entry] = []
    for name, info in header.items():
        if name == METADATA_KEY:
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise reject(
                    f"header entry {name!r} must map strings to strings, found {info!r:.200}",
                    reason="bad_metadata",
                    key=name,
                )
            continue
        entries.append(_parse_entry(name, info))
    return entries, 8 + header_len


def _parse_entry(name: str, info: Any) -> _Entry:
    if not isinstance(info, dict):
        raise reject(
            f"header entry for tensor {name!r} is a JSON {type(info).__name__}, expected an object",
            reason="bad_header",
            key=name,
        )
    fields = set(info)
    if fields != _ENTRY_FIELDS:
        missing = sorted(_ENTRY_FIELDS - fields)
        extra = sorted(fields - _ENTRY_FIELDS)
        raise reject(
            f"header entry for tensor {name!r} must have exactly dtype, shape and "
            f"data_offsets (missing {missing}, unexpected {extra})",
            reason="bad_header",
            key=name,
        )
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise reject(
            f"tensor {name!r} has unsupported dtype {dtype!r}", reason="bad_header", key=name
        )
    if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
        raise reject(
            f"tensor {name!r} has invalid shape {shape!r:.200}, expected a list of "
            "non-negative integers",
            reason="bad_header",
            key=name,
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise reject(
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
        expected = math.prod(e.shape) * DTYPES[e.dtype][1]
        if e.end - e.begin != expected:
            raise reject(
                f"tensor {e.name!r} data_offsets [{e.begin}, {e.end}] span {e.end - e.begin} "
                f"bytes, but dtype {e.dtype} x shape {fmt_shape(e.shape)} needs {expected}",
                reason="bad_offsets",
                key=e.name,
            )
        if e.end > data_len:
            raise reject(
                f"tensor {e.name!r} data_offsets [{e.begin}, {e.end}] run past the end of the "
                f"{data_len}-byte data section",
                reason="bad_offsets",
                key=e.name,
            )
    position = 0
    for e in sorted(entries, key=lambda e: (e.begin, e.end, e.name)):
        if e.begin != position:
            kind = "overlaps the previous tensor" if e.begin < position else "leaves a gap"
            raise reject(
                f"tensor {e.name!r} data_offsets [{e.begin}, {e.end}] {kind} "
                f"(expected begin {position})",
                reason="bad_offsets",
                key=e.name,
            )
        position = e.end
    if position != data_len:
        raise reject(
            f"tensors cover {position} bytes, but the data section has {data_len}",
            reason="bad_offsets",
        )


#: What a file must hold: tensor name -> (shape, safetensors dtype code).
TensorLayout = Mapping[str, tuple[tuple[int, ...], str]]


def _check_expected(entries: list[_Entry], layout: TensorLayout) -> None:
    found = {e.name: e for e in entries}
    missing = sorted(set(layout) - set(found))
    if missing:
        raise reject(
            f"tensor {missing[0]!r} is missing ({len(missing)} expected tensor(s) missing)",
            reason="missing_key",
            key=missing[0],
        )
    unexpected = sorted(set(found) - set(layout))
    if unexpected:
        raise reject(
            f"tensor {unexpected[0]!r} is not part of the adapter "
            f"({len(unexpected)} unexpected tensor(s))",
            reason="unexpected_key",
            key=unexpected[0],
        )
    for name, (shape, _) in layout.items():
        entry = found[name]
        if entry.shape != shape:
            raise reject(
                f"tensor {name!r} has shape {fmt_shape(entry.shape)}, "
                f"expected {fmt_shape(shape)}",
                reason="shape_mismatch",
                key=name,
            )
    for name, (_, code) in layout.items():
        entry = found[name]
        if entry.dtype != code:
            found_dtype = dtype_name(DTYPES[entry.dtype][0])
            raise reject(
                f"tensor {name!r} has dtype {entry.dtype} ({found_dtype}), expected "
                f"{code} ({dtype_name(DTYPES[code][0])})",
                reason="dtype_mismatch",
                key=name,
            )


def load_tensor_bytes(data: bytes, layout: TensorLayout, *, max_bytes: int) -> dict[str, torch.Tensor]:
    """Validate untrusted safetensors ``data`` against ``layout`` and return its tensors.

    Size, header, byte layout, names, shapes and dtypes are all checked before any tensor
    is built; values are checked to be finite afterwards. Raises UpdateRejectedError.
    """
    entries, data_start = _parse_header(data, max_bytes=max_bytes)
    _check_layout(entries, len(data) - data_start)
    _check_expected(entries, layout)
    try:
        tensors = _safetensors_load(bytes(data))
    except Exception as exc:  # the checks above should make this unreachable
        raise reject(
            f"safetensors could not decode the update ({exc})", reason="corrupt"
        ) from None
    for name in layout:
        tensor = tensors[name]
        if tensor.is_floating_point() or tensor.is_complex():
            if not bool(torch.isfinite(tensor).all()):
                bad = tensor[~torch.isfinite(tensor)].flatten()[0].item()
                raise reject(
                    f"tensor {name!r} contains non-finite values (e.g. {bad})",
                    reason="non_finite",
                    key=name,
                )
    return {name: tensors[name] for name in layout}


def load_update_bytes(data: bytes, spec: AdapterSpec, *, max_bytes: int) -> dict[str, torch.Tensor]:
    """Validate untrusted safetensors ``data`` against ``spec`` (every tensor in the
    spec's one dtype) and return its tensors (:func:`load_tensor_bytes`)."""
    code = spec.dtype_code
    return load_tensor_bytes(data, {name: (shape, code) for name, shape in spec.shapes.items()},
                             max_bytes=max_bytes)


def read_capped(path: Path, *, max_bytes: int, member: str) -> bytes:
    # Check the size before reading, then read at most max_bytes + 1 so a file that grows
    # between stat and read still cannot make us read more than the cap.
    try:
        if not path.is_file():
            raise reject(f"file {member!r} is missing ({path})", reason="missing_file", key=member)
        size = path.stat().st_size
    except OSError as exc:
        raise reject(
            f"file {member!r} cannot be read ({exc})", reason="missing_file", key=member
        ) from None
    if size > max_bytes:
        raise reject(
            f"file {member!r} is {size} bytes, larger than the limit of {max_bytes}",
            reason="too_large",
            key=member,
        )
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise reject(
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
    data = read_capped(path, max_bytes=max_bytes, member=path.name)
    return load_update_bytes(data, spec, max_bytes=max_bytes)
