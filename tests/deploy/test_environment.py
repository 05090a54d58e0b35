"""Settings from FEDLEDGER_* variables (fedledger.web.environment): sections, lists, maps,
secrets from files, database passwords; and the bridge's gas account from a key file or
an encrypted keystore."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from eth_account import Account

from fedledger.bridge.standalone import StandaloneBridgeSettings, SubmitterKey
from fedledger.coordinator.settings import CoordinatorSettings
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.web.environment import EnvSettingsError, env_values, url_with_password

from .compose import DEPLOY


def _coordinator_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "token").write_text("ab" * 32 + "\n")
    (tmp_path / "pw").write_text("s3cr3t/with:odd@chars\n")
    return {
        "FEDLEDGER_GATEWAY__ENDPOINT": "peer0.org1.example.com:7051",
        "FEDLEDGER_IDENTITY__MSP_ID": "Org1MSP", "FEDLEDGER_IDENTITY__MSP_DIR": "/m",
        "FEDLEDGER_ORG_MSPS__CRYPTO_ROOT": "/c", "FEDLEDGER_ORG_MSPS__ORGS": "Org1, Org2,Org3",
        "FEDLEDGER_OPERATOR_TOKEN_SHA256_FILE": str(tmp_path / "token"),
        "FEDLEDGER_DB_URL": "postgresql+psycopg://fedledger@postgres:5432/coordinator",
        "FEDLEDGER_DB_PASSWORD_FILE": str(tmp_path / "pw"),
        "FEDLEDGER_EXPERIMENT_FILE": str(DEPLOY / "config/experiment-quick.yaml"),
        "FEDLEDGER_PORT": "8000", "FEDLEDGER_COMMITTEE_SIZE": "",
    }


def test_coordinator_from_env(tmp_path: Path) -> None:
    settings = CoordinatorSettings.from_env(_coordinator_env(tmp_path))
    assert settings.gateway.endpoint == "peer0.org1.example.com:7051"
    assert settings.org_msps.orgs == ["Org1", "Org2", "Org3"]
    assert settings.operator_token_hash == "ab" * 32
    assert settings.port == 8000 and settings.committee_size is None   # empty = unset
    assert settings.experiment.model.base == "tiny-llama"
    from sqlalchemy.engine import make_url

    url = make_url(settings.db_url)
    assert url.password == "s3cr3t/with:odd@chars" and url.host == "postgres"


def test_unknown_variables_are_reported_not_fatal(tmp_path: Path, caplog) -> None:
    env = {**_coordinator_env(tmp_path), "FEDLEDGER_GATEWAY__ENDPIONT": "typo"}
    with caplog.at_level(logging.WARNING):
        CoordinatorSettings.from_env(env)
    assert "FEDLEDGER_GATEWAY__ENDPIONT" in caplog.text


def test_orgnode_from_env_takes_experiment_contracts_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "contracts.json").write_text(json.dumps(
        {"chain_id": 31337, "registry": "0x" + "12" * 20, "orgs": {}}))
    (tmp_path / "shard").write_text("k" * 32 + "\n")
    settings = OrgNodeSettings.from_env({
        "FEDLEDGER_ORG": "Org2", "FEDLEDGER_MSP_ID": "Org2MSP", "FEDLEDGER_DATA_DIR": "/d",
        "FEDLEDGER_GATEWAY__ENDPOINT": "peer0.org2.example.com:9051",
        "FEDLEDGER_USER_MSP_DIR": "/u", "FEDLEDGER_MSP_DIRS": "Org1MSP=/a,Org2MSP=/b",
        "FEDLEDGER_ANCHOR_KEY_FILE": "/run/secrets/org2_anchor_key",
        "FEDLEDGER_SHARD_KEY_FILE": str(tmp_path / "shard"),
        "FEDLEDGER_CONTRACTS_FILE": str(tmp_path / "contracts.json"),
        "FEDLEDGER_EXPERIMENT_FILE": str(DEPLOY / "config/experiment-quick.yaml"),
        "FEDLEDGER_TORCH_THREADS": "",
    })
    assert settings.msp_dirs == {"Org1MSP": Path("/a"), "Org2MSP": Path("/b")}
    assert settings.anchor_key_file == Path("/run/secrets/org2_anchor_key")  # a path field
    assert settings.shard_key == "k" * 32                                    # a secret's value
    assert (settings.chain_id, settings.registry_address) == (31337, "0x" + "12" * 20)
    assert settings.model.base == "tiny-llama" and settings.train.local_steps == 4
    assert settings.private_channel == "org2-private" and settings.torch_threads is None


def test_bad_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(EnvSettingsError, match="FEDLEDGER_MSP_DIRS"):
        env_values(OrgNodeSettings, {"FEDLEDGER_MSP_DIRS": "Org1MSP"})
    with pytest.raises(EnvSettingsError, match="cannot read"):
        env_values(OrgNodeSettings, {"FEDLEDGER_SHARD_KEY_FILE": str(tmp_path / "missing")})


def test_url_with_password() -> None:
    assert url_with_password("sqlite:///x.db", None) == "sqlite:///x.db"
    assert url_with_password("postgresql+psycopg://u@h:5432/d", "p@ss") == \
        "postgresql+psycopg://u:p%40ss@h:5432/d"


def test_gas_account_from_a_key_file_or_an_encrypted_keystore(tmp_path: Path) -> None:
    account = Account.create()
    (tmp_path / "key").write_text(account.key.hex().removeprefix("0x") + "\n")
    assert SubmitterKey(key_file=tmp_path / "key").load().address == account.address
    (tmp_path / "keystore").write_text(json.dumps(Account.encrypt(account.key, "pw d")))
    (tmp_path / "password").write_text("pw d\n")
    loaded = SubmitterKey(keystore_file=tmp_path / "keystore",
                          keystore_password_file=tmp_path / "password").load()
    assert loaded.address == account.address
    (tmp_path / "password").write_text("wrong\n")
    from fedledger.bridge.errors import BridgeError

    with pytest.raises(BridgeError, match="cannot decrypt"):
        SubmitterKey(keystore_file=tmp_path / "keystore",
                     keystore_password_file=tmp_path / "password").load()
    with pytest.raises(ValueError, match="not both"):
        SubmitterKey(key_file=tmp_path / "key", keystore_file=tmp_path / "keystore",
                     keystore_password_file=tmp_path / "password")


def test_bridge_settings_need_a_json_rpc_chain() -> None:
    base = {"FEDLEDGER_GATEWAY__ENDPOINT": "p:1", "FEDLEDGER_IDENTITY__MSP_ID": "Org1MSP",
            "FEDLEDGER_IDENTITY__MSP_DIR": "/m", "FEDLEDGER_SUBMITTER__KEY_FILE": "/k",
            "FEDLEDGER_CONTRACTS_FILE": "/c.json",
            "FEDLEDGER_ORG_NODES": "Org1MSP=http://org1-node:8000"}
    with pytest.raises(ValueError, match="rpc"):
        StandaloneBridgeSettings.from_env({**base, "FEDLEDGER_EVM__BACKEND": "embedded"})
    settings = StandaloneBridgeSettings.from_env({
        **base, "FEDLEDGER_EVM__BACKEND": "rpc", "FEDLEDGER_EVM__RPC_URL": "http://anvil:8545",
        "FEDLEDGER_EVM__CHAIN_ID": "31337", "FEDLEDGER_BRIDGE__SETTLE_S": "30"})
    assert settings.evm.chain_id == 31337 and settings.bridge.settle_s == 30
    assert settings.org_nodes == {"Org1MSP": "http://org1-node:8000"}
