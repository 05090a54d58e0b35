"""Watching the processes of ``fedledger up``: restart on crash, give up on crash loops.

:class:`Supervisor` keeps a set of :class:`Service` processes. It does not know how one is
started: ``spawn(service)`` (from :mod:`fedledger.launcher`) starts the process, sets
``service.proc`` and returns once the service is healthy, or raises :class:`LaunchError`.

- :meth:`Supervisor.launch` starts one service now (``starting`` -> ``running``).
- :meth:`Supervisor.watch` starts one watcher thread per service. An unexpected exit is
  restarted after a backoff (:class:`RestartPolicy`: 0.5 s doubling up to 30 s) while the
  others keep running; a service that exits more than ``max_failures`` times within
  ``window_s`` is marked ``failed``, reported with the last lines of its log, and left
  alone.
- :meth:`Supervisor.stop` ends the watchers, then every process in the order given
  (SIGTERM, SIGKILL after a timeout).

Every change is written atomically to ``status_file`` (``status.json``): per service its
pid, state (``starting`` / ``running`` / ``restarting`` / ``failed`` / ``stopped``),
``started_at`` (Unix time), ``restarts``, ``last_exit_code`` and, once failed, ``last_log``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from fedledger.errors import FedLedgerError

log = logging.getLogger(__name__)

State = Literal["starting", "running", "restarting", "failed", "stopped"]
STATES: tuple[State, ...] = ("starting", "running", "restarting", "failed", "stopped")


class LaunchError(FedLedgerError, RuntimeError):
    """A service did not start, or a deployment cannot be started or resumed as asked
    (the message names the service, option or port; a log's tail follows when there is
    one)."""


@dataclass
class Service:
    """One supervised process and what the supervisor knows of it."""

    name: str                 # "host", "coordinator", "org1", ...
    module: str               # python -m <module>
    config: Path
    log: Path
    url: str                  # base URL of its HTTP API (GET /health)
    proc: subprocess.Popen | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    state: State = "stopped"
    started_at: float | None = None      # Unix time of the last healthy start
    restarts: int = 0                    # restarts by the supervisor
    last_exit_code: int | None = None
    last_log: list[str] | None = None    # once failed: the log's tail
    #: monotonic times of the unexpected exits still inside the policy's window
    failures: list[float] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "pid": self.pid if self.running else None, "state": self.state,
                "started_at": self.started_at, "restarts": self.restarts,
                "last_exit_code": self.last_exit_code, "last_log": self.last_log,
                "log": str(self.log)}


@dataclass(frozen=True)
class RestartPolicy:
    backoff_initial_s: float = 0.5   # wait before the first restart
    backoff_max_s: float = 30.0      # the wait doubles per failure in the window, up to this
    max_failures: int = 5            # more exits than this within window_s: failed
    window_s: float = 300.0
    poll_s: float = 0.2              # how often a watcher looks at its process

    def __post_init__(self) -> None:
        if self.backoff_initial_s < 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("need 0 <= backoff_initial_s <= backoff_max_s")
        if self.max_failures < 0 or self.window_s <= 0 or self.poll_s <= 0:
            raise ValueError("need max_failures >= 0, window_s > 0, poll_s > 0")

    def backoff(self, failures: int) -> float:
        """The wait before restarting after the ``failures``-th exit in the window."""
        return min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, failures - 1))


def terminate_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                      timeout_s: float = 10.0) -> None:
    """Send ``sig`` to ``proc`` and reap it; SIGKILL if it outlives ``timeout_s``."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


