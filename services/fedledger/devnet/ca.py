"""Dev CA: crypto material for an N-org network, in cryptogen's folder layout.

The files are what ``cryptogen generate`` writes for Fabric 2.5 (NodeOUs enabled,
ECDSA P-256 keys named ``priv_sk``), so the same folders work for the embedded dev
peer and for a real Fabric network started from them::

    peerOrganizations/org1.example.com/
        ca/{ca.org1.example.com-cert.pem, priv_sk}
        tlsca/{tlsca.org1.example.com-cert.pem, priv_sk}
        msp/{cacerts/, tlscacerts/, config.yaml}
        peers/peer0.org1.example.com/{msp/, tls/{ca.crt, server.crt, server.key}}
        users/{Admin,User1}@org1.example.com/{msp/, tls/{ca.crt, client.crt, client.key}}
    ordererOrganizations/example.com/
        ca/ tlsca/ msp/ orderers/orderer.example.com/{msp/, tls/} users/Admin@example.com/

The layout follows a cryptogen config (:class:`CryptoConfig`, the same YAML file
``cryptogen generate --config`` reads): ``write_crypto_config(config, root)`` or
``python -m fedledger.devnet.ca --config crypto-config.yaml --output DIR``;
``write_network_crypto`` writes :func:`default_crypto_config` for N orgs, which for
Org1..Org3 is ``deploy/fabric/crypto-config.yaml`` (tests/deploy compares the result with
cryptogen's rules file by file).

Writing is never destructive: an organisation whose folder already holds files keeps its
CAs and identities (like ``cryptogen extend``, only missing nodes and users are added),
so identities that a ledger already recorded stay valid across restarts (delete the
folder to get fresh material).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fedledger.fabric.errors import IdentityError
from fedledger.fabric.identity import load_certificate, load_private_key

ORDERER_ORG = "Orderer"
ORDERER_MSP_ID = "OrdererMSP"
NODE_OUS = ("client", "peer", "admin", "orderer")

# cryptogen back-dates certificates by five minutes against clock skew between hosts.
_BACKDATE = dt.timedelta(minutes=5)


# --------------------------------------------------------------------------- layout types

@dataclass(frozen=True)
class NodeCrypto:
    """A peer or orderer: its signing MSP and TLS folders."""

    host: str
    msp_dir: Path
    tls_dir: Path

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / "server.crt"

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / "server.key"

    @property
    def tls_ca_cert(self) -> Path:
        return self.tls_dir / "ca.crt"


@dataclass(frozen=True)
class UserCrypto:
    """An admin or user (``Admin@org1.example.com``): signing MSP and TLS client folders."""

    name: str
    msp_dir: Path
    tls_dir: Path

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / "client.crt"

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / "client.key"


@dataclass(frozen=True)
class OrgCrypto:
    """One organisation's material. ``nodes`` are peers (or orderers for the orderer org)."""

    name: str
    msp_id: str
    domain: str
    org_dir: Path
    nodes: tuple[NodeCrypto, ...]
    admin: UserCrypto
    users: tuple[UserCrypto, ...]

    @property
    def msp_dir(self) -> Path:
        """The organisation's verifying MSP (no keys), as channel configs reference it."""
        return self.org_dir / "msp"

    @property
    def ca_dir(self) -> Path:
        return self.org_dir / "ca"

    @property
    def tlsca_dir(self) -> Path:
        return self.org_dir / "tlsca"

    @property
    def tls_ca_cert(self) -> Path:
        return self.org_dir / "tlsca" / f"tlsca.{self.domain}-cert.pem"

    @property
    def peer(self) -> NodeCrypto:
        return self.nodes[0]

    @property
    def orderer(self) -> NodeCrypto:
        return self.nodes[0]

    @property
    def user(self) -> UserCrypto:
        return self.users[0]


@dataclass(frozen=True)
class NetworkCrypto:
    """Everything :func:`write_network_crypto` wrote (or found)."""

    root: Path
    domain: str
    orgs: dict[str, OrgCrypto] = field(default_factory=dict)   # by org name ("Org1")
    orderer_org: OrgCrypto | None = None

    def org(self, name_or_msp_id: str) -> OrgCrypto:
        """An organisation by name (``Org1``) or MSP id (``Org1MSP``)."""
        for org in self.all_orgs():
            if name_or_msp_id in (org.name, org.msp_id):
                return org
        raise KeyError(name_or_msp_id)

    def all_orgs(self) -> list[OrgCrypto]:
        """Peer organisations in order, then the orderer organisation."""
        orgs = list(self.orgs.values())
        if self.orderer_org is not None:
            orgs.append(self.orderer_org)
        return orgs

    def msp_dirs(self) -> dict[str, Path]:
        """MSP id -> verifying MSP folder, for every organisation (orderer included)."""
        return {org.msp_id: org.msp_dir for org in self.all_orgs()}


