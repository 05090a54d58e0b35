"""`docker compose config` accepts the deployment (base and testnet override), offline,
and resolves every variable as tests/deploy/compose.py does (the other tests rely on it)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from .compose import (
    COMPOSE_FILE,
    DEPLOY,
    INSTALL_HINT,
    REPO,
    compose_command,
    environment,
    load_compose,
    need,
)


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = compose_command()
    need("docker compose (v2)", command is not None, INSTALL_HINT)
    assert command is not None
    return command


def _config(compose: list[str], *files: str, extra_env: dict[str, str] | None = None) -> dict:
    # Only .env's values: no variable of the caller's shell may leak in.
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "HOME", "DOCKER_CONFIG", "LANG", "TMPDIR")}
    env.update(extra_env or {})
    args = [a for f in files for a in ("-f", f)]
    result = subprocess.run([*compose, *args, "config", "--format", "json"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_config_accepts_the_deployment(compose: list[str]) -> None:
    resolved = _config(compose, str(COMPOSE_FILE))
    assert resolved["name"] == "fedledger"
    ours = load_compose()
    assert set(resolved["services"]) == set(ours["services"])
    for name, service in ours["services"].items():
        # Interpolated the same way: every environment value, command and image.
        assert resolved["services"][name].get("environment", {}) == environment(service), name
        assert resolved["services"][name]["image"] == service["image"], name
    assert set(resolved["volumes"]) == set(ours["volumes"])
    assert set(resolved["secrets"]) == set(ours["secrets"])


def test_compose_config_accepts_the_testnet_override(compose: list[str]) -> None:
    resolved = _config(compose, str(COMPOSE_FILE), str(DEPLOY / "compose.testnet.yml"))
    assert "anvil" not in resolved["services"]  # profile local-chain: not started
    for name in ("contracts", "bridge"):
        env = resolved["services"][name]["environment"]
        assert env["FEDLEDGER_EVM__RPC_URL_FILE"] == "/run/secrets/evm_rpc_url"
        assert env["FEDLEDGER_SUBMITTER__KEYSTORE_FILE"] == "/run/secrets/bridge_keystore"
        assert env["FEDLEDGER_SUBMITTER__KEY_FILE"] == "" and env["FEDLEDGER_EVM__RPC_URL"] == ""
    # The override leaves the peer-to-chaincode hop as it is: mutual TLS.
    assert resolved["services"]["network"]["environment"]["CHAINCODE_TLS_DISABLED"] == "false"
    for org in ("org1", "org2", "org3"):
        env = resolved["services"][f"chaincode.{org}.example.com"]["environment"]
        assert env["CHAINCODE_TLS_DISABLED"] == "false"
        assert {"CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT", "CHAINCODE_CLIENT_CA_CERT"} <= set(env)


def test_compose_config_refuses_a_missing_version(compose: list[str], tmp_path) -> None:
    # The versions are required variables: without .env's FABRIC_VERSION compose stops.
    (tmp_path / ".env").write_text(
        "\n".join(line for line in (REPO / ".env").read_text().splitlines()
                  if not line.startswith("FABRIC_VERSION=")) + "\n")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_CONFIG")}
    result = subprocess.run([*compose, "-f", str(COMPOSE_FILE), "--env-file",
                             str(tmp_path / ".env"), "config", "--quiet"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "FABRIC_VERSION" in result.stderr


# ----------------------------------------------------------------------------- HTTPS
# Static (no compose binary): the file as tests/deploy/compose.py reads it.

#: A client's URL variable -> the variable naming the CA its certificate must verify against.
URL_CA = {"FEDLEDGER_COORDINATOR_URL": "FEDLEDGER_COORDINATOR_TLS_CA",
          "FEDLEDGER_ORG_NODES": "FEDLEDGER_NODE_TLS_CAS"}


def rest_services(services: dict) -> list[str]:
    """The fedledger containers that listen (the contracts deployer does not)."""
    return sorted(n for n, s in services.items() if s["image"].startswith("fedledger:")
                  and "FEDLEDGER_PORT" in environment(s))


def _urls(value: str) -> dict[str, str]:
    """key -> URL of a variable holding one URL or a map ``K=URL,K=URL``."""
    if "=" not in value:
        return {"": value}
    return dict(item.split("=", 1) for item in value.split(","))


@pytest.mark.parametrize("testnet", [False, True])
def test_every_rest_service_serves_https_and_is_reached_over_https(testnet: bool) -> None:
    services = load_compose()["services"]
    if testnet:  # the override changes only the chain's variables: merge them
        for name, service in load_compose(path=DEPLOY / "compose.testnet.yml")["services"].items():
            if name in services and "environment" in service:
                services[name] = {**services[name], "environment": {
                    **environment(services[name]), **environment(service)}}
    rest = rest_services(services)
    assert rest == ["bridge", "coordinator", "org1-node", "org2-node", "org3-node"]
    for name in rest:
        env = environment(services[name])
        assert env["FEDLEDGER_HOST"] == "0.0.0.0", name
        assert env["FEDLEDGER_TLS__CERT_FILE"] == "/etc/fedledger/tls/server.crt", name
        assert env["FEDLEDGER_TLS__KEY_FILE"] == "/etc/fedledger/tls/server.key", name
        # The healthcheck speaks HTTPS too, verifying the service's own org TLS CA.
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "https://127.0.0.1:8000/health" in check and "/etc/fedledger/tls/ca.crt" in check
    reached = set()
    for name, service in services.items():
        for key, value in environment(service).items():
            for host in re.findall(r"\w+://([\w.-]+)", value):
                if host in rest:
                    reached.add(host)
                    assert key in URL_CA, f"{name}: {key} names {host} with no CA for it"
            if key in URL_CA:
                urls, cas = _urls(value), _urls(environment(service)[URL_CA[key]])
                assert set(urls) == set(cas), (name, key)
                for url in urls.values():
                    assert url.startswith("https://"), f"{name}: {key}={url} is not https"
    assert reached == set(rest) - {"bridge"}   # nobody in compose calls the bridge's API