def write_json_atomic(path: Path, data: Mapping[str, Any], mode: int = 0o644) -> None:
    """Write ``data`` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.chmod(mode)
    os.replace(tmp, path)


def log_tail(path: Path, lines: int = 40) -> list[str]:
    if not path.exists():
        return []
    with open(path, "rb") as handle:  # the tail only: logs of long runs are large
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        return handle.read().decode(errors="replace").splitlines()[-lines:]


def http_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """``GET url/health`` answered 200."""
    try:
        return httpx.get(url.rstrip("/") + "/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


Event = Literal["exited", "restarted", "failed"]


class Supervisor:
    """See the module docs. ``on_event(kind, service, message)`` is told of each exit,
    restart and failure (the CLI prints them); they are logged too."""

    def __init__(self, services: Mapping[str, Service], spawn: Callable[[Service], None], *,
                 status_file: Path, policy: RestartPolicy | None = None,
                 stop_timeout_s: float = 10.0,
                 on_event: Callable[[Event, Service, str], None] | None = None,
                 extra_status: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.services = services
        self.spawn = spawn
        self.status_file = Path(status_file)
        self.policy = policy or RestartPolicy()
        self.stop_timeout_s = stop_timeout_s
        self.on_event = on_event
        self.extra_status = extra_status
        #: set while stopping: a start in progress gives up (see :mod:`fedledger.launcher`)
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_lock = threading.Lock()

    # ------------------------------------------------------------------ status

    @property
    def watching(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def status(self) -> dict[str, Any]:
        return {"updated_at": time.time(),
                "supervisor_pid": os.getpid() if self.watching else None,
                **(self.extra_status() if self.extra_status else {}),
                "services": {name: s.status() for name, s in self.services.items()}}

    def write_status(self) -> None:
        with self._status_lock:
            write_json_atomic(self.status_file, self.status())

    def _event(self, kind: Event, service: Service, message: str) -> None:
        (log.error if kind == "failed" else log.warning)("%s", message)
        if self.on_event is not None:
            try:
                self.on_event(kind, service, message)
            except Exception:  # noqa: BLE001 - a printing callback must not stop supervision
                log.exception("on_event failed")

    # ------------------------------------------------------------------ control

    def launch(self, name: str) -> None:
        """Start ``name`` now and wait for it to be healthy (:class:`LaunchError` if not)."""
        service = self.services[name]
        with service.lock:
            if service.running:
                return
            service.state = "starting"
            self.write_status()
            try:
                self.spawn(service)
            except BaseException:
                # A start that never became healthy may have left a process behind.
                terminate_process(service.proc, timeout_s=self.stop_timeout_s)
                if service.proc is not None:
                    service.last_exit_code = service.proc.returncode
                service.state = "restarting" if self.watching else "stopped"
                self.write_status()
                raise
            service.state = "running"
            service.started_at = time.time()
            service.last_log = None
            self.write_status()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one service as a crash would (a watcher restarts it)."""
        service = self.services[name]
        with service.lock:
            proc = service.proc
            terminate_process(proc, sig, timeout_s=10.0)
            if proc is not None and not self.watching:  # nobody restarts it: say so
                service.last_exit_code = proc.returncode
                service.state = "stopped"
                self.write_status()

    def restart(self, name: str) -> None:
        """Stop ``name`` (if running) and start it again; not counted as a restart."""
        service = self.services[name]
        with service.lock:
            terminate_process(service.proc, timeout_s=self.stop_timeout_s)
            self.launch(name)

    def watch(self) -> None:
        """Start watching (a thread per service); idempotent."""
        if self.watching:
            return
        self.stopping.clear()
        self._threads = [threading.Thread(target=self._watch, args=(s,), daemon=True,
                                          name=f"supervise-{s.name}")
                         for s in self.services.values()]
        for thread in self._threads:
            thread.start()
        self.write_status()

    def stop(self, order: Iterable[str] | None = None) -> None:
        """Stop watching, then SIGTERM each service in ``order`` (default: the reverse
        of the services' order), SIGKILL after ``stop_timeout_s``."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(self.stop_timeout_s + 30)
        self._threads = []
        names = list(order) if order is not None else list(reversed(list(self.services)))
        for name in names:
            service = self.services[name]
            with service.lock:
                terminate_process(service.proc, timeout_s=self.stop_timeout_s)
                if service.proc is not None and service.state != "failed":
                    service.last_exit_code = service.proc.returncode
                service.proc = None
                if service.state != "failed":
                    service.state = "stopped"
            self.write_status()
        self.stopping.clear()

    def wait_healthy(self, name: str, *, restarted_after: float | None = None,
                     timeout_s: float = 120.0) -> Service:
        """Wait until ``name`` runs, answers ``GET /health`` and (``restarted_after``: a
        ``time.time()``) was started after that moment; :class:`LaunchError` if it failed
        or the time ran out."""
        service = self.services[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if service.state == "failed":
                raise LaunchError(f"{name} failed; not restarted", step="supervise",
                                  context={"service": name})
            started = service.started_at
            if (service.state == "running" and service.running and started is not None
                    and (restarted_after is None or started > restarted_after)
                    and http_healthy(service.url)):
                return service
            time.sleep(0.05)
        raise LaunchError(f"{name} was not healthy again within {timeout_s:.0f} s",
                          step="supervise", context={"service": name, "state": service.state})

    # ------------------------------------------------------------------ watching

    def _watch(self, service: Service) -> None:
        policy = self.policy
        while not self.stopping.is_set():
            with service.lock:
                proc, state = service.proc, service.state
            if state in ("failed", "stopped", "starting") or (proc is not None and proc.poll() is None):
                self.stopping.wait(policy.poll_s)
                continue
            with service.lock:
                if self.stopping.is_set() or service.proc is not proc or service.state != state:
                    continue  # stopped or restarted by someone else meanwhile
                delay = self._exited(service, proc)
            if delay is None or self.stopping.wait(delay):
                continue
            with service.lock:
                if self.stopping.is_set() or service.running or service.state == "stopped":
                    continue
                service.restarts += 1
                try:
                    self.launch(service.name)
                except LaunchError as exc:
                    log.warning("%s did not start again: %s", service.name, exc)
                    continue  # counted as the next exit at the top of the loop
                self._event("restarted", service, f"{service.name} restarted (pid {service.pid}, "
                            f"restart {service.restarts})")

    def _exited(self, service: Service, proc: subprocess.Popen | None) -> float | None:
        """Account for an unexpected exit: the wait before the restart, or None when the
        service is now ``failed``."""
        policy = self.policy
        now = time.monotonic()
        if proc is not None:
            service.last_exit_code = proc.returncode
        service.failures = [t for t in service.failures if now - t <= policy.window_s] + [now]
        if len(service.failures) > policy.max_failures:
            service.state = "failed"
            service.last_log = log_tail(service.log, 20)
            self.write_status()
            tail = "\n".join(service.last_log)
            self._event("failed", service,
                        f"{service.name} exited (code {service.last_exit_code}) "
                        f"{len(service.failures)} times within {policy.window_s:.0f} s; not "
                        f"restarting it; the end of {service.log}:\n{tail}")
            return None
        delay = policy.backoff(len(service.failures))
        service.state = "restarting"
        self.write_status()
        self._event("exited", service, f"{service.name} exited (code {service.last_exit_code}); "
                    f"restarting it in {delay:.1f} s")
        return delay
