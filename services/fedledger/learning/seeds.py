"""Seeds derived from the master seed by name, so adding an org or a round never changes
the seeds of the others (a replay of round t for org k gets the same seed as the original)."""

from __future__ import annotations

import hashlib


def derive_seed(master: int, *parts: object) -> int:
    material = ":".join([str(master), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big") >> 1
