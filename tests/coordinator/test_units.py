"""Committee draw and blob store, without a network."""

from __future__ import annotations

import asyncio

import pytest

from fedledger.coordinator.blobs import BlobStore, BlobTooLarge
from fedledger.coordinator.committee import select_committee

ORGS = [f"Org{i}MSP" for i in range(1, 8)]


def test_committee_is_deterministic_and_without_replacement() -> None:
    a = select_committee(ORGS, seed="ab" * 32, round_id=3, size=4)
    assert a == select_committee(list(reversed(ORGS)), seed="ab" * 32, round_id=3, size=4)
    assert len(a) == len(set(a)) == 4 and set(a) <= set(ORGS) and a == sorted(a)
    draws = {tuple(select_committee(ORGS, seed=f"{s:064x}", round_id=1, size=3)) for s in range(40)}
    assert len(draws) > 10     # the seed matters
    assert select_committee(ORGS, seed="00" * 32, round_id=1) == sorted(ORGS)
    assert select_committee(ORGS, seed="00" * 32, round_id=1, size=99) == sorted(ORGS)


async def _chunks(parts):
    for part in parts:
        yield part


def test_blob_store_is_atomic(tmp_path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(BlobTooLarge):
        asyncio.run(store.receive(_chunks([b"a" * 10, b"b" * 10]), max_bytes=15))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [] and store.stored() == []
    pending = asyncio.run(store.receive(_chunks([b"hello ", b"world"]), max_bytes=15))
    assert store.stored() == []
    assert pending.publish() is True
    assert store.read(pending.sha256) == b"hello world"
    again = asyncio.run(store.receive(_chunks([b"hello world"]), max_bytes=15))
    assert again.publish() is False
    assert store.stored() == [pending.sha256]
    assert [p for p in (tmp_path / ".tmp").iterdir()] == []
    with pytest.raises(ValueError):
        store.path("../etc/passwd")


def test_settings_from_file(tmp_path, make_settings) -> None:
    import hashlib

    from pydantic import ValidationError

    from fedledger.coordinator import CoordinatorSettings

    settings = make_settings(operator_token=None, operator_token_sha256=hashlib.sha256(b"t").hexdigest())
    path = tmp_path / "coordinator.json"
    path.write_text(settings.model_dump_json())
    loaded = CoordinatorSettings.from_file(path)
    assert loaded == settings and loaded.operator_token_hash == hashlib.sha256(b"t").hexdigest()
    assert set(loaded.org_msps.resolved()) == {"Org1MSP", "Org2MSP", "Org3MSP"}
    with pytest.raises(ValidationError, match="operator_token"):
        make_settings(operator_token=None)


def test_round_config_names_the_server_optimizer_with_every_parameter(make_settings) -> None:
    from fedledger.coordinator.experiment import round_config

    plain = make_settings()
    assert "server_optimizer" not in round_config(plain)  # configs without one keep their digest
    experiment = plain.experiment.model_dump(mode="json")
    experiment["federation"]["server_optimizer"] = {"name": "fedadam", "params": {"lr": 0.03}}
    settings = type(plain).model_validate({**plain.model_dump(mode="json"), "experiment": experiment})
    assert round_config(settings)["server_optimizer"] == {
        "name": "fedadam", "params": {"lr": 0.03, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}}


def test_settings_refuse_drift_control_the_rounds_cannot_carry(make_settings) -> None:
    from pydantic import ValidationError

    plain = make_settings()
    experiment = plain.experiment.model_dump(mode="json")
    experiment["federation"]["drift_control"] = "scaffold"
    with pytest.raises(ValidationError, match="drift_control"):
        type(plain).model_validate({**plain.model_dump(mode="json"), "experiment": experiment})


def test_validators_are_drawn_by_stake_and_reproducibly():
    from fedledger.coordinator.committee import select_validators

    weights = {"Org1MSP": 10**18, "Org2MSP": 10**18, "Org3MSP": 0, "Org4MSP": 5 * 10**17}
    drawn = select_validators(weights, seed="ab" * 32, round_id=3, size=2)
    assert drawn == select_validators(dict(reversed(weights.items())), seed="ab" * 32,
                                      round_id=3, size=2)
    assert len(drawn) == 2 and drawn == sorted(drawn) and "Org3MSP" not in drawn
    # over many rounds, more stake is drawn more often; no stake never (while others have it)
    counts = {org: 0 for org in weights}
    for round_id in range(1, 401):
        for org in select_validators(weights, seed="cd" * 32, round_id=round_id, size=1):
            counts[org] += 1
    assert counts["Org3MSP"] == 0
    assert counts["Org1MSP"] > counts["Org4MSP"] and counts["Org2MSP"] > counts["Org4MSP"]
    assert counts["Org4MSP"] > 20
    # nobody staked: uniform among all
    assert len(select_validators(dict.fromkeys(weights, 0), seed="x", round_id=1, size=3)) == 3
