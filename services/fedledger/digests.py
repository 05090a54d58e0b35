"""Content digests: the hex sha256 that addresses every blob (update, aggregate, served
adapter) in the blob stores, on the ledgers and in the anchors.

Deliberately dependency-free, so services, auditors and the learning core all compute a
blob's address the same way without importing one another.
"""

from __future__ import annotations

import hashlib

__all__ = ["sha256_hex"]


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``: the content address of a blob."""
    return hashlib.sha256(data).hexdigest()
