"""The bridge with remote org agents: each org's anchoring endpoints served by a tiny
stand-in org node (a real OrgAnchorAgent behind signed-request checks), reached over
HTTP by RemoteAnchorAgent."""

from __future__ import annotations

import hashlib
import json

import pytest
from eth_account import Account
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from fedledger.bridge.embedded import build_anchoring
from fedledger.bridge.errors import BridgeError
from fedledger.bridge.outbox import AnchorStatus
from fedledger.bridge.remote import RemoteAnchorAgent
from fedledger.bridge.service import BridgeSettings
from fedledger.bridge.tree import AnchorBatch
from fedledger.devnet.ca import write_service_tls
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.evm.connection import connect
from fedledger.web.errors import Conflict, Forbidden, install_error_handlers
from fedledger.web.server import ThreadedServer, free_port
from fedledger.web.settings import TlsServerSettings
from fedledger.web.signing import RequestVerifier

from .rounds import final_round_seen, join

ORGS = ["Org1", "Org2", "Org3"]
MSPS = [f"{o}MSP" for o in ORGS]


def fake_org_node(agent, verifier: RequestVerifier, *, bridge_msp: str) -> FastAPI:  # noqa: ANN001
    """The two anchoring endpoints of an org node, around a real OrgAnchorAgent."""
    app = FastAPI()
    install_error_handlers(app)
    app.state.calls = []

    async def caller(request: Request) -> str:
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        who = verifier.verify(request.method, path, request.headers, hashlib.sha256(body).hexdigest())
        if who.msp_id != bridge_msp:
            raise Forbidden(f"{who.msp_id} is not the bridge")
        app.state.calls.append(path)
        return who.msp_id

    @app.get("/anchoring/private-state")
    async def private_state(request: Request) -> dict:
        await caller(request)
        return await run_in_threadpool(agent.private_state)

    @app.post("/anchoring/approve")
    async def approve(request: Request) -> dict:
        await caller(request)
        body = json.loads(await request.body())
        batch = AnchorBatch.from_leaves(body["first_round"], body["last_round"], body["leaves"])
        try:
            signature = await run_in_threadpool(
                lambda: agent.approve(batch, chain_id=body["chain_id"], registry=body["registry"]))
        except BridgeError as exc:
            raise Conflict(exc.message) from None
        return {"signature": "0x" + signature.hex(), "address": agent.address}

    return app


@pytest.fixture()
def world(tmp_path):
    network = EmbeddedNetwork(tmp_path / "fabric", ORGS, orderer=OrdererSettings.fast())
    network.start()
    chain = connect()
    anchoring = build_anchoring(network, chain, db_url=f"sqlite:///{tmp_path / 'bridge.db'}",
                                settings=BridgeSettings(batch_rounds=1, confirmations=1))
    consortium = join(anchoring, ORGS)
    verifier = RequestVerifier(network.network.msp_manager())
    bridge_identity = network.network.identity("Org1")
    servers, apps, remote = {}, {}, []
    for msp in MSPS:
        apps[msp] = fake_org_node(anchoring.agents[msp], verifier, bridge_msp="Org1MSP")
        servers[msp] = ThreadedServer(apps[msp]).start()
        remote.append(RemoteAnchorAgent(msp, anchoring.org_accounts[msp].address, servers[msp].url,
                                        bridge_identity, timeout_s=10))
    anchoring.bridge.agents = remote
    yield network, anchoring, consortium, servers, apps, remote
    for agent in remote:
        agent.close()
    for server in servers.values():
        server.stop()
    anchoring.close()
    network.stop()


def test_rounds_are_anchored_through_remote_agents(world):
    network, anchoring, consortium, servers, apps, remote = world
    bridge = anchoring.bridge
    bridge.start()
    final_round_seen(bridge, consortium, 1)
    bridge.step()
    [anchor] = bridge.outbox.anchors()
    assert anchor.status == AnchorStatus.RECORDED
    assert len(anchor.signatures) >= anchoring.registry.threshold()
    [on_chain] = anchoring.registry.anchors()
    assert on_chain.root.hex() == anchor.root
    private = [leaf for leaf in anchor.leaves if leaf["kind"] == "private_state"]
    assert sorted(leaf["org"] for leaf in private) == MSPS
    for msp in MSPS:  # every node was asked for its state (signed by the bridge's identity)
        assert "/anchoring/private-state" in apps[msp].state.calls


