"""MSP verification: chains, validity, NodeOU roles, signatures, caching."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID

from fedledger.devnet.ca import NetworkCrypto, issue_identity, load_ca, write_network_crypto
from fedledger.fabric import msp as msp_module
from fedledger.fabric.errors import MSPError, SignatureError
from fedledger.fabric.identity import (
    P256_ORDER,
    Identity,
    SigningIdentity,
    load_signing_identity,
)
from fedledger.fabric.msp import MSP, MSPManager


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkCrypto:
    return write_network_crypto(tmp_path_factory.mktemp("msp") / "crypto", ["Org1", "Org2"])


@pytest.fixture(scope="module")
def other_net(tmp_path_factory: pytest.TempPathFactory) -> NetworkCrypto:
    """Same names, different CAs: what an impostor network would look like."""
    return write_network_crypto(tmp_path_factory.mktemp("msp-other") / "crypto", ["Org1"])


@pytest.fixture(scope="module")
def manager(net: NetworkCrypto) -> MSPManager:
    return MSPManager.from_dirs(net.msp_dirs())


@pytest.fixture(scope="module")
def peer1(net: NetworkCrypto) -> SigningIdentity:
    return load_signing_identity(net.orgs["Org1"].peer.msp_dir, "Org1MSP")


def test_msp_from_dir(net: NetworkCrypto) -> None:
    msp = MSP.from_dir(net.orgs["Org1"].msp_dir, "Org1MSP")
    assert msp.msp_id == "Org1MSP"
    assert len(msp.root_certs) == 1 and len(msp.tls_root_certs) == 1
    assert msp.intermediate_certs == ()
    assert msp.node_ous.enabled
    assert {r: i.ou for r, i in msp.node_ous.identifiers.items()} == {
        "client": "client", "peer": "peer", "admin": "admin", "orderer": "orderer"}
    assert msp.node_ous.identifiers["peer"].certificate == msp.root_certs[0]


def test_msp_from_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(MSPError, match="does not exist"):
        MSP.from_dir(tmp_path / "none", "X")
    (tmp_path / "m" / "cacerts").mkdir(parents=True)
    with pytest.raises(MSPError, match="no CA certificate"):
        MSP.from_dir(tmp_path / "m", "X")
    (tmp_path / "m" / "cacerts" / "bad.pem").write_text("junk")
    with pytest.raises(MSPError, match="bad.pem"):
        MSP.from_dir(tmp_path / "m", "X")


@pytest.mark.parametrize("who,role", [("peer", "peer"), ("admin", "admin"), ("user", "client")])
def test_roles_from_node_ous(net: NetworkCrypto, manager: MSPManager, who: str,
                             role: str) -> None:
    org = net.orgs["Org2"]
    msp_dir = {"peer": org.peer.msp_dir, "admin": org.admin.msp_dir, "user": org.user.msp_dir}[who]
    verified = manager.deserialize(load_signing_identity(msp_dir, "Org2MSP").serialize())
    assert verified.msp_id == "Org2MSP"
    assert verified.roles == {"member", role}


def test_orderer_role(net: NetworkCrypto, manager: MSPManager) -> None:
    assert net.orderer_org is not None
    si = load_signing_identity(net.orderer_org.orderer.msp_dir, "OrdererMSP")
    assert manager.deserialize(si.serialize()).roles == {"member", "orderer"}


def test_verify_good_signature(manager: MSPManager, peer1: SigningIdentity) -> None:
    msg = b"proposal response payload"
    verified = manager.verify(peer1.serialize(), msg, peer1.sign(msg))
    assert verified.msp_id == "Org1MSP" and "peer" in verified.roles


def test_verify_wrong_message_or_signer(net: NetworkCrypto, manager: MSPManager,
                                        peer1: SigningIdentity) -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        manager.verify(peer1.serialize(), b"other", peer1.sign(b"msg"))
    admin = load_signing_identity(net.orgs["Org1"].admin.msp_dir, "Org1MSP")
    with pytest.raises(SignatureError):
        manager.verify(peer1.serialize(), b"msg", admin.sign(b"msg"))
    with pytest.raises(SignatureError, match="DER"):
        manager.verify(peer1.serialize(), b"msg", b"\x30\x02junk")


def test_high_s_rejected(manager: MSPManager, peer1: SigningIdentity) -> None:
    msg = b"envelope payload"
    sig = peer1.sign(msg)
    r, s = decode_dss_signature(sig)
    high = encode_dss_signature(r, P256_ORDER - s)
    # Mathematically valid, still refused: Fabric accepts low-S only.
    peer1.signer.public_key.verify(high, msg, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureError, match="low-S"):
        manager.verify(peer1.serialize(), msg, high)
    assert manager.verify(peer1.serialize(), msg, sig).msp_id == "Org1MSP"


def test_cert_from_another_ca_rejected(other_net: NetworkCrypto, manager: MSPManager) -> None:
    impostor = load_signing_identity(other_net.orgs["Org1"].peer.msp_dir, "Org1MSP")
    with pytest.raises(MSPError, match="not issued by a trusted CA of Org1MSP"):
        manager.deserialize(impostor.serialize())
    with pytest.raises(MSPError, match="not issued by a trusted CA"):
        manager.verify(impostor.serialize(), b"m", impostor.sign(b"m"))


def test_cert_of_other_org_claimed_for_this_org(net: NetworkCrypto,
                                                manager: MSPManager) -> None:
    org2_peer = load_signing_identity(net.orgs["Org2"].peer.msp_dir, "Org2MSP")
    claimed = Identity("Org1MSP", org2_peer.identity.cert_pem).serialize()
    with pytest.raises(MSPError, match="Org1MSP"):
        manager.deserialize(claimed)


def test_unknown_msp_and_garbage(manager: MSPManager, peer1: SigningIdentity) -> None:
    with pytest.raises(MSPError, match="unknown MSP id 'Org9MSP'"):
        manager.deserialize(Identity("Org9MSP", peer1.identity.cert_pem).serialize())
    with pytest.raises(MSPError):
        manager.deserialize(b"\xff\x00garbage")
    with pytest.raises(MSPError, match="PEM"):
        manager.deserialize(Identity("Org1MSP", b"not a pem").serialize())


def test_expired_cert_rejected(net: NetworkCrypto, manager: MSPManager, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    out = issue_identity(net.orgs["Org1"].ca_dir, "Old@org1.example.com", "client",
                         tmp_path / "old", not_before=now - dt.timedelta(days=30),
                         not_after=now - dt.timedelta(days=1))
    old = load_signing_identity(out, "Org1MSP")
    with pytest.raises(MSPError, match="expired"):
        manager.deserialize(old.serialize())
    out = issue_identity(net.orgs["Org1"].ca_dir, "Future@org1.example.com", "client",
                         tmp_path / "future", not_before=now + dt.timedelta(days=1))
    with pytest.raises(MSPError, match="not valid before"):
        manager.deserialize(load_signing_identity(out, "Org1MSP").serialize())


def test_cached_identity_still_expires(net: NetworkCrypto, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    manager = MSPManager.from_dirs(net.msp_dirs())
    si = load_signing_identity(net.orgs["Org1"].user.msp_dir, "Org1MSP")
    first = manager.deserialize(si.serialize())
    assert manager.deserialize(si.serialize()) is first      # served from the cache
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 20)
    monkeypatch.setattr(msp_module.time, "time", lambda: later.timestamp())

    class _Later(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return later

    monkeypatch.setattr(msp_module.dt, "datetime", _Later)
    with pytest.raises(MSPError, match="expired"):
        manager.deserialize(si.serialize())


def test_foreign_ou_has_no_role(net: NetworkCrypto, manager: MSPManager) -> None:
    ca = load_ca(net.orgs["Org1"].ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue(common_name="auditor@org1.example.com", key=key, ou="auditor")
    serialized = Identity("Org1MSP", cert.public_bytes(serialization.Encoding.PEM)).serialize()
    with pytest.raises(MSPError, match="no node role"):
        manager.deserialize(serialized)


def test_ca_cert_cannot_be_identity(net: NetworkCrypto, manager: MSPManager) -> None:
    ca_pem = (net.orgs["Org1"].ca_dir / "ca.org1.example.com-cert.pem").read_bytes()
    with pytest.raises(MSPError, match="CA certificate cannot be an identity"):
        manager.deserialize(Identity("Org1MSP", ca_pem).serialize())


def test_without_node_ous_only_member_and_admincerts(net: NetworkCrypto,
                                                     tmp_path: Path) -> None:
    msp_dir = tmp_path / "msp"
    shutil.copytree(net.orgs["Org1"].msp_dir, msp_dir)
    (msp_dir / "config.yaml").unlink()
    admin = load_signing_identity(net.orgs["Org1"].admin.msp_dir, "Org1MSP")
    user = load_signing_identity(net.orgs["Org1"].user.msp_dir, "Org1MSP")
    (msp_dir / "admincerts").mkdir(exist_ok=True)   # cryptogen leaves it empty
    (msp_dir / "admincerts" / "admin.pem").write_bytes(admin.identity.cert_pem)
    manager = MSPManager([MSP.from_dir(msp_dir, "Org1MSP")])
    assert manager.deserialize(user.serialize()).roles == {"member"}
    assert manager.deserialize(admin.serialize()).roles == {"member", "admin"}


def _intermediate(root_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    root = load_ca(root_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org1.example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "ica.org1.example.com")]))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root.key, hashes.SHA256()))
    return cert, key


def test_intermediate_ca_chain(net: NetworkCrypto, tmp_path: Path) -> None:
    from fedledger.devnet.ca import CertAuthority

    ica_cert, ica_key = _intermediate(net.orgs["Org1"].ca_dir)
    ica = CertAuthority(ica_cert, ica_key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = ica.issue(common_name="peer1.org1.example.com", key=leaf_key, ou="peer")
    serialized = Identity("Org1MSP", leaf.public_bytes(serialization.Encoding.PEM)).serialize()

    msp_dir = tmp_path / "msp"
    shutil.copytree(net.orgs["Org1"].msp_dir, msp_dir)
    without = MSPManager([MSP.from_dir(msp_dir, "Org1MSP")])
    with pytest.raises(MSPError, match="not issued by a trusted CA"):
        without.deserialize(serialized)

    (msp_dir / "intermediatecerts").mkdir()
    (msp_dir / "intermediatecerts" / "ica.pem").write_bytes(
        ica_cert.public_bytes(serialization.Encoding.PEM))
    with_ica = MSPManager([MSP.from_dir(msp_dir, "Org1MSP")])
    assert with_ica.deserialize(serialized).roles == {"member", "peer"}


def test_duplicate_msp_ids_refused(net: NetworkCrypto) -> None:
    msp = MSP.from_dir(net.orgs["Org1"].msp_dir, "Org1MSP")
    with pytest.raises(MSPError, match="twice"):
        MSPManager([msp, msp])


def test_signatures_not_cached(manager: MSPManager, peer1: SigningIdentity) -> None:
    msg = b"same message"
    sig = peer1.sign(msg)
    manager.verify(peer1.serialize(), msg, sig)
    bad = bytearray(sig)
    bad[-1] ^= 1
    with pytest.raises(SignatureError):
        manager.verify(peer1.serialize(), msg, bytes(bad))
