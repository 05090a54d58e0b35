"""Mutual TLS between each peer and its org's chaincode server in the compose deployment,
checked without Docker: crypto.sh's material (cryptogen stand-in: the dev CA, then the
chaincode servers' certificates by openssl), network.sh as the compose ``network`` service
runs it (its CHAINCODE_TLS_DISABLED) against the recording Fabric stand-in, and the
packages' connection.json (what the peer dials with, Fabric's CCaaS fields) against a
chaincode server configured by the chaincode container's own variables and mounts."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedledger.devnet.chaincode import ChaincodeClient, ClientTLS
from fedledger.fabric.errors import ChaincodeError
from fedledger_chaincode.__main__ import ServerSettings
from fedledger_chaincode.app import build_chaincode
from fedledger_chaincode.shim import ChaincodeServer
from tests.chaincode.test_shim import run

from .compose import DEPLOY, environment, host_path, load_compose, mounts, need
from .crypto_standin import run_crypto_sh
from .test_chaincode_script import Network

ORGS = ("org1", "org2", "org3")
TLS_FIELDS = {"address", "dial_timeout", "tls_required", "client_auth_required", "root_cert",
              "client_key", "client_cert"}


def connection_of(package: Path) -> dict[str, Any]:
    with tarfile.open(package) as outer:
        code = outer.extractfile("code.tar.gz").read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(code)) as inner:
        return json.load(inner.extractfile("connection.json"))  # type: ignore[arg-type]


class Deployment:
    """crypto.sh's material and network.sh's packages, as compose makes them."""

    def __init__(self, root: Path) -> None:
        self.crypto = root / "organizations"
        run_crypto_sh(self.crypto, bin_dir=root / "cryptogen-bin")
        self.compose = load_compose({"DEPLOY_CRYPTO_DIR": str(self.crypto)})
        network_env = environment(self.compose["services"]["network"])
        (root / "net").mkdir()
        self.network = Network(root / "net")
        self.network.env.update(CRYPTO_DIR=str(self.crypto),
                                CHAINCODE_TLS_DISABLED=network_env["CHAINCODE_TLS_DISABLED"])
        self.network.run("network.sh", orgs=network_env["FABRIC_ORGS"])

    def org_dir(self, org: str) -> Path:
        return self.crypto / f"peerOrganizations/{org}.example.com"

    def connection(self, org: str) -> dict[str, Any]:
        return connection_of(self.network.root / "artifacts" / f"fedledger-{org}.tar.gz")

    def server_env(self, org: str, address: str) -> dict[str, str]:
        """The org's chaincode container's environment, its paths on this machine."""
        service = self.compose["services"][f"chaincode.{org}.example.com"]
        env, table = environment(service), mounts(service)
        for key in ("CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT", "CHAINCODE_CLIENT_CA_CERT"):
            env[key] = str(host_path(env[key], table))
        env.update(CHAINCODE_SERVER_ADDRESS=address, CHAINCODE_ID=self.network.package_id(org))
        return env


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    need("jq", shutil.which("jq") is not None,
         "the scripts parse JSON with it (apt-get install jq)")
    return Deployment(tmp_path_factory.mktemp("cc-tls"))


def _cert(pem: str | bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def test_every_package_dials_its_chaincode_server_over_mutual_tls(deployment: Deployment) -> None:
    for org in ORGS:
        connection = deployment.connection(org)
        assert set(connection) == TLS_FIELDS, org
        assert connection["tls_required"] is True and connection["client_auth_required"] is True
        host = connection["address"].rsplit(":", 1)[0]
        assert connection["address"] == f"chaincode.{org}.example.com:9999"
        org_dir = deployment.org_dir(org)
        # root_cert: the org's TLS CA, as a PEM that parses.
        tlsca_pem = (org_dir / f"tlsca/tlsca.{org}.example.com-cert.pem").read_text()
        assert connection["root_cert"] == tlsca_pem
        root = _cert(connection["root_cert"])
        # client_cert and client_key: the peer's own TLS pair, clientAuth, from that CA.
        peer_tls = org_dir / f"peers/peer0.{org}.example.com/tls"
        assert connection["client_cert"] == (peer_tls / "server.crt").read_text()
        client = _cert(connection["client_cert"])
        client.verify_directly_issued_by(root)
        assert ExtendedKeyUsageOID.CLIENT_AUTH in client.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value
        key = serialization.load_pem_private_key(connection["client_key"].encode(), None)
        assert key.public_key() == client.public_key()
        # What the peer checks of the server: chains to root_cert, names the dialed host.
        server = _cert((org_dir / "chaincode/tls/server.crt").read_bytes())
        server.verify_directly_issued_by(root)
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert host in san.get_values_for_type(x509.DNSName)
    # One package per org; each holds its own peer's key only.
    keys = {deployment.connection(org)["client_key"] for org in ORGS}
    assert len(keys) == len(ORGS)


def _client(address: str, package_id: str, connection: dict[str, Any], *,
            cert_from: dict[str, Any] | None = None, with_cert: bool = True) -> ChaincodeClient:
    """A peer dialing as ``connection`` says (its client pair from ``cert_from``)."""
    pair = cert_from or connection
    tls = ClientTLS(root_ca_pem=connection["root_cert"].encode(),
                    cert_pem=pair["client_cert"].encode() if with_cert else None,
                    key_pem=pair["client_key"].encode() if with_cert else None,
                    server_name=connection["address"].rsplit(":", 1)[0])
    return ChaincodeClient(address, "fedledger", tls, chaincode_id=package_id, connect_timeout=5)


def test_the_peer_and_the_chaincode_container_agree_on_mutual_tls(deployment: Deployment) -> None:
    """org1's chaincode server, configured from its container's variables and mounted
    files, takes a stream from a peer dialing with org1's connection.json, and refuses
    another org's peer, a peer without a certificate, and plaintext."""
    package_id = deployment.network.package_id("org1")

    async def scenario() -> None:
        settings = ServerSettings.from_env(deployment.server_env("org1", "127.0.0.1:0"))
        assert settings.tls is not None and settings.tls.client_ca_pem is not None
        assert settings.chaincode_id == package_id
        server = ChaincodeServer(build_chaincode(), settings.address, settings.chaincode_id,
                                 settings.tls)
        await server.start()
        address = f"127.0.0.1:{server.port}"
        org1 = deployment.connection("org1")
        peer = _client(address, package_id, org1)
        refused = {
            "org2's peer": _client(address, package_id, org1,
                                   cert_from=deployment.connection("org2")),
            "no client certificate": _client(address, package_id, org1, with_cert=False),
            "plaintext": ChaincodeClient(address, "fedledger", chaincode_id=package_id,
                                         connect_timeout=5),
        }
        try:
            await peer.connect()
            assert peer.connected
            for why, client in refused.items():
                with pytest.raises(ChaincodeError):
                    await client.connect()
                assert not client.connected, why
            assert server.connections == 1
        finally:
            for client in (peer, *refused.values()):
                await client.close()
            await server.stop(0)
    run(scenario)


