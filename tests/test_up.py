"""`fedledger up`: starts the host, the coordinator and the org nodes as processes on
loopback ports, prints where they are, supervises them until interrupted, and stops them
all; a second `up` on the same folder resumes it (same tokens, ports, keys), refuses other
options, and `--fresh` wipes it; `fedledger status` and `fedledger down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from fedledger.launcher import Deployment, LaunchError, deployment_status


class Up:
    """``fedledger up`` as a subprocess, its output collected as it comes."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fedledger.cli", "up", "--quick", "--orgs", "1", "--dir",
             str(root), "--no-datasets", *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout),
                                       daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_up(self, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while not any("Ctrl-C stops everything" in line for line in self.lines):
            assert self.proc.poll() is None, self.output
            assert time.time() < deadline, "fedledger up did not come up:\n" + self.output
            time.sleep(0.2)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(10)
        return code

    def interrupt(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait()


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or "zombie" in Path(
        f"/proc/{pid}/status").read_text().lower()


def test_up_serves_every_service_until_interrupted_and_resumes_after_down(tmp_path: Path):
    root = tmp_path / "up"
    up = Up(root)
    pids: list[int] = []
    try:
        up.wait_up()
        described = json.loads((root / "deployment.json").read_text())
        services = described["services"]
        assert set(services) == {"host", "coordinator", "org1"}
        assert described["supervisor"]["pid"] == up.proc.pid
        for name, service in services.items():
            health = httpx.get(service["url"] + "/health", timeout=10)
            assert health.status_code == 200, (name, health.text)
        docs = httpx.get(services["coordinator"]["url"] + "/docs", timeout=10)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        pids = [s["pid"] for s in services.values() if s.get("pid")]
        assert len(pids) == 3
        code, shown = status_json(root)
        assert code == 0 and {r["state"] for r in shown["services"]} == {"running"}
        assert {r["pid"] for r in shown["services"]} == set(pids)
        table = cli("status", "--dir", str(root))
        assert table.returncode == 0 and "coordinator" in table.stdout
        stopped = cli("down", "--dir", str(root), timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    finally:
        code = up.interrupt()
    assert code == 0, up.output  # SIGTERM from `down`: a clean stop
    first_output = up.output
    assert "coordinator" in first_output and "/docs" in first_output
    assert str(root / "keys" / "tokens.json") in first_output
    assert "resumed" not in first_output
    for pid in pids:  # every service process is gone
        assert gone(pid), pid
    tokens = json.loads((root / "keys" / "tokens.json").read_text())
    assert tokens["operator"] in first_output
    assert cli("status", "--dir", str(root)).returncode == 1

    again = Up(root, "--log-level", "DEBUG")
    try:
        again.wait_up()
        described = json.loads((root / "deployment.json").read_text())
        assert {n: s["url"] for n, s in described["services"].items()} == {
            n: s["url"] for n, s in services.items()}
        org1 = described["services"]["org1"]["pid"]
        environ = Path(f"/proc/{org1}/environ").read_bytes().split(b"\0")
        assert b"FEDLEDGER_LOG_LEVEL=DEBUG" in environ
    finally:
        code = again.interrupt()
    assert code == 0, again.output
    assert "resumed" in again.output and tokens["Org1"] in again.output
    assert json.loads((root / "keys" / "tokens.json").read_text()) == tokens
    assert cli("down", "--dir", str(root), "--wipe").returncode == 0
    assert not root.exists()


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedledger.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def status_json(root: Path) -> tuple[int, dict]:
    done = cli("status", "--dir", str(root), "--json")
    return done.returncode, json.loads(done.stdout)


def saved(root: Path) -> dict[str, bytes]:
    """Every file of the deployment's plan, marker, configs and keys (bytes)."""
    return {str(p.relative_to(root)): p.read_bytes()
            for folder in ("config", "keys") for p in sorted((root / folder).glob("*"))
            } | {"deployment.json": (root / "deployment.json").read_bytes()}


def test_a_second_deployment_resumes_with_the_same_tokens_and_ports_and_refuses_other_options(
        tmp_path: Path):
    root = tmp_path / "up"
    first = Deployment(root, 1, quick=True, poll_s=0.3)
    first.start()
    try:
        tokens, urls = dict(first.tokens), {n: s.url for n, s in first.services.items()}
        gateway, rpc = first.host_info["gateway"], first.host_info["rpc_url"]
    finally:
        first.stop()
    assert not first.resumed
    tokens_file = root / "keys" / "tokens.json"
    assert tokens_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(tokens_file.read_text()) == tokens == first.tokens
    for config in (root / "config").glob("*.json"):  # only the sha256 of each token
        assert not any(token in config.read_text() for token in tokens.values()), config
    before = saved(root)

    with pytest.raises(LaunchError) as refused:
        Deployment(root, 2, quick=True).prepare()
    assert refused.value.step == "resume" and refused.value.context["option"] == "--orgs"
    with pytest.raises(LaunchError) as refused:
        Deployment(root, 1, quick=False).prepare()
    assert refused.value.context["option"] == "--quick"
    coordinator_port = int(urls["coordinator"].rsplit(":", 1)[1])
    with socket_listening(coordinator_port):
        with pytest.raises(LaunchError) as refused:
            Deployment(root, 1, quick=True).prepare()
    assert refused.value.context == {"service": "coordinator", "port": coordinator_port}
    assert saved(root) == before  # refusing changed nothing

    again = Deployment(root, 1, quick=True, poll_s=0.3)
    again.start().supervise()
    try:
        assert again.resumed
        assert again.tokens == tokens
        assert {n: s.url for n, s in again.services.items()} == urls
        assert (again.host_info["gateway"], again.host_info["rpc_url"]) == (gateway, rpc)
        with pytest.raises(LaunchError) as refused:  # it runs: not even --fresh touches it
            Deployment(root, 1, quick=True, fresh=True).prepare()
        assert refused.value.step == "prepare"

        org1 = again.services["org1"]
        old_pid = org1.pid
        killed_at = time.time()
        again.kill9("org1")
        again.wait_healthy("org1", restarted_after=killed_at, timeout_s=120)
        assert org1.pid != old_pid and org1.restarts == 1 and org1.last_exit_code == -9
        environ = Path(f"/proc/{org1.pid}/environ").read_bytes().split(b"\0")
        assert b"FEDLEDGER_SERVICE_RESTARTS=1" in environ
        # the same admin token still works on the restarted node
        me = httpx.get(org1.url + "/me", headers={"Authorization": f"Bearer {tokens['Org1']}"},
                       timeout=10)
        assert me.status_code == 200, me.text

        code, shown = status_json(root)
        assert code == 0 and shown["healthy"]
        rows = {row["service"]: row for row in shown["services"]}
        assert set(rows) == {"host", "coordinator", "org1"}
        assert rows["org1"]["restarts"] == 1 and rows["org1"]["pid"] == org1.pid
        assert all(r["state"] == "running" and r["health"] == "ok" for r in rows.values())
    finally:
        again.stop()
    code, shown = status_json(root)
    assert code == 1 and not shown["healthy"]
    assert {(r["state"], r["health"]) for r in shown["services"]} == {("stopped", "down")}

    wiped = Deployment(root, 2, quick=True, fresh=True)
    wiped.prepare()  # --fresh: another --orgs is fine, and everything is new
    assert not wiped.resumed and wiped.tokens["operator"] != tokens["operator"]
    assert len(wiped.orgs) == 2 and not (root / "status.json").exists()


class socket_listening:
    """A listening socket on ``port`` (something else holds the port)."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_status_of_a_folder_without_a_deployment_exits_2(tmp_path: Path):
    assert cli("status", "--dir", str(tmp_path)).returncode == 2
    with pytest.raises(LaunchError):
        deployment_status(tmp_path)
