"""Canonical JSON: the one encoding of everything fedledger hashes, endorses or anchors.

Sorted keys, no insignificant whitespace, UTF-8, no NaN/Infinity: equal values give equal
bytes on every machine and in every language that follows RFC 8785's key ordering for
ASCII keys, so a digest recorded on a ledger can be recomputed by anyone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` (dicts, lists, str, int, float, bool, None) canonically."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_digest(value: Any) -> str:
    """Hex sha256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
