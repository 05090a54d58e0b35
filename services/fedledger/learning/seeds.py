"""Seeds derived from the master seed by name, so adding an org or a round never changes
the seeds of the others (a replay of round t for org k gets the same seed as the original)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def derive_seed(master: int, *parts: object) -> int:
    material = ":".join([str(master), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big") >> 1


#: Held while code draws from torch's process-global generator (LoRA init, a tiny model's
#: weights, LoRA dropout in training). Two threads of one process seeding it at once
#: (org nodes run in one test process, a coordinator builds an init while a node trains)
#: would each draw from the other's sequence and silently lose determinism.
_GLOBAL_RNG = threading.RLock()


@contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """torch's global generator seeded with ``seed`` for this thread alone, restored after."""
    with _GLOBAL_RNG:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.random.set_rng_state(state)
