"""MSP verifier: which certificates an organisation vouches for, and with which role.

An :class:`MSP` holds one organisation's trust anchors (root and intermediate CAs)
and its NodeOUs configuration. :class:`MSPManager` turns ``msp.SerializedIdentity``
bytes into a :class:`VerifiedIdentity` -- known MSP, certificate chaining to one of
that MSP's roots, inside its validity period, with a NodeOU role -- and checks
signatures against it, the way a Fabric peer's MSP does.

Chain checks are the costly part and are cached by the serialized bytes; a cached
identity is still re-checked for expiry on every use. Signature checks are never cached.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from .errors import IdentityError, MSPError, SignatureError
from .identity import CURVE_ORDERS, parse_serialized_identity

ROLES = frozenset({"member", "client", "peer", "admin", "orderer"})
NODE_OU_ROLES = ("client", "peer", "admin", "orderer")
_NODE_OU_KEYS = {
    "client": "ClientOUIdentifier", "peer": "PeerOUIdentifier",
    "admin": "AdminOUIdentifier", "orderer": "OrdererOUIdentifier",
}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# A chain longer than this is a loop or an attack, not a real CA hierarchy.
_MAX_CHAIN = 8
_CACHE_LIMIT = 65536


@dataclass(frozen=True)
class VerifiedIdentity:
    """An identity whose certificate an MSP accepted, with the roles it holds."""

    msp_id: str
    cert: x509.Certificate
    serialized: bytes
    roles: frozenset[str]    # subset of ROLES; always contains "member"

    @cached_property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        # Parsed once per identity: verify() runs on the hot path of every transaction.
        return self.cert.public_key()  # type: ignore[return-value]

    @property
    def common_name(self) -> str:
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class OUIdentifier:
    """An OU value, optionally bound to the CA certificate that must issue it."""

    ou: str
    certificate: x509.Certificate | None = None


@dataclass(frozen=True)
class NodeOUs:
    """The ``NodeOUs`` section of an MSP's config.yaml."""

    enabled: bool
    identifiers: Mapping[str, OUIdentifier] = field(default_factory=dict)   # role -> OU