# --------------------------------------------------------------------------- the CA

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
    key = _new_key()
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
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise IdentityError(f"CA key {ca_dir / 'priv_sk'} does not match {certs[0]}",
                            step="devca")
    return CertAuthority(cert, key)


def issue_identity(ca_dir: Path, name: str, ou: str, out_msp_dir: Path, *,
                   not_before: dt.datetime | None = None,
                   not_after: dt.datetime | None = None,
                   valid_days: int = 3650) -> Path:
    """Issue a signing identity ``name`` (the CN) with NodeOU ``ou`` from the CA in
    ``ca_dir`` and write it as a local MSP folder (cacerts, keystore/priv_sk,
    signcerts/<name>-cert.pem, config.yaml). Returns ``out_msp_dir``.

    ``not_before``/``not_after`` override the validity window (tests make expired or
    not-yet-valid certificates with them).
    """
    if ou not in NODE_OUS:
        raise IdentityError(f"OU must be one of {', '.join(NODE_OUS)}, not {ou!r}", step="devca")
    ca = load_ca(ca_dir)
    key = _new_key()
    cert = ca.issue(common_name=name, key=key, ou=ou, not_before=not_before,
                    not_after=not_after, valid_days=valid_days)
    out_msp_dir = Path(out_msp_dir)
    tlsca = Path(ca_dir).parent / "tlsca"
    tlsca_pem = None
    tls_certs = sorted(tlsca.glob("*-cert.pem")) if tlsca.is_dir() else []
    if len(tls_certs) == 1:
        tlsca_pem = (tls_certs[0].name, tls_certs[0].read_bytes())
    _write_local_msp(out_msp_dir, _ca_file_name(ca), ca.cert_pem, tlsca_pem,
                     f"{name}-cert.pem", cert, key)
    return out_msp_dir


# --------------------------------------------------------------------------- cryptogen config

class _Spec(BaseModel):
    # cryptogen's YAML keys, spelled as cryptogen spells them.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NodeSpec(_Spec):
    """One ``Specs`` entry (or the ``CA`` entry) of a cryptogen org."""

    Hostname: str = ""
    CommonName: str = ""
    SANS: list[str] = Field(default_factory=list)


class CASpec(NodeSpec):
    """The ``CA`` entry. Only the names are supported: the subject fields (Country,
    Province, ...) keep cryptogen's defaults (US, California, San Francisco)."""


class NodeTemplate(_Spec):
    Count: int = Field(0, ge=0)
    Start: int = Field(0, ge=0)
    Hostname: str = ""
    SANS: list[str] = Field(default_factory=list)


class UsersSpec(_Spec):
    Count: int = Field(0, ge=0)


class OrgSpec(_Spec):
    """One entry of ``PeerOrgs`` / ``OrdererOrgs`` in a cryptogen config."""

    Name: str
    Domain: str
    EnableNodeOUs: bool = Field(False, validate_default=True)
    CA: CASpec = Field(default_factory=CASpec)
    Template: NodeTemplate = Field(default_factory=NodeTemplate)
    Specs: list[NodeSpec] = Field(default_factory=list)
    Users: UsersSpec = Field(default_factory=UsersSpec)

    @field_validator("EnableNodeOUs")
    @classmethod
    def _node_ous(cls, value: bool) -> bool:
        if not value:
            raise ValueError("EnableNodeOUs must be true: fedledger's MSPs tell roles by NodeOU")
        return value


class CryptoConfig(_Spec):
    """A cryptogen config (``cryptogen generate --config FILE``): the same file drives
    cryptogen and :func:`write_crypto_config`, which writes the same folder layout."""

    OrdererOrgs: list[OrgSpec] = Field(default_factory=list)
    PeerOrgs: list[OrgSpec] = Field(default_factory=list)

    @classmethod
    def from_file(cls, path: str | Path) -> CryptoConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(exclude_defaults=True), sort_keys=False)


@dataclass(frozen=True)
class RenderedNode:
    """A node or user after cryptogen's templates: its folder name is ``common_name``."""

    hostname: str
    common_name: str
    sans: tuple[str, ...]


