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
        self._stop = threading.Event()
        self._stream: ChaincodeEvents | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> EventWaker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stream = self.network.chaincode_events(self.chaincode)
                with self._lock:
                    if self._stop.is_set():
                        stream.close()
                        return
                    self._stream = stream
                for event in stream:
                    if event.event_name in self.names:
                        self.wake.set()
                    if self._stop.is_set():
                        return
            except FabricError as exc:
                log.info("chaincode event stream ended: %s", exc)
            except Exception:  # noqa: BLE001 - a hint thread must not die silently
                log.exception("chaincode event follower failed")
            self._stop.wait(self.retry_s)


__all__ = ["EventWaker"]
