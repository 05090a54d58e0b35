"""The bridge against anvil (JSON-RPC), with faults: the RPC node goes away while a round
is being anchored and comes back; a slow chain must reach N confirmations; and the
anchor is checked independently with foundry's ``cast`` and with ``fedledger verify``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from fedledger.audit.proofs import consortium_proof
from fedledger.bridge.embedded import build_anchoring
from fedledger.bridge.outbox import AnchorStatus
from fedledger.bridge.service import BridgeSettings
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.evm import Chain, RpcBackend

from ..anvil import ANVIL, ANVIL_CHAIN_ID, ANVIL_DEV_KEYS, AnvilProcess, free_port, require_anvil, rpc_config
from .rounds import final_round_seen, finalize_round, join, wait_final_rounds

CAST = ANVIL.parents[2] / "cast-linux-amd64" / "bin" / "cast"
ORGS = ["Org1", "Org2", "Org3"]


class Outage:
    """A TCP proxy in front of the RPC node that can be switched off and on."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the thread blocked in accept(); close() alone would not
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass


def rpc_chain(url: str, **config) -> Chain:
    return Chain(RpcBackend(url, ANVIL_CHAIN_ID, dev_keys=ANVIL_DEV_KEYS, timeout_s=2),
                 rpc_config(url, **config))


@pytest.fixture()
def fabric(tmp_path):
    network = EmbeddedNetwork(tmp_path / "fabric", ORGS, orderer=OrdererSettings.fast())
    network.start()
    yield network
    network.stop()


def setup(fabric, chain, tmp_path, **settings):
    anchoring = build_anchoring(fabric, chain, db_url=f"sqlite:///{tmp_path / 'bridge.db'}",
                                settings=BridgeSettings(poll_interval_s=0.1, **settings))
    return anchoring, join(anchoring, ORGS)


def run_in_background(bridge):
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_rpc_outage_while_anchoring_then_anchored_exactly_once(fabric, tmp_path):
    require_anvil()
    node = AnvilProcess()
    proxy = Outage(node.port)
    try:
        anchoring, consortium = setup(fabric, rpc_chain(proxy.url), tmp_path)
        bridge = anchoring.bridge
        bridge.start()
        stop, thread = run_in_background(bridge)
        direct = rpc_chain(node.url)

        proxy.down()
        finalize_round(consortium, 1)
        wait_final_rounds(bridge.outbox, 1)
        time.sleep(1.5)  # several bridge steps fail against the dead RPC
        [anchor] = bridge.outbox.anchors()
        assert anchor.status != AnchorStatus.RECORDED and anchor.attempts >= 1
        assert "unreachable" in (anchor.last_error or "").lower() or anchor.last_error

        proxy.up()
        wait_for(lambda: bridge.outbox.anchors()[0].status == AnchorStatus.RECORDED, 30,
                 "the anchor to be recorded after the outage")
        stop.set()
        thread.join(10)
        registry = direct.contract("AnchorRegistry", anchoring.registry.address)
        assert registry.functions.nextRound().call() == 2
        logs = direct.get_logs(registry.events.Anchored, from_block=0)
        assert len(logs) == 1
        anchoring.close()
    finally:
        proxy.down()
        node.stop()


def test_a_slow_chain_is_waited_on_for_n_confirmations(fabric, tmp_path):
    require_anvil()
    node = AnvilProcess("--block-time", "1")
    try:
        chain = rpc_chain(node.url, confirmations=3)
        anchoring, consortium = setup(fabric, chain, tmp_path, confirmations=3)
        bridge = anchoring.bridge
        bridge.start()
        final_round_seen(bridge, consortium, 1)
        started = time.time()
        bridge.step()
        elapsed = time.time() - started
        [anchor] = bridge.outbox.anchors()
        assert anchor.status == AnchorStatus.RECORDED
        assert chain.block_number() - anchor.block_number + 1 >= 3
        assert elapsed >= 2.0  # at least two more 1-second blocks after the anchor's
        anchoring.close()
    finally:
        node.stop()


def test_an_anchor_verifies_with_cast_and_with_fedledger_verify(fabric, tmp_path):
    require_anvil()
    if not CAST.is_file():
        pytest.skip("cast not installed: run npm ci --prefix deploy/foundry")
    node = AnvilProcess()
    try:
        chain = rpc_chain(node.url)
        anchoring, consortium = setup(fabric, chain, tmp_path)
        bridge = anchoring.bridge
        bridge.start()
        final_round_seen(bridge, consortium, 1)
        bridge.step()
        [anchor] = bridge.outbox.anchors()
        address = anchoring.registry.address

        def cast(*args: str) -> str:
            return subprocess.run([str(CAST), *args, "--rpc-url", node.url], check=True,
                                  capture_output=True, text=True, timeout=60).stdout.strip()

        assert cast("call", address, "nextRound()(uint64)") == "2"
        logs = json.loads(cast("logs", "--json", "--from-block", str(anchor.block_number),
                               "--to-block", str(anchor.block_number), "--address", address,
                               "Anchored(uint64 indexed,uint64 indexed,bytes32,address indexed)"))
        assert len(logs) == 1
        assert logs[0]["data"][2:66] == anchor.root  # the root is the event's data word
        assert int(logs[0]["topics"][1], 16) == 1 and int(logs[0]["topics"][2], 16) == 1

        leaf = next(leaf for leaf in anchor.leaves if leaf["kind"] == "round")
        package = consortium_proof(anchor, leaf, chain_id=ANVIL_CHAIN_ID, contract=address)
        path = tmp_path / "proof.json"
        path.write_text(package.model_dump_json(indent=2))
        verify = [sys.executable, "-m", "fedledger.cli", "verify", str(path), "--rpc-url", node.url,
                  "--contract", address]
        ok = subprocess.run(verify, capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "verified" in ok.stdout

        package.record["record"]["status"] = "open"  # a rewritten history
        path.write_text(package.model_dump_json())
        bad = subprocess.run(verify, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 1 and "NOT verified" in bad.stdout
        anchoring.close()
    finally:
        node.stop()
