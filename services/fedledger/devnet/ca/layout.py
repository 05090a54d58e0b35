"""The MSP folder layout cryptogen writes, written and read back: each org's CAs,
verifying MSP, nodes' and users' local MSPs and TLS folders (see :mod:`fedledger.devnet.ca`)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedledger.devnet.ca.authority import NODE_OUS, CertAuthority, ca_file_name, load_ca, new_ca, new_key
from fedledger.devnet.ca.crypto_config import (
    ORDERER_MSP_ID,
    ORDERER_ORG,
    CryptoConfig,
    OrgSpec,
    ca_common_name,
    check_org_names,
    default_crypto_config,
    render_nodes,
)
from fedledger.fabric.errors import IdentityError


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


def write_crypto_config(config: CryptoConfig, root: Path, valid_days: int = 3650) -> NetworkCrypto:
    """Write what ``cryptogen generate --config`` writes for ``config`` under ``root``
    (``peerOrganizations/``, ``ordererOrganizations/``). Like ``cryptogen extend``, an
    org folder that exists keeps its CAs and identities; only nodes and users it lacks
    are added. MSP ids are ``<Name>MSP`` (``OrdererMSP`` for the orderer org)."""
    root = Path(root)
    if len(config.OrdererOrgs) != 1:
        raise IdentityError("the dev CA writes exactly one orderer org", step="devca")
    check_org_names([o.Name for o in config.PeerOrgs])
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
    check_org_names(org_names)
    orgs = {}
    for name in org_names:
        org_domain = f"{name.lower()}.{domain}"
        orgs[name] = _load_org(root / "peerOrganizations" / org_domain, name, f"{name}MSP",
                               org_domain, "peer")
    orderer = _load_org(root / "ordererOrganizations" / domain, ORDERER_ORG, ORDERER_MSP_ID,
                        domain, "orderer")
    return NetworkCrypto(root, domain, orgs, orderer)


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
    key = new_key()
    cert = ca.issue(common_name=name, key=key, ou=ou, not_before=not_before,
                    not_after=not_after, valid_days=valid_days)
    out_msp_dir = Path(out_msp_dir)
    tlsca = Path(ca_dir).parent / "tlsca"
    tlsca_pem = None
    tls_certs = sorted(tlsca.glob("*-cert.pem")) if tlsca.is_dir() else []
    if len(tls_certs) == 1:
        tlsca_pem = (tls_certs[0].name, tls_certs[0].read_bytes())
    _write_local_msp(out_msp_dir, ca_file_name(ca), ca.cert_pem, tlsca_pem,
                     f"{name}-cert.pem", cert, key)
    return out_msp_dir


def write_service_tls(org_dir: Path, name: str, hosts: Sequence[str] = (), *,
                      valid_days: int = 3650) -> Path:
    """The HTTPS certificate of one of the org's REST services (its org node, the
    coordinator, the bridge), issued by the org's TLS CA (``<org_dir>/tlsca``), in
    ``<org_dir>/services/<name>/tls/{server.crt, server.key, ca.crt}``: what
    ``deploy/scripts/crypto.sh`` issues with openssl for docker-compose. Its names:
    ``name`` (the compose host name), ``hosts``, localhost and 127.0.0.1. Like the rest
    of the layout it is never replaced once written (delete the folder for a new one).
    Returns the tls folder."""
    tls_dir = Path(org_dir) / "services" / name / "tls"
    if (tls_dir / "server.crt").is_file() and (tls_dir / "server.key").is_file():
        return tls_dir
    tlsca = load_ca(Path(org_dir) / "tlsca")
    sans = list(dict.fromkeys([name, *hosts, "localhost", "127.0.0.1"]))
    _write_tls(tls_dir, tlsca, name, "server", valid_days, sans=sans)
    return tls_dir


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
        key = new_key()
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
    key = new_key()
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


__all__ = ["NetworkCrypto", "NodeCrypto", "OrgCrypto", "UserCrypto", "issue_identity", "load_network_crypto",
           "write_crypto_config", "write_network_crypto"]
