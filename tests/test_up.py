"""`fedledger up`: starts the host, the coordinator and the org nodes as processes on
loopback ports, prints where they are, serves until interrupted, and stops them all."""

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


def test_up_serves_every_service_until_interrupted(tmp_path: Path):
    root = tmp_path / "up"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedledger.cli", "up", "--quick", "--orgs", "2", "--dir", str(root),
         "--no-datasets"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    pids: list[int] = []
    try:
        deadline = time.time() + 240
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.time() < deadline, "fedledger up did not come up:\n" + "".join(lines)
            time.sleep(0.2)
        services = json.loads((root / "deployment.json").read_text())["services"]
        assert {"host", "coordinator", "org1", "org2"} <= set(services)
        for name, service in services.items():
            health = httpx.get(service["url"] + "/health", timeout=10)
            assert health.status_code == 200, (name, health.text)
        docs = httpx.get(services["coordinator"]["url"] + "/docs", timeout=10)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        pids = [s["pid"] for s in services.values() if s.get("pid")]
        assert pids
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(10)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "coordinator" in output and "/docs" in output
    for pid in pids:  # every service process is gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