def test_a_server_name_other_than_the_chaincode_host_is_refused(deployment: Deployment) -> None:
    # The peer verifies the server's name: org1's certificate does not name org2's host.
    package_id = deployment.network.package_id("org1")

    async def scenario() -> None:
        settings = ServerSettings.from_env(deployment.server_env("org1", "127.0.0.1:0"))
        server = ChaincodeServer(build_chaincode(), settings.address, settings.chaincode_id,
                                 settings.tls)
        await server.start()
        wrong = dict(deployment.connection("org1"), address="chaincode.org2.example.com:9999")
        client = _client(f"127.0.0.1:{server.port}", package_id, wrong)
        try:
            with pytest.raises(ChaincodeError):
                await client.connect()
        finally:
            await client.close()
            await server.stop(0)
    run(scenario)


# ----------------------------------------------------------------------------- the scripts


def _package(tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(DEPLOY / "chaincode/package.sh"),
                           "chaincode.org1.example.com:9999", "fedledger_1.0",
                           str(tmp_path / name)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", **env})


def _tls_env(deployment: Deployment) -> dict[str, str]:
    org_dir = deployment.org_dir("org1")
    tls = org_dir / "peers/peer0.org1.example.com/tls"
    return {"CHAINCODE_TLS_ROOT_CERT": str(org_dir / "tlsca/tlsca.org1.example.com-cert.pem"),
            "CHAINCODE_TLS_CLIENT_CERT": str(tls / "server.crt"),
            "CHAINCODE_TLS_CLIENT_KEY": str(tls / "server.key")}


def test_a_tls_package_is_reproducible_and_is_what_chaincode_sh_installs(
        deployment: Deployment, tmp_path: Path) -> None:
    env = _tls_env(deployment)
    for name in ("a.tar.gz", "b.tar.gz"):
        assert _package(tmp_path, name, env).returncode == 0
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    assert (tmp_path / "a.tar.gz").read_bytes() == (
        deployment.network.root / "artifacts/fedledger-org1.tar.gz").read_bytes()
    # Root certificate only: TLS, no client certificate.
    only_root = {"CHAINCODE_TLS_ROOT_CERT": env["CHAINCODE_TLS_ROOT_CERT"]}
    assert _package(tmp_path, "c.tar.gz", only_root).returncode == 0
    connection = connection_of(tmp_path / "c.tar.gz")
    assert (connection["tls_required"], connection["client_auth_required"]) == (True, False)
    assert "client_key" not in connection


@pytest.mark.parametrize(("change", "message"), [
    ({"CHAINCODE_TLS_ROOT_CERT": "/nonexistent/ca.pem"}, "CHAINCODE_TLS_ROOT_CERT"),
    ({"CHAINCODE_TLS_CLIENT_KEY": "/etc/hostname"}, "CHAINCODE_TLS_CLIENT_KEY"),
    ({"CHAINCODE_TLS_CLIENT_CERT": ""}, "go together"),
    ({"CHAINCODE_TLS_ROOT_CERT": ""}, "go together"),
])
def test_package_sh_refuses_incomplete_tls(deployment: Deployment, tmp_path: Path,
                                           change: dict[str, str], message: str) -> None:
    env = {k: v for k, v in {**_tls_env(deployment), **change}.items() if v}
    result = _package(tmp_path, "p.tar.gz", env)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "p.tar.gz").exists()


