"""Dev CA: cryptogen's layout, certificate contents, idempotence, extra identities."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedledger.devnet.ca import (
    NetworkCrypto,
    issue_identity,
    load_network_crypto,
    write_network_crypto,
)
from fedledger.fabric.errors import IdentityError
from fedledger.fabric.identity import load_signing_identity
from fedledger.fabric.msp import MSPManager


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkCrypto:
    return write_network_crypto(tmp_path_factory.mktemp("devca") / "crypto", ["Org1", "Org2"])


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


ORG1_FILES = [
    "ca/ca.org1.example.com-cert.pem", "ca/priv_sk",
    "tlsca/tlsca.org1.example.com-cert.pem", "tlsca/priv_sk",
    "msp/cacerts/ca.org1.example.com-cert.pem",
    "msp/tlscacerts/tlsca.org1.example.com-cert.pem", "msp/config.yaml",
    "peers/peer0.org1.example.com/msp/cacerts/ca.org1.example.com-cert.pem",
    "peers/peer0.org1.example.com/msp/keystore/priv_sk",
    "peers/peer0.org1.example.com/msp/signcerts/peer0.org1.example.com-cert.pem",
    "peers/peer0.org1.example.com/msp/tlscacerts/tlsca.org1.example.com-cert.pem",
    "peers/peer0.org1.example.com/msp/config.yaml",
    "peers/peer0.org1.example.com/tls/ca.crt",
    "peers/peer0.org1.example.com/tls/server.crt",
    "peers/peer0.org1.example.com/tls/server.key",
    "users/Admin@org1.example.com/msp/cacerts/ca.org1.example.com-cert.pem",
    "users/Admin@org1.example.com/msp/keystore/priv_sk",
    "users/Admin@org1.example.com/msp/signcerts/Admin@org1.example.com-cert.pem",
    "users/Admin@org1.example.com/msp/tlscacerts/tlsca.org1.example.com-cert.pem",
    "users/Admin@org1.example.com/msp/config.yaml",
    "users/Admin@org1.example.com/tls/ca.crt",
    "users/Admin@org1.example.com/tls/client.crt",
    "users/Admin@org1.example.com/tls/client.key",
    "users/User1@org1.example.com/msp/keystore/priv_sk",
    "users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem",
    "users/User1@org1.example.com/tls/client.crt",
]
ORDERER_FILES = [
    "ca/ca.example.com-cert.pem", "ca/priv_sk", "tlsca/tlsca.example.com-cert.pem",
    "msp/cacerts/ca.example.com-cert.pem", "msp/tlscacerts/tlsca.example.com-cert.pem",
    "msp/config.yaml",
    "orderers/orderer.example.com/msp/keystore/priv_sk",
    "orderers/orderer.example.com/msp/signcerts/orderer.example.com-cert.pem",
    "orderers/orderer.example.com/tls/server.crt",
    "orderers/orderer.example.com/tls/server.key",
    "orderers/orderer.example.com/tls/ca.crt",
    "users/Admin@example.com/msp/signcerts/Admin@example.com-cert.pem",
    "users/Admin@example.com/msp/keystore/priv_sk",
]


def test_layout_matches_cryptogen(net: NetworkCrypto) -> None:
    org1 = net.root / "peerOrganizations" / "org1.example.com"
    for rel in ORG1_FILES:
        assert (org1 / rel).is_file(), rel
    assert (net.root / "peerOrganizations" / "org2.example.com" / "msp" / "cacerts"
            / "ca.org2.example.com-cert.pem").is_file()
    orderer = net.root / "ordererOrganizations" / "example.com"
    for rel in ORDERER_FILES:
        assert (orderer / rel).is_file(), rel
    # The org's verifying MSP holds no keys.
    assert not (org1 / "msp" / "keystore").exists()


def test_network_description(net: NetworkCrypto) -> None:
    org1 = net.orgs["Org1"]
    assert org1.msp_id == "Org1MSP" and net.org("Org1MSP") is org1
    assert org1.msp_dir == net.root / "peerOrganizations/org1.example.com/msp"
    assert org1.peer.host == "peer0.org1.example.com"
    assert org1.peer.tls_cert.name == "server.crt" and org1.peer.tls_key.is_file()
    assert org1.admin.msp_dir.parent.name == "Admin@org1.example.com"
    assert [u.name for u in org1.users] == ["User1@org1.example.com"]
    assert org1.tls_ca_cert == org1.org_dir / "tlsca" / "tlsca.org1.example.com-cert.pem"
    assert net.orderer_org is not None and net.orderer_org.msp_id == "OrdererMSP"
    assert net.orderer_org.orderer.host == "orderer.example.com"
    assert set(net.msp_dirs()) == {"Org1MSP", "Org2MSP", "OrdererMSP"}


def test_ca_certificate_like_cryptogen(net: NetworkCrypto) -> None:
    ca = _cert(net.orgs["Org1"].ca_dir / "ca.org1.example.com-cert.pem")
    assert ca.subject.rfc4514_string() == (
        "CN=ca.org1.example.com,O=org1.example.com,L=San Francisco,ST=California,C=US")
    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    tlsca = _cert(net.orgs["Org1"].tls_ca_cert)
    assert _attr(tlsca.subject, NameOID.COMMON_NAME) == ["tlsca.org1.example.com"]


@pytest.mark.parametrize("who,ou", [("peer", "peer"), ("admin", "admin"), ("user", "client"),
                                     ("orderer", "orderer"), ("orderer_admin", "admin")])
def test_signing_certs_carry_node_ou(net: NetworkCrypto, who: str, ou: str) -> None:
    org1 = net.orgs["Org1"]
    assert net.orderer_org is not None
    msp_dir = {"peer": org1.peer.msp_dir, "admin": org1.admin.msp_dir,
               "user": org1.user.msp_dir, "orderer": net.orderer_org.orderer.msp_dir,
               "orderer_admin": net.orderer_org.admin.msp_dir}[who]
    cert = _cert(next((msp_dir / "signcerts").glob("*.pem")))
    assert _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == [ou]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    cert.verify_directly_issued_by(_cert(next((msp_dir / "cacerts").glob("*.pem"))))


def test_tls_server_cert_has_sans(net: NetworkCrypto) -> None:
    peer = net.orgs["Org1"].peer
    cert = _cert(peer.tls_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"peer0.org1.example.com", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    cert.verify_directly_issued_by(_cert(peer.tls_ca_cert))
    assert peer.tls_ca_cert.read_bytes() == net.orgs["Org1"].tls_ca_cert.read_bytes()


def test_config_yaml_is_cryptogens(net: NetworkCrypto) -> None:
    doc = yaml.safe_load((net.orgs["Org1"].msp_dir / "config.yaml").read_text())
    node_ous = doc["NodeOUs"]
    assert node_ous["Enable"] is True
    for key, ou in [("ClientOUIdentifier", "client"), ("PeerOUIdentifier", "peer"),
                    ("AdminOUIdentifier", "admin"), ("OrdererOUIdentifier", "orderer")]:
        assert node_ous[key] == {"Certificate": "cacerts/ca.org1.example.com-cert.pem",
                                 "OrganizationalUnitIdentifier": ou}


def test_keys_private_and_loadable(net: NetworkCrypto) -> None:
    key_file = net.orgs["Org2"].peer.msp_dir / "keystore" / "priv_sk"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    si = load_signing_identity(net.orgs["Org2"].peer.msp_dir, "Org2MSP")
    assert si.msp_id == "Org2MSP"


def test_existing_material_is_loaded_not_overwritten(net: NetworkCrypto) -> None:
    cert_file = net.orgs["Org1"].peer.msp_dir / "signcerts" / "peer0.org1.example.com-cert.pem"
    before = cert_file.read_bytes()
    again = write_network_crypto(net.root, ["Org1", "Org2"])
    assert cert_file.read_bytes() == before
    assert again == net
    assert load_network_crypto(net.root, ["Org1", "Org2"]) == net


def test_new_org_added_beside_existing(tmp_path: Path) -> None:
    first = write_network_crypto(tmp_path, ["Org1"], users=2)
    assert [u.name for u in first.orgs["Org1"].users] == [
        "User1@org1.example.com", "User2@org1.example.com"]
    ca_pem = (first.orgs["Org1"].ca_dir / "ca.org1.example.com-cert.pem").read_bytes()
    second = write_network_crypto(tmp_path, ["Org1", "Org3"])
    assert (first.orgs["Org1"].ca_dir / "ca.org1.example.com-cert.pem").read_bytes() == ca_pem
    assert second.orgs["Org3"].msp_id == "Org3MSP"
    assert len(second.orgs["Org1"].users) == 2   # what is on disk, not the new argument
    manager = MSPManager.from_dirs(second.msp_dirs())
    for org in second.orgs.values():
        si = load_signing_identity(org.peer.msp_dir, org.msp_id)
        assert manager.verify(si.serialize(), b"m", si.sign(b"m")).msp_id == org.msp_id


def test_load_missing_org_raises(net: NetworkCrypto, tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="Org9"):
        load_network_crypto(net.root, ["Org1", "Org9"])
    with pytest.raises(IdentityError):
        load_network_crypto(tmp_path / "nothing", ["Org1"])


def test_bad_org_names_rejected(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="duplicate"):
        write_network_crypto(tmp_path, ["Org1", "org1"])
    with pytest.raises(IdentityError, match="alphanumeric"):
        write_network_crypto(tmp_path, ["Org 1"])


def test_issue_identity(net: NetworkCrypto, tmp_path: Path) -> None:
    out = issue_identity(net.orgs["Org1"].ca_dir, "User7@org1.example.com", "client",
                         tmp_path / "user7" / "msp")
    assert (out / "signcerts" / "User7@org1.example.com-cert.pem").is_file()
    assert (out / "keystore" / "priv_sk").is_file()
    assert (out / "cacerts" / "ca.org1.example.com-cert.pem").is_file()
    assert (out / "tlscacerts" / "tlsca.org1.example.com-cert.pem").is_file()
    si = load_signing_identity(out, "Org1MSP")
    verified = MSPManager.from_dirs(net.msp_dirs()).deserialize(si.serialize())
    assert verified.roles == {"member", "client"}
    assert verified.common_name == "User7@org1.example.com"


def test_issue_identity_validity_window(net: NetworkCrypto, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    out = issue_identity(net.orgs["Org1"].ca_dir, "Old@org1.example.com", "client",
                         tmp_path / "msp", not_before=now - dt.timedelta(days=30),
                         not_after=now - dt.timedelta(days=1))
    cert = _cert(out / "signcerts" / "Old@org1.example.com-cert.pem")
    assert cert.not_valid_after_utc < now
    with pytest.raises(IdentityError, match="OU"):
        issue_identity(net.orgs["Org1"].ca_dir, "x", "auditor", tmp_path / "bad")
