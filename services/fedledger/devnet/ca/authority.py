"""Dev CA keys and certificates, made as cryptogen makes them: ECDSA P-256 keys, CA
and leaf certificates with cryptogen's subjects, extensions and SKI."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedledger.fabric.errors import IdentityError
from fedledger.fabric.identity import load_certificate, load_private_key

NODE_OUS = ("client", "peer", "admin", "orderer")

# cryptogen back-dates certificates by five minutes against clock skew between hosts.
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CertAuthority:
    """A CA key and self-signed certificate (``ca/`` or ``tlsca/`` of an org)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, *, common_name: str, key: ec.EllipticCurvePrivateKey,
              ou: str | None = None, tls: bool = False, sans: Sequence[str] = (),
              not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None,
              valid_days: int = 3650) -> x509.Certificate:
        """A leaf certificate as cryptogen makes it (signing or TLS)."""
        now = dt.datetime.now(dt.UTC)
        not_before = not_before or now - _BACKDATE
        not_after = not_after or now + dt.timedelta(days=valid_days)
        attrs = _base_name()
        if ou:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(_serial())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(_ski(key.public_key())), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(
                key_identifier=_ski(self.key.public_key()), authority_cert_issuer=None,
                authority_cert_serial_number=None), critical=False)
        )
        if tls:
            builder = builder.add_extension(
                _key_usage(digital_signature=True, key_encipherment=True), critical=True
            ).add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
        else:
            builder = builder.add_extension(_key_usage(digital_signature=True), critical=True)
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def new_ca(common_name: str, org_domain: str, valid_days: int = 3650) -> CertAuthority:
    """A self-signed CA for ``org_domain`` (subject as cryptogen writes it)."""
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    name = x509.Name(_base_name() + [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_domain),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    ski = _ski(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(_key_usage(digital_signature=True, key_encipherment=True,
                                  key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertAuthority(cert, key)


def load_ca(ca_dir: Path) -> CertAuthority:
    """Load ``<ca_dir>/*-cert.pem`` and ``<ca_dir>/priv_sk``."""
    ca_dir = Path(ca_dir)
    certs = sorted(ca_dir.glob("*-cert.pem"))
    if len(certs) != 1:
        raise IdentityError(f"expected one *-cert.pem in CA folder {ca_dir}, found {len(certs)}",
                            step="devca")
    _, cert = load_certificate(certs[0])
    key = load_private_key(ca_dir / "priv_sk")
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or \
            public_key.public_numbers() != key.public_key().public_numbers():
        raise IdentityError(f"CA key {ca_dir / 'priv_sk'} does not match {certs[0]}",
                            step="devca")
    return CertAuthority(cert, key)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ca_file_name(ca: CertAuthority) -> str:
    """``<CA common name>-cert.pem``: the CA certificate's file name in an MSP folder."""
    return f"{_name_attr(ca.cert.subject, NameOID.COMMON_NAME)}-cert.pem"


def _serial() -> int:
    # 128 random bits like cryptogen; the top bit cleared keeps the DER integer positive.
    return secrets.randbits(127) | 1


def _ski(public_key: ec.EllipticCurvePublicKey) -> bytes:
    # cryptogen's SKI: sha256 of the uncompressed point (not RFC 5280's sha1 method).
    return hashlib.sha256(public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)).digest()


def _base_name() -> list[x509.NameAttribute]:
    return [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
    ]


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False,
               key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False,
        key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
        key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
        decipher_only=False)


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else ""


__all__ = ["NODE_OUS", "CertAuthority", "ca_file_name", "load_ca", "new_ca", "new_key"]
