"""The cryptogen config (``cryptogen generate --config FILE``) as models, and cryptogen's
rendering of it: which nodes and users an org gets, and their names and SANs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fedledger.fabric.errors import IdentityError

ORDERER_ORG = "Orderer"
ORDERER_MSP_ID = "OrdererMSP"


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
    Count: int = Field(default=0, ge=0)
    Start: int = Field(default=0, ge=0)
    Hostname: str = ""
    SANS: list[str] = Field(default_factory=list)


class UsersSpec(_Spec):
    Count: int = Field(default=0, ge=0)


class OrgSpec(_Spec):
    """One entry of ``PeerOrgs`` / ``OrdererOrgs`` in a cryptogen config."""

    Name: str
    Domain: str
    EnableNodeOUs: bool = Field(default=False, validate_default=True)
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
    check_org_names(org_names)
    local = ["localhost", "127.0.0.1"]
    return CryptoConfig(
        OrdererOrgs=[OrgSpec(Name=ORDERER_ORG, Domain=domain, EnableNodeOUs=True,
                             Specs=[NodeSpec(Hostname="orderer", SANS=local)])],
        PeerOrgs=[OrgSpec(Name=name, Domain=f"{name.lower()}.{domain}", EnableNodeOUs=True,
                          Template=NodeTemplate(Count=1, SANS=local), Users=UsersSpec(Count=users))
                  for name in org_names])


def check_org_names(org_names: Sequence[str]) -> None:
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


__all__ = ["ORDERER_MSP_ID", "ORDERER_ORG", "CASpec", "CryptoConfig", "NodeSpec", "NodeTemplate", "OrgSpec",
           "RenderedNode", "UsersSpec", "ca_common_name", "check_org_names", "default_crypto_config",
           "render_nodes"]
