"""LoRA tensor names, parsed in one place: which key is a factor (A or B) of which module,
and the rank a factor's shape implies.

peft names a LoRA linear/conv factor ``<module>.lora_A.weight`` / ``<module>.lora_B.weight``
and an embedding factor ``<module>.lora_embedding_A`` / ``_B`` in saved files; in memory an
adapter-name component follows (``lora_A.default.weight``). ``lora_A`` has shape
``(r, in, ...)``, ``lora_B`` has shape ``(out, r, ...)``. Imports neither torch nor peft, so
the update validators stay cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from fedledger.learning.errors import AggregationError

__all__ = ["LoRAPair", "factor_of", "factor_rank", "pair_lora_keys", "saved_key", "shapes_rank"]

# A dotted component lora_A / lora_B (linear) or lora_embedding_A / _B (embedding),
# with or without an adapter-name component after it (in-memory vs saved state dicts).
_FACTOR = re.compile(r"(?:^|\.)lora_(?:embedding_)?([AB])(?=\.|$)")
# The saved-file spelling only (what adapter_config.json's rank is checked against).
_SAVED_A_SUFFIXES = (".lora_A.weight", ".lora_embedding_A")
_SAVED_B_SUFFIXES = (".lora_B.weight", ".lora_embedding_B")


@dataclass(frozen=True)
class LoRAPair:
    """The two keys of one LoRA module; ``module`` is the key with A/B replaced by ``*``."""

    module: str
    a_key: str
    b_key: str


def factor_of(key: str) -> Literal["A", "B"] | None:
    """``"A"`` / ``"B"`` when ``key`` is a LoRA factor (saved or in-memory name), else None."""
    match = _FACTOR.search(key)
    if match is None:
        return None
    return "A" if match.group(1) == "A" else "B"


def pair_lora_keys(keys: tuple[str, ...]) -> tuple[list[LoRAPair], list[str]]:
    """Split keys into LoRA (A, B) pairs and the rest; an unpaired factor is an error."""
    halves: dict[str, dict[str, str]] = {}
    others: list[str] = []
    for key in keys:
        match = _FACTOR.search(key)
        if match is None:
            others.append(key)
            continue
        module = key[: match.start(1)] + "*" + key[match.end(1) :]
        halves.setdefault(module, {})[match.group(1)] = key
    pairs: list[LoRAPair] = []
    for module, sides in sorted(halves.items()):
        if set(sides) != {"A", "B"}:
            ((side, key),) = sides.items()
            missing = "B" if side == "A" else "A"
            raise AggregationError(f"LoRA key {key!r} has no matching lora_{missing} key")
        pairs.append(LoRAPair(module=module, a_key=sides["A"], b_key=sides["B"]))
    return pairs, others


def saved_key(name: str, adapter_name: str = "default") -> str:
    """The saved-file key of an in-memory parameter name (``...lora_A.default.weight`` ->
    ``...lora_A.weight``): what adapter states and updates are keyed by."""
    return re.sub(rf"(lora_(?:embedding_)?[AB])\.{re.escape(adapter_name)}(?=\.|$)", r"\1", name)


def factor_rank(name: str, shape: tuple[int, ...]) -> int | None:
    """The LoRA rank a saved-format factor ``name`` of ``shape`` implies; None for a key
    that is not one (or whose shape has fewer than two dimensions)."""
    if name.endswith(_SAVED_A_SUFFIXES) and len(shape) >= 2:
        return shape[0]
    if name.endswith(_SAVED_B_SUFFIXES) and len(shape) >= 2:
        return shape[1]
    return None


def shapes_rank(shapes: Mapping[str, Iterable[int]]) -> int:
    """The rank of an adapter: the first dimension of its first ``lora_A`` factor."""
    for key, shape in shapes.items():
        if factor_of(key) == "A" and "lora_A" in key:
            return int(tuple(shape)[0])
    raise ValueError("state has no lora_A tensor")
