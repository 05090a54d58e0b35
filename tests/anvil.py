"""anvil for tests: the pinned binary from ``deploy/foundry`` (npm), started on a free
loopback port and stopped by pid. Tests using it skip where it is not installed."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from fedledger.evm import EvmConfig

REPO = Path(__file__).resolve().parents[1]
ANVIL = REPO / "deploy/foundry/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
ANVIL_CHAIN_ID = 31337
# anvil's default dev keys (mnemonic "test test ... junk"): public, for tests only.
ANVIL_DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chain_id_answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=0.5) as resp:
            return "result" in json.loads(resp.read())
    except OSError:
        return False


class AnvilProcess:
    """anvil on a free loopback port; ``extra`` adds flags (e.g. ``--block-time 1``)."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port),
             "--chain-id", str(ANVIL_CHAIN_ID), "--silent", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not _chain_id_answers(self.url):
            if self.proc.poll() is not None:
                raise RuntimeError(f"anvil exited: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("anvil did not answer eth_chainId within 15 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()


def require_anvil() -> None:
    if not ANVIL.is_file():
        pytest.skip("anvil not installed: run npm ci --prefix deploy/foundry")


def rpc_config(url: str, **overrides) -> EvmConfig:
    return EvmConfig(backend="rpc", rpc_url=url, chain_id=ANVIL_CHAIN_ID, poll_interval_s=0.02,
                     receipt_timeout_s=20, **overrides)
