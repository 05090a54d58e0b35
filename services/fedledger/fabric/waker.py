"""Wake a polling worker when the ledger commits something it waits for.

:class:`EventWaker` follows a chaincode's events on a thread and sets a
``threading.Event`` whenever one of the named events commits. It is only a hint: the
worker re-reads the ledger on every step, so an event missed across a reconnect or a
restart costs at most one poll interval, and the worker's poll stays its safety net.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from fedledger.fabric.errors import FabricError
from fedledger.fabric.gateway import ChaincodeEvents, Network
from fedledger.loop import BackgroundLoop

log = logging.getLogger(__name__)


class EventWaker:
    """Sets ``wake`` on each committed event named in ``names`` (from the newest block on)."""

    def __init__(self, network: Network, chaincode: str, names: Iterable[str],
                 wake: threading.Event, *, retry_s: float = 1.0, name: str = "events") -> None:
        self.network = network
        self.chaincode = chaincode
        self.names = frozenset(names)
        self.wake = wake
        self.retry_s = retry_s
        self._stream: ChaincodeEvents | None = None
        self._lock = threading.Lock()
        self._loop = BackgroundLoop(self._follow, name=name, interval_s=retry_s,
                                    on_error=self._failed, on_stop=self._close, join_s=5)

    def start(self) -> EventWaker:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()

    def _close(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.close()

    def _follow(self) -> None:
        """Follow the stream until it ends; the loop reconnects after ``retry_s``."""
        stream = self.network.chaincode_events(self.chaincode)
        with self._lock:
            if self._loop.stopping:
                stream.close()
                return
            self._stream = stream
        for event in stream:
            if event.event_name in self.names:
                self.wake.set()
            if self._loop.stopping:
                return

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, FabricError):
            # Repeats on every reconnect while the peer is down; the polls still run.
            log.debug("chaincode event stream ended: %s", exc)
        else:  # a hint thread must not die silently
            log.error("chaincode event follower failed", exc_info=exc)


__all__ = ["EventWaker"]
