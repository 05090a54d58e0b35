"""HostClient against a real host process (``tests/host``'s fixture: dev peer, embedded
EVM, bridge; no org node answers, so nothing is anchored): typed health, host.json and
outbox, and the errors of the proof route."""

from __future__ import annotations

import json

import pytest

from fedledger.clients import HostClient, InvalidRequest, NotFound
from tests.host.test_host import host  # noqa: F401 - fixture


def test_host_client(host) -> None:  # noqa: ANN001, F811
    with HostClient(host["url"]) as client:
        health = client.health()
        assert (health.status, health.service, health.org) == ("ok", "host", None)
        assert health.bridge.running is True
        assert health.bridge.agents == ["Org1MSP", "Org2MSP", "Org3MSP"]
        info = client.info()
        assert info.model_dump(mode="json") == json.loads((host["root"] / "host.json").read_text())
        assert info.status_url == host["url"] and info.threshold == 2
        assert client.anchors() == []
        assert client.anchor_for(1) is None
        with pytest.raises(NotFound) as missing:
            client.anchor(1)
        assert missing.value.status == 404 and missing.value.code == "not_found"
        with pytest.raises(InvalidRequest) as no_round:
            client.proof({"kind": "attestation"})
        assert no_round.value.status == 400 and "round_id" in no_round.value.reason
        with pytest.raises(NotFound):
            client.proof({"kind": "attestation", "round_id": 1, "record": {}})
