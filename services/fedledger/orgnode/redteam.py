"""RED TEAM, for tests and benchmarks only: the :class:`~fedledger.orgnode.training.
TrainingHook` that poisons this node's own updates as its ``attack`` settings say
(``fedledger.learning.attacks``). The node installs it only when ``attack`` is set;
no production path knows of it."""

from __future__ import annotations

import logging

import torch

from fedledger.learning.attacks import Backdoor, boost_update, sign_flip
from fedledger.learning.data.records import Sample
from fedledger.orgnode.settings import AttackSettings

log = logging.getLogger("fedledger.orgnode.worker")


class RedTeamHook:
    """``backdoor`` poisons the training samples; every kind then turns the update
    around (``sign_flip``) or scales it (``boost``, ``backdoor``) by ``factor``."""

    def __init__(self, attack: AttackSettings) -> None:
        self.attack = attack

    def samples(self, samples: list[Sample], *, seed: int) -> list[Sample]:
        attack = self.attack
        if attack.kind != "backdoor":
            return samples
        backdoor = Backdoor(trigger=attack.trigger, source_label=attack.source_label,
                            target_label=attack.target_label, rate=attack.rate)
        return backdoor.poison(samples, seed=seed)

    def update(self, round_id: int, state: dict[str, torch.Tensor],
               start: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        attack = self.attack
        poisoned = (sign_flip(state, start, attack.factor) if attack.kind == "sign_flip"
                    else boost_update(state, start, attack.factor))
        log.warning("round %s: RED TEAM %s x%s applied to this node's update",
                    round_id, attack.kind, attack.factor)
        return poisoned
