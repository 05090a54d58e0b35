"""One background loop for every polling thread of fedledger.

A :class:`BackgroundLoop` runs ``step()`` on a named daemon thread, then waits
``interval_s`` or until it is woken (:meth:`BackgroundLoop.wake`, or whoever holds its
wake event), until :meth:`BackgroundLoop.stop`. A step that raises is logged (or handed
to ``on_error``) and the loop goes on: a background thread never dies of one bad step.

    loop = BackgroundLoop(rounds.tick, name="coordinator-rounds", interval_s=1.0,
                          wake=rounds.wake).start()
    ...
    loop.stop()

``step`` may return the seconds to wait before the next step (``None``: ``interval_s``),
and ``on_error(exc)`` likewise, e.g. a growing back-off. The module imports nothing from
fedledger, so every layer (``fabric``, services) may use it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Self

log = logging.getLogger(__name__)

class BackgroundLoop:
    """``step`` every ``interval_s`` seconds or when woken, on a daemon thread ``name``.

    ``wake``: the event that wakes it (a new one when None); ``stop_event``: the event that
    stops it (share one to stop several things together); ``before``: run once on the
    thread before the first step (a failure is logged); ``on_error(exc)``: called for a
    step's exception instead of logging it, returns the delay (``None``: ``interval_s``);
    ``on_stop``: called by :meth:`stop` after the stop event is set and before joining
    (to close a blocking stream the step is reading); ``join_s``: how long :meth:`stop`
    waits for the thread.
    """

    def __init__(self, step: Callable[[], object], *, name: str,
                 interval_s: float, wake: threading.Event | None = None,
                 stop_event: threading.Event | None = None,
                 before: Callable[[], object] | None = None,
                 on_error: Callable[[Exception], float | None] | None = None,
                 on_stop: Callable[[], object] | None = None, join_s: float = 30.0) -> None:
        self.step = step
        self.name = name
        self.interval_s = interval_s
        self.wake_event = wake if wake is not None else threading.Event()
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.before = before
        self.on_error = on_error
        self.on_stop = on_stop
        self.join_s = join_s
        #: ``time.monotonic()`` of the last wake-up by the wake event (0: never).
        self.last_woken = 0.0
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"loop {self.name} already started")
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Run the next step now instead of at the end of the interval."""
        self.wake_event.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current step and wait for the thread (``join_s`` by default)."""
        self.stop_event.set()
        self.wake_event.set()
        if self.on_stop is not None:
            try:
                self.on_stop()
            except Exception:  # noqa: BLE001 - stopping must go on
                log.exception("%s: stopping failed", self.name)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.join_s if timeout is None else timeout)

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the thread ----------------------------------------------------------------

    def run(self) -> None:
        """The loop itself, in the calling thread (:meth:`start` runs it on its own)."""
        if self.before is not None:
            try:
                self.before()
            except Exception:  # noqa: BLE001 - the loop goes on without it
                log.exception("%s: preparing failed", self.name)
        while not self.stop_event.is_set():
            delay = self._step_once()
            if self.stop_event.is_set():
                return
            if self.wake_event.wait(self.interval_s if delay is None else max(0.0, delay)):
                self.wake_event.clear()
                self.last_woken = time.monotonic()

    def _step_once(self) -> float | None:
        try:
            delay = self.step()
        except Exception as exc:  # noqa: BLE001 - a failed step is retried, never fatal
            if self.stop_event.is_set():
                return None
            if self.on_error is None:
                log.exception("%s: step failed", self.name)
                return None
            try:
                return self.on_error(exc)
            except Exception:  # noqa: BLE001 - nor is a failing error handler
                log.exception("%s: step failed, and so did its error handler", self.name)
                return None
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            return None  # a step's own result (a list, True...) is no delay
        return float(delay)


__all__ = ["BackgroundLoop"]