def test_chaincode_sh_is_plaintext_where_tls_is_not_asked_for(deployment: Deployment,
                                                               tmp_path: Path) -> None:
    # Unset (a native network whose chaincode servers serve plaintext, tests/fabric/realnet.py):
    # no TLS fields; an unknown value stops the script.
    network = Network(tmp_path)
    network.env["CRYPTO_DIR"] = str(deployment.crypto)
    network.run("network.sh")
    assert connection_of(tmp_path / "artifacts/fedledger-org1.tar.gz") == {
        "address": "chaincode.org1.example.com:9999", "dial_timeout": "10s", "tls_required": False}
    for package in (tmp_path / "artifacts").glob("fedledger-*.tar.gz"):
        package.unlink()
    result = subprocess.run(["bash", str(DEPLOY / "scripts/chaincode.sh")], capture_output=True,
                            text=True, timeout=120, check=False,
                            env={**network.env, "FABRIC_ORGS": "org1:7051",
                                 "CHAINCODE_TLS_DISABLED": "maybe"})
    assert result.returncode != 0 and "CHAINCODE_TLS_DISABLED" in result.stderr


def test_a_plaintext_deployment_switches_to_tls_at_the_next_sequence(deployment: Deployment,
                                                                     tmp_path: Path) -> None:
    # docs/deploy.md's switch: remove the packages, approve and commit sequence 2.
    network = Network(tmp_path)
    network.env["CRYPTO_DIR"] = str(deployment.crypto)
    network.run("network.sh")
    plaintext = {org: network.package_id(org) for org in ORGS}
    for package in (tmp_path / "artifacts").glob("fedledger-*.tar.gz"):
        package.unlink()
    network.env.update(CHAINCODE_TLS_DISABLED="false", CHAINCODE_SEQUENCE="2")
    calls = network.run("network.sh")
    state = network.state()
    for org in ORGS:
        assert network.package_id(org) != plaintext[org]
        assert connection_of(tmp_path / f"artifacts/fedledger-{org}.tar.gz")["tls_required"]
        approval = state["approvals"][f"{org}-private"]["2"][f"Org{org[-1]}MSP"]
        assert approval["package_id"] == network.package_id(org)
    assert {c["argv"][c["argv"].index("--channelID") + 1] for c in calls
            if c["argv"][:3] == ["lifecycle", "chaincode", "commit"]} == {
        "consortium", "org1-private", "org2-private", "org3-private"}
    assert state["committed"]["consortium"]["sequence"] == 2