def _render(template: str, data: dict[str, object]) -> str:
    """Go ``text/template`` field references (``{{.Hostname}}``, ``{{ .Domain }}``), the
    only template feature cryptogen configs use."""
    def field(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in data:
            raise IdentityError(f"unknown template field .{name} in {template!r}", step="devca")
        return str(data[name])
    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", field, template)


def render_nodes(spec: OrgSpec, prefix: str) -> list[RenderedNode]:
    """The nodes cryptogen makes for an org (``prefix`` "peer" or "orderer"): the
    explicit ``Specs``, then the template's ``Count`` hosts (default
    ``{{.Prefix}}{{.Index}}`` from ``Start``); common name default ``{{.Hostname}}.{{.Domain}}``; SANs the common
    name, the host name, then the spec's own SANs (templated)."""
    specs = list(spec.Specs)
    specs += [NodeSpec(Hostname=_render(spec.Template.Hostname or "{{.Prefix}}{{.Index}}",
                                        {"Prefix": prefix, "Index": i + spec.Template.Start,
                                         "Domain": spec.Domain}),
                       SANS=list(spec.Template.SANS))
              for i in range(spec.Template.Count)]
    return [_render_node(spec.Domain, node) for node in specs]


def _render_node(domain: str, node: NodeSpec) -> RenderedNode:
    data: dict[str, object] = {"Hostname": node.Hostname, "Domain": domain}
    cn = _render(node.CommonName or "{{.Hostname}}.{{.Domain}}", data)
    data["CommonName"] = cn
    return RenderedNode(node.Hostname, cn, (cn, node.Hostname, *(_render(s, data) for s in node.SANS)))


def ca_common_name(spec: OrgSpec) -> str:
    """``ca.<domain>`` unless the config's ``CA`` entry names it otherwise."""
    return _render_node(spec.Domain, NodeSpec(Hostname=spec.CA.Hostname or "ca",
                                              CommonName=spec.CA.CommonName)).common_name


def default_crypto_config(org_names: Sequence[str], domain: str = "example.com",
                          users: int = 1) -> CryptoConfig:
    """The config of an N-org dev network: what ``fedledger devnet`` and ``fedledger up``
    write, and (for Org1..Org3) exactly ``deploy/fabric/crypto-config.yaml``."""
    _check_names(org_names)
    local = ["localhost", "127.0.0.1"]
    return CryptoConfig(
        OrdererOrgs=[OrgSpec(Name=ORDERER_ORG, Domain=domain, EnableNodeOUs=True,
                             Specs=[NodeSpec(Hostname="orderer", SANS=local)])],
        PeerOrgs=[OrgSpec(Name=name, Domain=f"{name.lower()}.{domain}", EnableNodeOUs=True,
                          Template=NodeTemplate(Count=1, SANS=local), Users=UsersSpec(Count=users))
                  for name in org_names])


# --------------------------------------------------------------------------- network

def write_crypto_config(config: CryptoConfig, root: Path, valid_days: int = 3650) -> NetworkCrypto:
    """Write what ``cryptogen generate --config`` writes for ``config`` under ``root``
    (``peerOrganizations/``, ``ordererOrganizations/``). Like ``cryptogen extend``, an
    org folder that exists keeps its CAs and identities; only nodes and users it lacks
    are added. MSP ids are ``<Name>MSP`` (``OrdererMSP`` for the orderer org)."""
    root = Path(root)
    if len(config.OrdererOrgs) != 1:
        raise IdentityError("the dev CA writes exactly one orderer org", step="devca")
    _check_names([o.Name for o in config.PeerOrgs])
    orgs = {spec.Name: _write_org(root / "peerOrganizations" / spec.Domain, spec, "peer",
                                  valid_days)
            for spec in config.PeerOrgs}
    orderer_spec = config.OrdererOrgs[0]
    orderer = _write_org(root / "ordererOrganizations" / orderer_spec.Domain, orderer_spec,
                         "orderer", valid_days)
    return NetworkCrypto(root, orderer_spec.Domain, orgs, orderer)


def write_network_crypto(root: Path, org_names: Sequence[str], domain: str = "example.com",
                         users: int = 1, valid_days: int = 3650) -> NetworkCrypto:
    """Write (or find) crypto material for peer orgs ``org_names`` plus the orderer org:
    :func:`write_crypto_config` of :func:`default_crypto_config`.

    Each org ``OrgN`` gets MSP id ``OrgNMSP``, domain ``orgn.<domain>``, one peer
    ``peer0``, an ``Admin`` and ``users`` users ``User1..``. An org folder that is
    already non-empty keeps what it holds (see the module docstring).
    """
    return write_crypto_config(default_crypto_config(org_names, domain, users), root, valid_days)


def load_network_crypto(root: Path, org_names: Sequence[str],
                        domain: str = "example.com") -> NetworkCrypto:
    """Describe material written earlier; ``IdentityError`` if an org folder is missing."""
    root = Path(root)
    _check_names(org_names)
    orgs = {}
    for name in org_names:
        org_domain = f"{name.lower()}.{domain}"
        orgs[name] = _load_org(root / "peerOrganizations" / org_domain, name, f"{name}MSP",
                               org_domain, "peer")
    orderer = _load_org(root / "ordererOrganizations" / domain, ORDERER_ORG, ORDERER_MSP_ID,
                        domain, "orderer")
    return NetworkCrypto(root, domain, orgs, orderer)


def _check_names(org_names: Sequence[str]) -> None:
    if isinstance(org_names, str):
        raise TypeError("org_names must be a sequence of names, not a string")
    if len(set(n.lower() for n in org_names)) != len(org_names):
        raise IdentityError(f"duplicate org names in {list(org_names)}", step="devca")
    for name in org_names:
        if not name or not name.replace("-", "").isalnum():
            raise IdentityError(f"org name {name!r} must be alphanumeric", step="devca")
        if name.lower() == ORDERER_ORG.lower():
            raise IdentityError(f"org name {name!r} is reserved for the orderer org",
                                step="devca")


def _write_org(org_dir: Path, spec: OrgSpec, kind: str, valid_days: int) -> OrgCrypto:
    """One org as cryptogen's generatePeerOrg / generateOrdererOrg writes it, or (folder
    present) as its extend does: missing nodes and users only."""
    org_domain = spec.Domain
    ca_name = ca_common_name(spec)
    ca_file, tlsca_file = f"{ca_name}-cert.pem", f"tls{ca_name}-cert.pem"
    if _non_empty(org_dir):
        ca, tlsca = load_ca(org_dir / "ca"), load_ca(org_dir / "tlsca")
    else:
        ca = new_ca(ca_name, org_domain, valid_days)
        tlsca = new_ca(f"tls{ca_name}", org_domain, valid_days)
        _write(org_dir / "ca" / ca_file, ca.cert_pem)
        _write_key(org_dir / "ca" / "priv_sk", ca.key)
        _write(org_dir / "tlsca" / tlsca_file, tlsca.cert_pem)
        _write_key(org_dir / "tlsca" / "priv_sk", tlsca.key)
        # The org's verifying MSP: trust anchors and NodeOUs, no keys; cryptogen also
        # makes an admincerts/ folder, left empty with NodeOUs.
        (org_dir / "msp" / "admincerts").mkdir(parents=True, exist_ok=True)
        _write(org_dir / "msp" / "cacerts" / ca_file, ca.cert_pem)
        _write(org_dir / "msp" / "tlscacerts" / tlsca_file, tlsca.cert_pem)
        _write(org_dir / "msp" / "config.yaml", _node_ous_yaml(ca_file))
    tlsca_pem = (tlsca_file, tlsca.cert_pem)

    def identity(folder: Path, cn: str, ou: str, tls_role: str, sans: Sequence[str]) -> None:
        if folder.exists():
            return
        key = _new_key()
        _write_local_msp(folder / "msp", ca_file, ca.cert_pem, tlsca_pem, f"{cn}-cert.pem",
                         ca.issue(common_name=cn, key=key, ou=ou, valid_days=valid_days), key)
        _write_tls(folder / "tls", tlsca, cn, tls_role, valid_days, sans=sans)

    nodes_dir = org_dir / ("peers" if kind == "peer" else "orderers")
    for node in render_nodes(spec, kind):
        identity(nodes_dir / node.common_name, node.common_name, kind, "server", node.sans)
    users = [f"User{i}@{org_domain}" for i in range(1, spec.Users.Count + 1)] if kind == "peer" else []
    for uname in users:
        identity(org_dir / "users" / uname, uname, "client", "client", ())
    identity(org_dir / "users" / f"Admin@{org_domain}", f"Admin@{org_domain}", "admin",
             "client", ())
    msp_id = ORDERER_MSP_ID if kind == "orderer" else f"{spec.Name}MSP"
    return _load_org(org_dir, spec.Name, msp_id, org_domain, kind)


def _load_org(org_dir: Path, name: str, msp_id: str, org_domain: str,
              kind: str) -> OrgCrypto:
    if not (org_dir / "msp" / "cacerts").is_dir():
        raise IdentityError(f"no crypto material for {name} at {org_dir}", step="devca")
    nodes_dir = org_dir / ("peers" if kind == "peer" else "orderers")
    nodes = tuple(NodeCrypto(d.name, d / "msp", d / "tls")
                  for d in sorted(nodes_dir.iterdir() if nodes_dir.is_dir() else [])
                  if d.is_dir())
    if not nodes:
        raise IdentityError(f"no {kind} folders under {nodes_dir}", step="devca")
    admin_dir = org_dir / "users" / f"Admin@{org_domain}"
    if not admin_dir.is_dir():
        raise IdentityError(f"no admin folder {admin_dir}", step="devca")
    admin = UserCrypto(admin_dir.name, admin_dir / "msp", admin_dir / "tls")
    user_dirs = [d for d in (org_dir / "users").iterdir()
                 if d.is_dir() and d.name.startswith("User") and d.name.endswith(f"@{org_domain}")]
    # User10 sorts after User9, as the numbers say, not as the strings do.
    user_dirs.sort(key=lambda d: (len(d.name), d.name))
    users = tuple(UserCrypto(d.name, d / "msp", d / "tls") for d in user_dirs)
    return OrgCrypto(name, msp_id, org_domain, org_dir, nodes, admin, users)


def _write_local_msp(msp_dir: Path, ca_file: str, ca_pem: bytes,
                     tlsca: tuple[str, bytes] | None, cert_file: str,
                     cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (msp_dir / "admincerts").mkdir(parents=True, exist_ok=True)   # empty, as cryptogen's
    _write(msp_dir / "cacerts" / ca_file, ca_pem)
    if tlsca is not None:
        _write(msp_dir / "tlscacerts" / tlsca[0], tlsca[1])
    _write(msp_dir / "signcerts" / cert_file, cert.public_bytes(serialization.Encoding.PEM))
    _write_key(msp_dir / "keystore" / "priv_sk", key)
    _write(msp_dir / "config.yaml", _node_ous_yaml(ca_file))


def _write_tls(tls_dir: Path, tlsca: CertAuthority, host: str, role: str, valid_days: int,
               sans: Sequence[str]) -> None:
    key = _new_key()
    cert = tlsca.issue(common_name=host, key=key, tls=True, sans=sans, valid_days=valid_days)
    _write(tls_dir / "ca.crt", tlsca.cert_pem)
    _write(tls_dir / f"{role}.crt", cert.public_bytes(serialization.Encoding.PEM))
    _write_key(tls_dir / f"{role}.key", key)


def _node_ous_yaml(ca_file: str) -> bytes:
    """config.yaml exactly in cryptogen's shape (NodeOUs bound to the org's CA)."""
    def ident(ou: str) -> dict[str, str]:
        return {"Certificate": f"cacerts/{ca_file}", "OrganizationalUnitIdentifier": ou}
    doc = {"NodeOUs": {
        "Enable": True,
        "ClientOUIdentifier": ident("client"),
        "PeerOUIdentifier": ident("peer"),
        "AdminOUIdentifier": ident("admin"),
        "OrdererOUIdentifier": ident("orderer"),
    }}
    return yaml.safe_dump(doc, sort_keys=False).encode()


# --------------------------------------------------------------------------- helpers

def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


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


def _ca_file_name(ca: CertAuthority) -> str:
    return f"{_name_attr(ca.cert.subject, NameOID.COMMON_NAME)}-cert.pem"


def _non_empty(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    # Keys readable by the owner only, as cryptogen leaves them.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


__all__ = [
    "CertAuthority", "CryptoConfig", "NetworkCrypto", "NodeCrypto", "ORDERER_MSP_ID",
    "OrgCrypto", "OrgSpec", "UserCrypto", "default_crypto_config", "issue_identity",
    "load_ca", "load_network_crypto", "new_ca", "render_nodes", "write_crypto_config",
    "write_network_crypto",
]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fedledger.devnet.ca --config crypto-config.yaml --output DIR``: what
    ``cryptogen generate`` (or, on an existing DIR, ``cryptogen extend``) writes."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fedledger.devnet.ca",
                                     description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path, help="cryptogen config (YAML)")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    args = parser.parse_args(argv)
    crypto = write_crypto_config(CryptoConfig.from_file(args.config), args.output)
    for org in crypto.all_orgs():
        print(f"{org.msp_id}: {org.org_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
