"""How hostile input is refused: the :class:`UpdateRejectedError` factory and the strict
JSON parse (no duplicate keys, no NaN / Infinity) every untrusted header and config goes
through."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, TypeGuard

from fedledger.learning.errors import UpdateRejectedError


def reject(message: str, *, reason: str, key: str | None = None) -> UpdateRejectedError:
    return UpdateRejectedError(f"update rejected: {message}", reason=reason, key=key)


def fmt_shape(shape: Iterable[int]) -> str:
    return str(tuple(shape))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last duplicate silently; another parser might keep the first,
    # so two readers could disagree about what a file contains.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise reject(f"duplicate key {key!r} in JSON", reason="duplicate_key", key=key)
        out[key] = value
    return out


def _no_constants(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token}")


def parse_json(text: bytes, *, what: str, reason: str, key: str | None = None) -> Any:
    try:
        return json.loads(
            text.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except UpdateRejectedError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and over-long integer literals.
        raise reject(f"{what} is not valid JSON ({exc})", reason=reason, key=key) from None


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )
