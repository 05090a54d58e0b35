"""TLS between the peer and the chaincode server, configured the way Fabric's CCaaS
chaincodes are (CHAINCODE_TLS_DISABLED, CHAINCODE_TLS_KEY, CHAINCODE_TLS_CERT,
CHAINCODE_CLIENT_CA_CERT): the settings ``python -m fedledger_chaincode`` reads, a
transaction over mutual TLS from the dev peer's ``ChaincodeClient``, and the clients the
server refuses."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedledger.devnet.ca import NetworkCrypto, load_ca, write_network_crypto
from fedledger.devnet.chaincode import ChaincodeClient, ClientTLS
from fedledger.fabric.errors import ChaincodeError
from fedledger_chaincode.__main__ import ServerSettings, SettingsError
from fedledger_chaincode.shim import ChaincodeServer
from tests.chaincode.test_shim import CC_NAME, FakeSimulator, KVChaincode, call, run

CC_HOST = "chaincode.org1.example.com"     # the chaincode server's name in the deployment


@dataclass(frozen=True)
class Material:
    crypto: NetworkCrypto
    server_cert: Path      # the chaincode server's TLS certificate, from Org1's TLS CA
    server_key: Path
    not_pem: Path

    def env(self, **overrides: str) -> dict[str, str]:
        """A chaincode server's environment for mutual TLS, Org1's TLS CA trusted."""
        env = {"CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0", "CHAINCODE_ID": CC_NAME,
               "CHAINCODE_TLS_DISABLED": "false",
               "CHAINCODE_TLS_KEY": str(self.server_key),
               "CHAINCODE_TLS_CERT": str(self.server_cert),
               "CHAINCODE_CLIENT_CA_CERT": str(self.crypto.org("Org1").tls_ca_cert)}
        env.update(overrides)
        return {k: v for k, v in env.items() if v}

    def peer_tls(self, org: str = "Org1", *, with_cert: bool = True) -> ClientTLS:
        """What the org's peer dials with (connection.json: root_cert, client cert/key)."""
        peer = self.crypto.org(org).peer
        return ClientTLS(
            root_ca_pem=self.crypto.org("Org1").tls_ca_cert.read_bytes(),
            cert_pem=peer.tls_cert.read_bytes() if with_cert else None,
            key_pem=peer.tls_key.read_bytes() if with_cert else None,
            server_name=CC_HOST)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    root = tmp_path_factory.mktemp("cc-tls")
    crypto = write_network_crypto(root / "crypto", ["Org1", "Org2"])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = load_ca(crypto.org("Org1").tlsca_dir).issue(
        common_name=CC_HOST, key=key, tls=True, sans=[CC_HOST, "localhost", "127.0.0.1"])
    server_cert, server_key, not_pem = root / "server.crt", root / "server.key", root / "x.txt"
    server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    not_pem.write_text("not a certificate\n")
    return Material(crypto, server_cert, server_key, not_pem)


# -- settings ------------------------------------------------------------------------------


def test_settings_read_fabrics_ccaas_variables(material: Material) -> None:
    mutual = ServerSettings.from_env(material.env())
    assert (mutual.address, mutual.chaincode_id) == ("127.0.0.1:0", CC_NAME)
    assert mutual.tls is not None
    assert mutual.tls.cert_pem == material.server_cert.read_bytes()
    assert mutual.tls.key_pem == material.server_key.read_bytes()
    assert mutual.tls.client_ca_pem == material.crypto.org("Org1").tls_ca_cert.read_bytes()
    # no client CA: TLS, any client may connect
    assert ServerSettings.from_env(
        material.env(CHAINCODE_CLIENT_CA_CERT="")).tls.client_ca_pem is None  # type: ignore[union-attr]
    # unset CHAINCODE_TLS_DISABLED: TLS when a file is named, else plaintext
    assert ServerSettings.from_env(material.env(CHAINCODE_TLS_DISABLED="")).tls is not None
    plain = {"CHAINCODE_SERVER_ADDRESS": "0.0.0.0:9999", "CHAINCODE_ID": "fedledger_1.0:ab"}
    assert ServerSettings.from_env(plain).tls is None
    # explicitly disabled: plaintext, whatever else is set
    assert ServerSettings.from_env(material.env(CHAINCODE_TLS_DISABLED="TRUE")).tls is None


@pytest.mark.parametrize(("overrides", "variable"), [
    ({"CHAINCODE_SERVER_ADDRESS": ""}, "CHAINCODE_SERVER_ADDRESS"),
    ({"CHAINCODE_ID": ""}, "CHAINCODE_ID"),
    ({"CHAINCODE_TLS_DISABLED": "maybe"}, "CHAINCODE_TLS_DISABLED"),
    ({"CHAINCODE_TLS_KEY": ""}, "CHAINCODE_TLS_KEY"),
    ({"CHAINCODE_TLS_CERT": "", "CHAINCODE_TLS_DISABLED": ""}, "CHAINCODE_TLS_CERT"),
    ({"CHAINCODE_TLS_KEY": "/nonexistent/server.key"}, "CHAINCODE_TLS_KEY"),
    ({"CHAINCODE_TLS_CERT": "/nonexistent/server.crt"}, "CHAINCODE_TLS_CERT"),
    ({"CHAINCODE_CLIENT_CA_CERT": "/nonexistent/ca.crt"}, "CHAINCODE_CLIENT_CA_CERT"),
    ({"CHAINCODE_TLS_CERT": "NOT_PEM"}, "CHAINCODE_TLS_CERT"),
])
def test_a_bad_setting_names_its_variable(material: Material, overrides: dict[str, str],
                                          variable: str) -> None:
    overrides = {k: str(material.not_pem) if v == "NOT_PEM" else v for k, v in overrides.items()}
    with pytest.raises(SettingsError) as info:
        ServerSettings.from_env(material.env(**overrides))
    assert info.value.variable == variable
    assert isinstance(info.value, ValueError)


# -- the server over TLS ---------------------------------------------------------------------


def test_mutual_tls_transaction_and_the_clients_refused(material: Material) -> None:
    async def scenario() -> None:
        settings = ServerSettings.from_env(material.env())
        server = ChaincodeServer(KVChaincode(), settings.address, settings.chaincode_id,
                                 settings.tls)
        await server.start()
        address = f"127.0.0.1:{server.port}"
        refused = {
            "no client certificate": ChaincodeClient(
                address, CC_NAME, material.peer_tls(with_cert=False), connect_timeout=5),
            "another org's certificate": ChaincodeClient(
                address, CC_NAME, material.peer_tls("Org2"), connect_timeout=5),
            "plaintext": ChaincodeClient(address, CC_NAME, connect_timeout=5),
        }
        peer = ChaincodeClient(address, CC_NAME, material.peer_tls())
        try:
            sim = FakeSimulator()
            assert (await call(peer, sim, "put", "a", "1")).response.status == 200
            res = await call(peer, sim, "get", "a")
            assert (res.response.status, res.response.payload) == (200, b"1")
            for why, client in refused.items():
                with pytest.raises(ChaincodeError) as info:
                    await client.connect()
                assert info.value.step == "execute", why
                assert not client.connected, why
            assert server.connections == 1       # only the peer's stream got to the chaincode
        finally:
            for client in (peer, *refused.values()):
                await client.close()
            await server.stop(0)
    run(scenario)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chaincode_process(env: dict[str, str]) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CHAINCODE_")}
    full.update(env)
    return subprocess.Popen([sys.executable, "-m", "fedledger_chaincode"], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_python_m_fedledger_chaincode_serves_mutual_tls(material: Material) -> None:
    package_id = "fedledger_1.0:" + "ab" * 32
    address = f"127.0.0.1:{_free_port()}"
    proc = _chaincode_process(material.env(CHAINCODE_SERVER_ADDRESS=address,
                                           CHAINCODE_ID=package_id))

    async def scenario() -> None:
        peer = ChaincodeClient(address, "fedledger", material.peer_tls(),
                               chaincode_id=package_id, connect_timeout=2)
        anonymous = ChaincodeClient(address, "fedledger", material.peer_tls(with_cert=False),
                                    chaincode_id=package_id, connect_timeout=2)
        try:
            for _ in range(60):           # the process needs a moment to listen
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    await peer.connect()  # REGISTER as the package id, over mutual TLS
                    break
                except ChaincodeError:
                    await asyncio.sleep(0.25)
            assert peer.connected
            with pytest.raises(ChaincodeError):
                await anonymous.connect()
        finally:
            await peer.close()
            await anonymous.close()

    try:
        run(scenario)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_python_m_fedledger_chaincode_stops_on_a_missing_file(material: Material) -> None:
    proc = _chaincode_process(material.env(CHAINCODE_TLS_KEY="/nonexistent/server.key"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "CHAINCODE_TLS_KEY" in stderr
