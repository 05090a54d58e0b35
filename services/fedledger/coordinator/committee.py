"""Committee selection: who may submit updates in a round.

Deterministic and publicly checkable: the candidates are the registered orgs sorted by
MSP id, the randomness is public -- the previous final round's aggregate digest, or the
round's own config digest for the first round -- and the draw is a Fisher-Yates shuffle
driven by ``sha256(seed || ":" || round_id || ":" || i)``, truncated to ``size``
(sampling without replacement). Anyone holding the ledger can recompute it.

Every org has the same chance today. Stake weighting (orgs with more stake drawn more
often, slashing lowering the odds) comes with the poisoning-defense work (validator
committee + EVM staking), which will replace the uniform draw below.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _draw(seed: str, round_id: int, i: int, bound: int) -> int:
    value = int.from_bytes(hashlib.sha256(f"{seed}:{round_id}:{i}".encode()).digest(), "big")
    return value % bound


def select_committee(orgs: Sequence[str], *, seed: str, round_id: int,
                     size: int | None = None) -> list[str]:
    """``size`` orgs (all when None or larger) drawn from ``orgs``; returned sorted."""
    pool = sorted(set(orgs))
    k = len(pool) if size is None else min(size, len(pool))
    for i in range(k):
        j = i + _draw(seed, round_id, i, len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:k])
