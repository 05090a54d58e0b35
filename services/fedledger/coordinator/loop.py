"""The coordinator's background loop: a thread that advances the rounds, then the
deletion jobs, every ``poll_s`` or as soon as it is woken (an upload, a chaincode event)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .rounds import RoundService
from .unlearning import UnlearningService

log = logging.getLogger(__name__)


class CoordinatorLoop:
    """``rounds.tick()`` then ``unlearning.tick()``, every ``poll_s`` or when woken."""

    def __init__(self, rounds: RoundService, unlearning: UnlearningService, poll_s: float,
                 warm: Callable[[], object] | None = None) -> None:
        self.rounds = rounds
        self.unlearning = unlearning
        self.poll_s = poll_s
        self.warm = warm
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="coordinator-rounds", daemon=True)

    def start(self) -> CoordinatorLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.rounds.wake.set()
        self._thread.join(30)

    def tick(self) -> None:
        """One pass: every unfinished round, then the deletion jobs."""
        self.rounds.tick()
        self.unlearning.tick()

    def _run(self) -> None:
        if self.warm is not None:
            try:
                self.warm()
            except Exception:  # noqa: BLE001 - uploads report it; the loop keeps going
                log.exception("could not prepare the adapter spec")
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a failed tick is retried, never fatal
                log.exception("round worker tick failed")
            self.rounds.wake.wait(self.poll_s)
            self.rounds.wake.clear()
