"""The supervisor of ``fedledger up`` over tiny child processes (``python -c``) that serve
``GET /health`` with http.server: a crash is restarted after its backoff and counted, the
others keep running, a crash loop ends ``failed`` with its log's tail and is left alone,
``stop()`` ends everything, and status.json says so at each step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fedledger.supervisor import (
    LaunchError,
    RestartPolicy,
    Service,
    Supervisor,
    http_healthy,
)
from fedledger.web.server import free_port

# argv: port, lifetime (s; 0: forever), exit code. Prints its restart count from the env.
CHILD = """
import http.server, os, sys, threading
port, lifetime, code = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print("child up, restarts", os.environ.get("FEDLEDGER_SERVICE_RESTARTS"), flush=True)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Health)
threading.Thread(target=server.serve_forever, daemon=True).start()
if lifetime:
    threading.Event().wait(lifetime)
    print("child exiting with", code, flush=True)
    os._exit(code)
threading.Event().wait()
"""


class Children:
    """A ``spawn`` for the supervisor: starts CHILD for a service and waits for its health."""

    def __init__(self, tmp_path: Path, lifetimes: dict[str, float] | None = None,
                 fail_after: dict[str, int] | None = None) -> None:
        self.tmp_path = tmp_path
        self.lifetimes = lifetimes or {}
        self.fail_after = fail_after or {}   # name -> spawns that succeed; later ones raise
        self.spawns: dict[str, int] = {}
        self.envs: dict[str, list[str]] = {}

    def service(self, name: str) -> Service:
        port = free_port()
        return Service(name, "child", self.tmp_path / f"{name}.json",
                       self.tmp_path / f"{name}.log", f"http://127.0.0.1:{port}")

    def __call__(self, service: Service) -> None:
        count = self.spawns[service.name] = self.spawns.get(service.name, 0) + 1
        if service.name in self.fail_after and count > self.fail_after[service.name]:
            raise LaunchError(f"{service.name} would not start", step="start")
        port = service.url.rsplit(":", 1)[1]
        restarts = str(service.restarts)
        self.envs.setdefault(service.name, []).append(restarts)
        with open(service.log, "ab") as log:
            service.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, port, str(self.lifetimes.get(service.name, 0)), "3"],
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "FEDLEDGER_SERVICE_RESTARTS": restarts})
        deadline = time.monotonic() + 20
        while not http_healthy(service.url, 0.5):
            if service.proc.poll() is not None:
                raise LaunchError(f"{service.name} exited while starting", step="start")
            assert time.monotonic() < deadline, f"{service.name} never healthy"
            time.sleep(0.02)


def wait_until(what: str, probe: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def supervisor(tmp_path: Path, children: Children, names: list[str],
               policy: RestartPolicy, events: list | None = None) -> Supervisor:
    services = {name: children.service(name) for name in names}
    return Supervisor(services, children, status_file=tmp_path / "status.json", policy=policy,
                      stop_timeout_s=5,
                      on_event=(lambda kind, s, msg: events.append((kind, s.name, msg)))
                      if events is not None else None)


def status_file(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "status.json").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def test_backoff_doubles_from_the_initial_wait_up_to_the_cap():
    policy = RestartPolicy(backoff_initial_s=0.5, backoff_max_s=30.0)
    assert [policy.backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(ValueError):
        RestartPolicy(backoff_initial_s=2, backoff_max_s=1)


def test_a_crash_is_restarted_after_the_backoff_and_counted_while_the_others_keep_running(
        tmp_path: Path):
    children, events = Children(tmp_path), []
    sup = supervisor(tmp_path, children, ["a", "b"],
                     RestartPolicy(backoff_initial_s=0.3, poll_s=0.05), events)
    try:
        sup.launch("a")
        sup.launch("b")
        sup.watch()
        a, b = sup.services["a"], sup.services["b"]
        old_a, old_b = a.pid, b.pid
        assert status_file(tmp_path)["services"]["a"]["state"] == "running"
        killed_at = time.time()
        sup.kill("a", signal.SIGKILL)
        sup.wait_healthy("a", restarted_after=killed_at, timeout_s=20)
        assert a.pid != old_a and a.restarts == 1 and a.last_exit_code == -signal.SIGKILL
        assert a.started_at is not None and a.started_at - killed_at >= 0.3  # the backoff
        assert b.pid == old_b and b.restarts == 0 and b.running
        assert children.envs["a"] == ["0", "1"]  # FEDLEDGER_SERVICE_RESTARTS per start
        assert [(kind, name) for kind, name, _ in events] == [("exited", "a"), ("restarted", "a")]
        seen = status_file(tmp_path)
        assert seen["supervisor_pid"] == os.getpid()
        assert seen["services"]["a"] == {**seen["services"]["a"], "pid": a.pid, "state": "running",
                                         "restarts": 1, "last_exit_code": -9}
        assert seen["services"]["b"]["restarts"] == 0 and seen["services"]["b"]["pid"] == old_b
    finally:
        sup.stop()


def test_a_crash_loop_is_marked_failed_with_its_log_and_not_restarted_again(tmp_path: Path):
    children, events = Children(tmp_path, lifetimes={"loop": 0.2}), []
    policy = RestartPolicy(backoff_initial_s=0.05, max_failures=2, window_s=60, poll_s=0.05)
    sup = supervisor(tmp_path, children, ["loop", "steady"], policy, events)
    try:
        sup.launch("loop")
        sup.launch("steady")
        sup.watch()
        loop = sup.services["loop"]
        wait_until("loop failed", lambda: loop.state == "failed")
        assert children.spawns["loop"] == 3 and loop.restarts == 2  # 3 exits > max_failures 2
        assert loop.last_exit_code == 3
        assert loop.last_log and "child exiting with 3" in loop.last_log[-1]
        seen = status_file(tmp_path)["services"]["loop"]
        assert seen["state"] == "failed" and seen["restarts"] == 2 and seen["pid"] is None
        assert seen["last_log"] == loop.last_log
        assert events[-1][:2] == ("failed", "loop")
        with pytest.raises(LaunchError):
            sup.wait_healthy("loop", timeout_s=5)
        time.sleep(policy.poll_s * 10)  # many polls of its watcher: still no new start
        assert children.spawns["loop"] == 3
        assert sup.services["steady"].running and sup.services["steady"].restarts == 0
    finally:
        sup.stop()
    assert status_file(tmp_path)["services"]["loop"]["state"] == "failed"


def test_a_restart_that_never_gets_healthy_counts_as_a_failure(tmp_path: Path):
    children = Children(tmp_path, fail_after={"a": 1})
    sup = supervisor(tmp_path, children, ["a"],
                     RestartPolicy(backoff_initial_s=0.05, max_failures=3, poll_s=0.05))
    try:
        sup.launch("a")
        sup.watch()
        sup.kill("a")
        wait_until("a failed", lambda: sup.services["a"].state == "failed")
        # the kill, then three starts that raised: 4 failures > 3
        assert children.spawns["a"] == 4 and sup.services["a"].restarts == 3
    finally:
        sup.stop()


def test_stop_ends_every_process_in_order_and_says_so_in_status(tmp_path: Path):
    children = Children(tmp_path)
    sup = supervisor(tmp_path, children, ["a", "b", "c"], RestartPolicy(poll_s=0.05))
    sup.launch("a")
    sup.launch("b")
    sup.launch("c")
    sup.watch()
    pids = {name: s.pid for name, s in sup.services.items()}
    assert all(pid is not None and alive(pid) for pid in pids.values())
    sup.stop(["c", "b", "a"])
    assert not sup.watching
    for name, pid in pids.items():
        assert pid is not None and not alive(pid), name
        assert sup.services[name].state == "stopped" and not sup.services[name].running
    seen = status_file(tmp_path)
    assert seen["supervisor_pid"] is None
    assert {n: (s["state"], s["pid"]) for n, s in seen["services"].items()} == {
        "a": ("stopped", None), "b": ("stopped", None), "c": ("stopped", None)}
    assert children.spawns == {"a": 1, "b": 1, "c": 1}  # stopping is not a crash


def test_a_kill_without_watching_is_not_restarted(tmp_path: Path):
    children = Children(tmp_path)
    sup = supervisor(tmp_path, children, ["a"], RestartPolicy(poll_s=0.05))
    try:
        sup.launch("a")
        sup.kill("a")
        assert not sup.services["a"].running and sup.services["a"].state == "stopped"
        assert status_file(tmp_path)["services"]["a"]["last_exit_code"] == -9
        sup.restart("a")  # by hand: not counted as a restart
        assert sup.services["a"].running and sup.services["a"].restarts == 0
    finally:
        sup.stop()