def test_private_state_and_approve_over_http(world):
    network, anchoring, consortium, servers, apps, remote = world
    bridge = anchoring.bridge
    bridge.start()
    final_round_seen(bridge, consortium, 1)
    org2 = remote[1]
    state = org2.private_state()
    assert state["kind"] == "private_state" and state["org"] == "Org2MSP"
    bridge._batch(flush=False)
    [anchor] = bridge.outbox.unfinished()
    batch = AnchorBatch.from_leaves(anchor.first_round, anchor.last_round, anchor.leaves)
    chain_id, registry = anchoring.registry.chain.chain_id, anchoring.registry.address
    signature = org2.approve(batch, chain_id=chain_id, registry=registry)
    assert len(signature) == 65
    # a tampered batch: the org refuses with its reason (409 -> BridgeError)
    leaves = [dict(leaf) for leaf in anchor.leaves]
    index = next(i for i, leaf in enumerate(leaves) if leaf["kind"] == "round")
    leaves[index] = {**leaves[index], "round_id": 99}
    tampered = AnchorBatch.from_leaves(anchor.first_round, anchor.last_round, leaves)
    with pytest.raises(BridgeError) as info:
        org2.approve(tampered, chain_id=chain_id, registry=registry)
    assert info.value.step == "approve"
    assert "Org2MSP refuses" in info.value.message and "not on its ledger" in info.value.message


def test_a_node_that_is_down_or_signs_with_another_key_costs_only_its_signature(world):
    network, anchoring, consortium, servers, apps, remote = world
    bridge = anchoring.bridge
    identity = network.network.identity("Org1")
    down = RemoteAnchorAgent("Org3MSP", remote[2].address, f"http://127.0.0.1:{free_port()}",
                             identity, timeout_s=2)
    with pytest.raises(BridgeError) as info:
        down.private_state()
    assert info.value.step == "private_state"
    # Org2's node answers, but the bridge expects another anchor key for it
    impostor = RemoteAnchorAgent("Org2MSP", Account.create().address, servers["Org2MSP"].url,
                                 identity, timeout_s=10)
    bridge.start()
    final_round_seen(bridge, consortium, 1)
    bridge._batch(flush=False)
    [anchor] = bridge.outbox.unfinished()
    batch = AnchorBatch.from_leaves(anchor.first_round, anchor.last_round, anchor.leaves)
    with pytest.raises(BridgeError, match="not by its anchor key"):
        impostor.approve(batch, chain_id=anchoring.registry.chain.chain_id,
                         registry=anchoring.registry.address)
    with pytest.raises(BridgeError) as info:
        down.approve(batch, chain_id=anchoring.registry.chain.chain_id,
                     registry=anchoring.registry.address)
    assert info.value.step == "approve"
    # two of three nodes are enough (threshold 2): the anchor still goes through
    bridge.agents = [remote[0], remote[1], down]
    bridge.step()
    [anchor] = bridge.outbox.anchors()
    assert anchor.status == AnchorStatus.RECORDED
    assert set(anchor.signatures) == {remote[0].address, remote[1].address}
    down.close()
    impostor.close()


def test_requests_from_another_org_are_refused_by_the_node(world):
    network, anchoring, consortium, servers, apps, remote = world
    stranger = RemoteAnchorAgent("Org2MSP", remote[1].address, servers["Org2MSP"].url,
                                 network.network.identity("Org3"), timeout_s=10)
    with pytest.raises(BridgeError, match="403"):
        stranger.private_state()
    stranger.close()


def test_the_bridge_reaches_a_node_over_https_trusting_only_its_orgs_tls_ca(world):
    network, anchoring, consortium, servers, apps, remote = world
    crypto = network.network.crypto
    org2, org3 = crypto.org("Org2"), crypto.org("Org3")
    tls_dir = write_service_tls(org2.org_dir, "org2-node")
    server = ThreadedServer(apps["Org2MSP"], tls=TlsServerSettings(
        cert_file=tls_dir / "server.crt", key_file=tls_dir / "server.key")).start()
    identity = network.network.identity("Org1")
    trusted = RemoteAnchorAgent("Org2MSP", remote[1].address, server.url, identity,
                                timeout_s=10, verify=org2.tls_ca_cert)
    wrong_ca = RemoteAnchorAgent("Org2MSP", remote[1].address, server.url, identity,
                                 timeout_s=10, verify=org3.tls_ca_cert)
    try:
        calls = len(apps["Org2MSP"].state.calls)
        with pytest.raises(BridgeError) as info:
            wrong_ca.private_state()
        assert info.value.step == "private_state"
        assert len(apps["Org2MSP"].state.calls) == calls   # nothing reached the node
        state = trusted.private_state()
        assert state["kind"] == "private_state" and state["org"] == "Org2MSP"
        assert len(apps["Org2MSP"].state.calls) == calls + 1
    finally:
        trusted.close()
        wrong_ca.close()
        server.stop()
