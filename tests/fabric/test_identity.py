"""Identities: serialization, low-S signing, loading MSP folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.msp import identities_pb2

from fedledger.devnet.ca import NetworkCrypto, write_network_crypto
from fedledger.fabric.errors import IdentityError
from fedledger.fabric.identity import (
    P256_ORDER,
    Identity,
    Signer,
    SigningIdentity,
    is_low_s,
    load_signing_identity,
    msp_id_of,
    parse_serialized_identity,
    to_low_s,
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkCrypto:
    return write_network_crypto(tmp_path_factory.mktemp("ident") / "crypto", ["Org1", "Org2"])


@pytest.fixture(scope="module")
def peer1(net: NetworkCrypto) -> SigningIdentity:
    return load_signing_identity(net.orgs["Org1"].peer.msp_dir, "Org1MSP")


def test_serialize_is_serialized_identity(peer1: SigningIdentity) -> None:
    raw = peer1.identity.serialize()
    sid = identities_pb2.SerializedIdentity.FromString(raw)
    assert sid.mspid == "Org1MSP"
    assert sid.id_bytes == peer1.identity.cert_pem
    assert sid.id_bytes.startswith(b"-----BEGIN CERTIFICATE-----")
    assert peer1.serialize() == raw
    assert parse_serialized_identity(raw) == peer1.identity
    assert msp_id_of(raw) == "Org1MSP"


@pytest.mark.parametrize("garbage", [
    b"", b"\xff\xff\xff", b"\x0a\x05Org1M",
    identities_pb2.SerializedIdentity(mspid="X").SerializeToString(),
])
def test_parse_garbage_raises(garbage: bytes) -> None:
    with pytest.raises(IdentityError):
        parse_serialized_identity(garbage)
    with pytest.raises(IdentityError):
        msp_id_of(garbage)


def test_signatures_are_low_s_and_verify(peer1: SigningIdentity) -> None:
    public_key = peer1.signer.public_key
    for i in range(200):
        msg = f"message {i}".encode()
        sig = peer1.sign(msg)
        _, s = decode_dss_signature(sig)
        assert s <= P256_ORDER // 2
        assert is_low_s(sig)
        public_key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public_key.verify(peer1.sign(b"a"), b"b", ec.ECDSA(hashes.SHA256()))


def test_to_low_s_folds_high_s(peer1: SigningIdentity) -> None:
    sig = peer1.sign(b"payload")
    r, s = decode_dss_signature(sig)
    high = encode_dss_signature(r, P256_ORDER - s)
    assert not is_low_s(high)
    # The high-S twin is mathematically valid too; that malleability is why Fabric folds it.
    peer1.signer.public_key.verify(high, b"payload", ec.ECDSA(hashes.SHA256()))
    assert to_low_s(high) == sig
    assert to_low_s(sig) == sig


def test_signer_rejects_unsupported_curve() -> None:
    with pytest.raises(IdentityError, match="curve"):
        Signer(ec.generate_private_key(ec.SECP521R1()))


def test_load_signing_identity_fields(net: NetworkCrypto) -> None:
    si = load_signing_identity(net.orgs["Org2"].admin.msp_dir, "Org2MSP")
    assert si.identity.msp_id == "Org2MSP"
    cert_file = net.orgs["Org2"].admin.msp_dir / "signcerts" / "Admin@org2.example.com-cert.pem"
    assert si.identity.cert_pem == cert_file.read_bytes()
    assert isinstance(si.identity, Identity)


def _copy_msp(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_key_file_name_is_free(net: NetworkCrypto, tmp_path: Path) -> None:
    msp = _copy_msp(net.orgs["Org1"].user.msp_dir, tmp_path / "msp")
    (msp / "keystore" / "priv_sk").rename(msp / "keystore" / "0a1b2c_sk")
    assert load_signing_identity(msp, "Org1MSP").msp_id == "Org1MSP"


def test_key_cert_mismatch(net: NetworkCrypto, tmp_path: Path) -> None:
    msp = _copy_msp(net.orgs["Org1"].user.msp_dir, tmp_path / "msp")
    shutil.copy(net.orgs["Org1"].admin.msp_dir / "keystore" / "priv_sk",
                msp / "keystore" / "priv_sk")
    with pytest.raises(IdentityError, match="does not match"):
        load_signing_identity(msp, "Org1MSP")


def test_missing_files_named(net: NetworkCrypto, tmp_path: Path) -> None:
    msp = _copy_msp(net.orgs["Org1"].user.msp_dir, tmp_path / "msp")
    key = msp / "keystore" / "priv_sk"
    key.unlink()
    with pytest.raises(IdentityError, match="keystore"):
        load_signing_identity(msp, "Org1MSP")
    shutil.rmtree(msp / "signcerts")
    with pytest.raises(IdentityError, match="signcerts"):
        load_signing_identity(msp, "Org1MSP")
    with pytest.raises(IdentityError, match="does not exist"):
        load_signing_identity(tmp_path / "nowhere", "Org1MSP")


def test_bad_files_named(net: NetworkCrypto, tmp_path: Path) -> None:
    msp = _copy_msp(net.orgs["Org1"].user.msp_dir, tmp_path / "msp")
    (msp / "keystore" / "priv_sk").write_text("not a key")
    with pytest.raises(IdentityError, match="priv_sk"):
        load_signing_identity(msp, "Org1MSP")
    msp2 = _copy_msp(net.orgs["Org1"].user.msp_dir, tmp_path / "msp2")
    cert = next((msp2 / "signcerts").glob("*.pem"))
    cert.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(IdentityError, match=cert.name):
        load_signing_identity(msp2, "Org1MSP")


def test_two_keys_refused(net: NetworkCrypto, tmp_path: Path) -> None:
    msp = _copy_msp(net.orgs["Org1"].user.msp_dir, tmp_path / "msp")
    shutil.copy(msp / "keystore" / "priv_sk", msp / "keystore" / "other_sk")
    with pytest.raises(IdentityError, match="more than one"):
        load_signing_identity(msp, "Org1MSP")