class MSP:
    """One organisation's trust anchors and role rules."""

    def __init__(self, msp_id: str, root_certs: Iterable[x509.Certificate], *,
                 intermediate_certs: Iterable[x509.Certificate] = (),
                 tls_root_certs: Iterable[x509.Certificate] = (),
                 tls_intermediate_certs: Iterable[x509.Certificate] = (),
                 admin_certs: Iterable[x509.Certificate] = (),
                 node_ous: NodeOUs | None = None,
                 ou_identifiers: Iterable[OUIdentifier] = ()) -> None:
        self.msp_id = msp_id
        self.root_certs = tuple(root_certs)
        if not self.root_certs:
            raise MSPError(f"MSP {msp_id} has no root CA certificate", step="msp")
        self.intermediate_certs = tuple(intermediate_certs)
        self.tls_root_certs = tuple(tls_root_certs)
        self.tls_intermediate_certs = tuple(tls_intermediate_certs)
        self.admin_certs = tuple(admin_certs)
        self.node_ous = node_ous or NodeOUs(enabled=False)
        self.ou_identifiers = tuple(ou_identifiers)
        self._roots = set(self.root_certs)
        # Issuer lookup by subject: chain building is a dict hit per level, not a scan.
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for ca in (*self.intermediate_certs, *self.root_certs):
            self._by_subject.setdefault(ca.subject, []).append(ca)

    @classmethod
    def from_dir(cls, msp_dir: Path, msp_id: str) -> MSP:
        """Read an MSP folder: ``cacerts/`` (required), ``intermediatecerts/``,
        ``tlscacerts/``, ``tlsintermediatecerts/``, ``admincerts/`` and ``config.yaml``."""
        msp_dir = Path(msp_dir)
        if not msp_dir.is_dir():
            raise MSPError(f"MSP folder {msp_dir} for {msp_id} does not exist", step="msp")
        roots = _read_certs(msp_dir / "cacerts", msp_id)
        if not roots:
            raise MSPError(f"no CA certificate in {msp_dir / 'cacerts'} for {msp_id}",
                           step="msp")
        node_ous, ou_ids = _read_config(msp_dir, msp_id)
        return cls(
            msp_id, roots,
            intermediate_certs=_read_certs(msp_dir / "intermediatecerts", msp_id),
            tls_root_certs=_read_certs(msp_dir / "tlscacerts", msp_id),
            tls_intermediate_certs=_read_certs(msp_dir / "tlsintermediatecerts", msp_id),
            admin_certs=_read_certs(msp_dir / "admincerts", msp_id),
            node_ous=node_ous, ou_identifiers=ou_ids)

    def __repr__(self) -> str:
        return f"MSP({self.msp_id!r}, roots={len(self.root_certs)}, " \
               f"node_ous={self.node_ous.enabled})"

    def validate(self, cert: x509.Certificate,
                 now: dt.datetime | None = None) -> tuple[frozenset[str], dt.datetime]:
        """Check ``cert`` against this MSP; return its roles and when the chain expires."""
        now = now or dt.datetime.now(dt.UTC)
        _check_key(cert, self.msp_id)
        if _is_ca(cert):
            raise MSPError(f"a CA certificate cannot be an identity of {self.msp_id}",
                           step="msp")
        chain = self._chain(cert)
        expires = min(c.not_valid_after_utc for c in (cert, *chain))
        for c in (cert, *chain):
            what = "certificate" if c is cert else "CA certificate"
            if now > c.not_valid_after_utc:
                raise MSPError(f"{what} for {self.msp_id} expired at "
                               f"{c.not_valid_after_utc.isoformat()} ({_cn(c)})", step="msp")
            if now < c.not_valid_before_utc:
                raise MSPError(f"{what} for {self.msp_id} is not valid before "
                               f"{c.not_valid_before_utc.isoformat()} ({_cn(c)})", step="msp")
        return self._roles(cert, chain), expires

    def _chain(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """Issuers from ``cert`` up to a root of this MSP (the root last)."""
        chain: list[x509.Certificate] = []
        current = cert
        for _ in range(_MAX_CHAIN):
            issuer = None
            for candidate in self._by_subject.get(current.issuer, ()):
                try:
                    current.verify_directly_issued_by(candidate)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                issuer = candidate
                break
            if issuer is None:
                raise MSPError(f"certificate for {self.msp_id} is not issued by a trusted CA "
                               f"of {self.msp_id} ({_cn(cert)})", step="msp")
            chain.append(issuer)
            if issuer in self._roots:
                return chain
            current = issuer
        raise MSPError(f"certificate chain for {self.msp_id} is too long ({_cn(cert)})",
                       step="msp")

    def _roles(self, cert: x509.Certificate, chain: list[x509.Certificate]) -> frozenset[str]:
        ous = {str(a.value) for a in
               cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
        if self.ou_identifiers and not any(
                i.ou in ous and (i.certificate is None or i.certificate in chain)
                for i in self.ou_identifiers):
            raise MSPError(f"certificate for {self.msp_id} carries none of the MSP's "
                           f"organizational units ({_cn(cert)})", step="msp")
        roles = {"member"}
        is_admin_cert = cert in self.admin_certs
        if is_admin_cert:
            roles.add("admin")
        if self.node_ous.enabled:
            found = [role for role, ident in self.node_ous.identifiers.items()
                     if ident.ou in ous
                     and (ident.certificate is None or ident.certificate in chain)]
            if len(found) > 1:
                raise MSPError(f"certificate for {self.msp_id} has several node roles "
                               f"{sorted(found)} ({_cn(cert)})", step="msp")
            if not found and not is_admin_cert:
                raise MSPError(f"certificate for {self.msp_id} has no node role: its OU must "
                               f"be one of {', '.join(sorted(self.node_ous.identifiers))} "
                               f"({_cn(cert)})", step="msp")
            roles.update(found)
        return frozenset(roles)


class MSPManager:
    """The MSPs of a channel: deserializes identities and verifies their signatures."""

    def __init__(self, msps: Iterable[MSP]) -> None:
        self._msps: dict[str, MSP] = {}
        for msp in msps:
            if msp.msp_id in self._msps:
                raise MSPError(f"MSP id {msp.msp_id!r} given twice", step="msp")
            self._msps[msp.msp_id] = msp
        # serialized bytes -> (identity, expiry as a unix time)
        self._cache: dict[bytes, tuple[VerifiedIdentity, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_dirs(cls, msp_dirs: Mapping[str, Path]) -> MSPManager:
        """Build from ``msp_id -> MSP folder`` (e.g. ``NetworkCrypto.msp_dirs()``)."""
        return cls(MSP.from_dir(path, msp_id) for msp_id, path in msp_dirs.items())

    @property
    def msp_ids(self) -> list[str]:
        return list(self._msps)

    def msp(self, msp_id: str) -> MSP:
        try:
            return self._msps[msp_id]
        except KeyError:
            raise MSPError(f"unknown MSP id {msp_id!r}", step="msp") from None

    def __contains__(self, msp_id: object) -> bool:
        return msp_id in self._msps

    def deserialize(self, serialized: bytes) -> VerifiedIdentity:
        """Validate serialized identity bytes; ``MSPError`` says why they are refused."""
        hit = self._cache.get(serialized)
        if hit is not None:
            if time.time() <= hit[1]:
                return hit[0]
            with self._lock:
                self._cache.pop(serialized, None)
        try:
            ident = parse_serialized_identity(serialized)
        except IdentityError as exc:
            raise MSPError(exc.message, step="msp") from exc
        msp = self.msp(ident.msp_id)
        try:
            cert = x509.load_pem_x509_certificate(ident.cert_pem)
        except ValueError as exc:
            raise MSPError(f"identity for {ident.msp_id} does not hold a PEM certificate: "
                           f"{exc}", step="msp") from exc
        roles, expires = msp.validate(cert)
        verified = VerifiedIdentity(ident.msp_id, cert, bytes(serialized), roles)
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                # Crude but bounded: a flood of fresh identities cannot grow memory forever.
                self._cache.clear()
            self._cache[verified.serialized] = (verified, expires.timestamp())
        return verified

    def verify(self, serialized: bytes, message: bytes, signature: bytes) -> VerifiedIdentity:
        """Check that ``signature`` over ``message`` was made by the identity
        ``serialized``; return it. ``SignatureError`` if not (high-S included),
        ``MSPError`` if the identity itself is refused."""
        verified = self.deserialize(serialized)
        key = verified.public_key
        try:
            _, s = decode_dss_signature(signature)
        except ValueError:
            raise SignatureError(f"signature by {verified.msp_id} is not a DER ECDSA "
                                 f"signature", step="msp") from None
        # Fabric refuses high-S: otherwise (r, n-s) is a second valid signature of the same
        # message and a transaction's bytes could be changed without its signer.
        if s > CURVE_ORDERS[key.curve.name] >> 1:
            raise SignatureError(f"signature by {verified.msp_id} is not low-S normalised",
                                 step="msp")
        try:
            key.verify(signature, message, _ECDSA_SHA256)
        except InvalidSignature:
            raise SignatureError(f"signature does not verify against the identity of "
                                 f"{verified.msp_id} ({verified.common_name})",
                                 step="msp") from None
        return verified


class SignatureMemo:
    """Signatures this process has already verified (or made itself), so a dev peer
    that checks the same envelope at submit and again at commit pays once.

    Keyed by sha256(identity || message || signature): a hit means these exact bytes
    verified before. The identity is still deserialized on every use, so an identity
    that expired or was never valid is refused whatever the memo says.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(serialized: bytes, message: bytes, signature: bytes) -> bytes:
        digest = hashlib.sha256(serialized)
        digest.update(message)
        digest.update(signature)
        return digest.digest()

    def remember(self, serialized: bytes, message: bytes, signature: bytes) -> None:
        self._add(self._key(serialized, message, signature))

    def _add(self, key: bytes) -> None:
        with self._lock:
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)

    def verify(self, msps: MSPManager, serialized: bytes, message: bytes,
               signature: bytes) -> VerifiedIdentity:
        """Like :meth:`MSPManager.verify`, skipping the ECDSA check for a remembered
        signature; remembers the ones that verify."""
        key = self._key(serialized, message, signature)
        with self._lock:
            known = key in self._seen
        if known:
            return msps.deserialize(serialized)
        identity = msps.verify(serialized, message, signature)
        self._add(key)
        return identity


# --------------------------------------------------------------------------- helpers

def _read_certs(folder: Path, msp_id: str) -> list[x509.Certificate]:
    if not folder.is_dir():
        return []
    certs: list[x509.Certificate] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        certs.extend(_read_certs_file(path, msp_id))
    return certs


def _read_config(msp_dir: Path, msp_id: str) -> tuple[NodeOUs, list[OUIdentifier]]:
    path = msp_dir / "config.yaml"
    if not path.is_file():
        return NodeOUs(enabled=False), []
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MSPError(f"cannot read {path} of MSP {msp_id}: {exc}", step="msp") from exc
    if not isinstance(doc, dict):
        raise MSPError(f"{path} of MSP {msp_id} is not a mapping", step="msp")

    def ou_identifier(entry: object, where: str) -> OUIdentifier:
        if not isinstance(entry, dict) or not entry.get("OrganizationalUnitIdentifier"):
            raise MSPError(f"{where} in {path} lacks OrganizationalUnitIdentifier",
                           step="msp")
        cert = None
        if entry.get("Certificate"):
            cert_path = msp_dir / str(entry["Certificate"])
            cert = _read_certs_file(cert_path, msp_id)[0]
        return OUIdentifier(str(entry["OrganizationalUnitIdentifier"]), cert)

    ou_ids = [ou_identifier(e, "OrganizationalUnitIdentifiers")
              for e in doc.get("OrganizationalUnitIdentifiers") or []]
    section = doc.get("NodeOUs") or {}
    if not isinstance(section, dict) or not section.get("Enable"):
        return NodeOUs(enabled=False), ou_ids
    idents = {role: ou_identifier(section[key], key)
              for role, key in _NODE_OU_KEYS.items() if section.get(key)}
    return NodeOUs(enabled=True, identifiers=idents), ou_ids


def _read_certs_file(path: Path, msp_id: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise MSPError(f"bad certificate file {path} in MSP {msp_id}: {exc}",
                       step="msp") from exc
    return certs


def _check_key(cert: x509.Certificate, msp_id: str) -> None:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in CURVE_ORDERS:
        raise MSPError(f"certificate for {msp_id} does not hold a P-256/P-384 ECDSA key "
                       f"({_cn(cert)})", step="msp")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return cert.subject.rfc4514_string()
    value = attrs[0].value  # str for a CN; bytes only for bit-string attributes
    return f"CN={value.decode() if isinstance(value, bytes) else value}"


__all__ = ["MSP", "MSPManager", "NODE_OU_ROLES", "NodeOUs", "OUIdentifier", "ROLES",
           "VerifiedIdentity"]
