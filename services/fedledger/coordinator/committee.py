"""Committee selection: who may submit updates in a round.

Deterministic and publicly checkable: the candidates are the registered orgs sorted by
MSP id, the randomness is public -- the previous final round's aggregate digest, or the
round's own config digest for the first round -- and the draw is a Fisher-Yates shuffle
driven by ``sha256(seed || ":" || round_id || ":" || i)``, truncated to ``size``
(sampling without replacement). Anyone holding the ledger can recompute it.

The proposers (the committee) are drawn uniformly. The validator committee of the voting
defense (:func:`select_validators`) is drawn among them by stake: an org with more stake
on the Staking contract is drawn more often, and slashing lowers its odds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence


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


def _unit(seed: str, round_id: int, org: str) -> float:
    """A number in (0, 1) from public values only."""
    value = int.from_bytes(hashlib.sha256(f"{seed}:{round_id}:validator:{org}".encode()).digest(),
                           "big")
    return (value + 1) / (2**256 + 1)


def select_validators(weights: Mapping[str, int], *, seed: str, round_id: int, size: int
                      ) -> list[str]:
    """``size`` validators drawn without replacement with probability proportional to
    their stake (weighted reservoir sampling: the ``size`` largest keys
    ``log(u) / weight``, with ``u`` from :func:`_unit`); returned sorted. Orgs without
    stake are drawn only when nobody has any (then uniformly). Anyone with the public
    seed and the stakes recomputes the same committee."""
    pool = {org: int(w) for org, w in weights.items() if int(w) > 0}
    if not pool:
        pool = {org: 1 for org in weights}
    top = max(pool.values())
    keys = {org: math.log(_unit(seed, round_id, org)) / (w / top) for org, w in pool.items()}
    chosen = sorted(pool, key=lambda org: (-keys[org], org))[: max(0, size)]
    return sorted(chosen)
