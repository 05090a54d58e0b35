"""The coordinator's background loop: a thread that advances the rounds, then the
deletion jobs, every ``poll_s`` or as soon as it is woken (an upload, a chaincode event)."""

from __future__ import annotations

from collections.abc import Callable

from fedledger.loop import BackgroundLoop

from .rounds import RoundService
from .unlearning import UnlearningService


class CoordinatorLoop(BackgroundLoop):
    """``rounds.tick()`` then ``unlearning.tick()``, every ``poll_s`` or when woken
    (``rounds.wake``); ``warm`` runs once first (a failure is logged: uploads report it)."""

    def __init__(self, rounds: RoundService, unlearning: UnlearningService, poll_s: float,
                 warm: Callable[[], object] | None = None) -> None:
        super().__init__(self.tick, name="coordinator-rounds", interval_s=poll_s,
                         wake=rounds.wake, before=warm)
        self.rounds = rounds
        self.unlearning = unlearning

    def tick(self) -> None:
        """One pass: every unfinished round, then the deletion jobs."""
        self.rounds.tick()
        self.unlearning.tick()
