"""Identities and signing: what a Fabric client or peer puts on the wire.

An :class:`Identity` is an MSP id plus a PEM certificate (``msp.SerializedIdentity``).
A :class:`Signer` makes ECDSA P-256 / SHA-256 signatures, DER encoded and low-S
normalised: Fabric peers reject a signature whose ``s`` is in the upper half of the
curve order (it stops anyone from flipping ``s`` to forge a second valid signature
of the same message, which would change a transaction's bytes but not its meaning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.msp import identities_pb2
from google.protobuf.message import DecodeError

from .errors import IdentityError

# Group orders of the curves Fabric's MSP accepts; low-S is defined against them.
CURVE_ORDERS: dict[str, int] = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973", 16),
}
P256_ORDER = CURVE_ORDERS["secp256r1"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class Identity:
    """An identity as it travels in Fabric messages: MSP id and PEM certificate."""

    msp_id: str
    cert_pem: bytes

    def serialize(self) -> bytes:
        """Bytes of ``msp.SerializedIdentity(mspid, id_bytes=cert_pem)``."""
        return identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=self.cert_pem).SerializeToString()


def to_low_s(signature: bytes, order: int = P256_ORDER) -> bytes:
    """Return ``signature`` (DER) with ``s`` folded into the lower half of ``order``."""
    r, s = decode_dss_signature(signature)
    if s > order // 2:
        return encode_dss_signature(r, order - s)
    return signature


def is_low_s(signature: bytes, order: int = P256_ORDER) -> bool:
    """Whether a DER ECDSA signature has ``s <= order/2``; ``ValueError`` if not DER."""
    _, s = decode_dss_signature(signature)
    return s <= order // 2


class Signer:
    """Signs with one EC private key: ECDSA over SHA-256, DER, low-S."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise IdentityError("signing key is not an EC private key", step="identity")
        order = CURVE_ORDERS.get(private_key.curve.name)
        if order is None:
            raise IdentityError(f"unsupported curve {private_key.curve.name}", step="identity")
        self._key = private_key
        self._order = order

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        """ECDSA signature of ``message`` (hashed with SHA-256 here), DER, low-S."""
        return to_low_s(self._key.sign(message, _ECDSA_SHA256), self._order)


@dataclass(frozen=True)
class SigningIdentity:
    """An identity together with the key that signs for it."""

    identity: Identity
    signer: Signer

    @property
    def msp_id(self) -> str:
        return self.identity.msp_id

    def serialize(self) -> bytes:
        """The serialized identity (``SignatureHeader.creator``, ``Endorsement.endorser``)."""
        return self.identity.serialize()

    def sign(self, message: bytes) -> bytes:
        return self.signer.sign(message)


def _single_file(folder: Path, pattern: str, what: str) -> Path:
    if not folder.is_dir():
        raise IdentityError(f"{what} folder {folder} does not exist", step="identity")
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not files:
        raise IdentityError(f"no {what} file ({pattern}) in {folder}", step="identity")
    if len(files) > 1:
        # Picking one silently could pair a key with the wrong certificate.
        names = ", ".join(p.name for p in files)
        raise IdentityError(f"more than one {what} file in {folder}: {names}", step="identity")
    return files[0]


def load_certificate(path: Path) -> tuple[bytes, x509.Certificate]:
    """Read a PEM certificate; ``IdentityError`` naming the file if it is not one."""
    try:
        pem = path.read_bytes()
        return pem, x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as exc:
        raise IdentityError(f"cannot read certificate {path}: {exc}", step="identity") from exc


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read an unencrypted PEM EC private key; ``IdentityError`` naming the file."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise IdentityError(f"cannot read private key {path}: {exc}", step="identity") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IdentityError(f"private key {path} is not an EC key", step="identity")
    return key


def load_signing_identity(msp_dir: Path, msp_id: str) -> SigningIdentity:
    """Load ``signcerts/*.pem`` and the single key in ``keystore/`` of an MSP folder.

    cryptogen names the key ``priv_sk``, Fabric CA clients name it ``<ski>_sk``; any one
    file is accepted. The key must belong to the certificate.
    """
    msp_dir = Path(msp_dir)
    cert_path = _single_file(msp_dir / "signcerts", "*.pem", "signing certificate")
    key_path = _single_file(msp_dir / "keystore", "*", "private key")
    cert_pem, cert = load_certificate(cert_path)
    key = load_private_key(key_path)
    cert_key = cert.public_key()
    if not isinstance(cert_key, ec.EllipticCurvePublicKey) or (
            cert_key.public_numbers() != key.public_key().public_numbers()):
        raise IdentityError(
            f"private key {key_path} does not match certificate {cert_path}", step="identity")
    return SigningIdentity(Identity(msp_id, cert_pem), Signer(key))


def parse_serialized_identity(serialized: bytes) -> Identity:
    """Decode ``msp.SerializedIdentity`` bytes; ``IdentityError`` on garbage."""
    try:
        sid = identities_pb2.SerializedIdentity.FromString(serialized)
    except (DecodeError, TypeError) as exc:
        raise IdentityError(f"not a serialized identity: {exc}", step="identity") from exc
    if not sid.mspid or not sid.id_bytes:
        raise IdentityError("serialized identity lacks an MSP id or a certificate",
                            step="identity")
    return Identity(sid.mspid, sid.id_bytes)


def msp_id_of(serialized: bytes) -> str:
    """MSP id named by serialized identity bytes (no certificate check)."""
    return parse_serialized_identity(serialized).msp_id


__all__ = [
    "CURVE_ORDERS", "Identity", "P256_ORDER", "Signer", "SigningIdentity", "is_low_s",
    "load_certificate", "load_private_key", "load_signing_identity", "msp_id_of",
    "parse_serialized_identity", "to_low_s",
]
