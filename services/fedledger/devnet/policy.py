"""Endorsement policies: Fabric's signature-policy language and ImplicitMeta policies.

Signature policies (``AND('Org1MSP.peer', OutOf(1, 'Org2MSP.peer', 'Org3MSP.peer'))``)
are evaluated like Fabric's ``cauthdsl``: every signer (deduplicated by identity) can
satisfy at most one principal. Unlike cauthdsl, which hands signers to sub-rules
greedily and can miss an assignment that exists, the search here is exhaustive, so a
policy is satisfied exactly when some one-signer-per-principal assignment exists.

ImplicitMeta policies (``MAJORITY Endorsement``) count how many of the channel's
organisations have their own sub-policy satisfied. Signature policies convert to and
from ``common.SignaturePolicyEnvelope``, the form state-based endorsement stores as a
key's validation parameter.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2
from google.protobuf.message import DecodeError

from fedledger.fabric.errors import PolicyError
from fedledger.fabric.msp import VerifiedIdentity

_ROLE_TO_PROTO = {
    "member": msp_principal_pb2.MSPRole.MEMBER,
    "admin": msp_principal_pb2.MSPRole.ADMIN,
    "client": msp_principal_pb2.MSPRole.CLIENT,
    "peer": msp_principal_pb2.MSPRole.PEER,
    "orderer": msp_principal_pb2.MSPRole.ORDERER,
}
_PROTO_TO_ROLE = {v: k for k, v in _ROLE_TO_PROTO.items()}
IMPLICIT_META_RULES = ("ANY", "ALL", "MAJORITY")

# Signer index sets: a solution of a rule is the set of signers it consumed.
_Uses = frozenset[int]


class Policy(ABC):
    """Something a set of signers satisfies or not."""

    @abstractmethod
    def evaluate(self, signers: Sequence[VerifiedIdentity]) -> bool:
        """Whether ``signers`` (already verified identities) satisfy the policy."""

    @abstractmethod
    def __str__(self) -> str:
        """The policy in Fabric's text form (``parse_policy`` reads it back)."""


# --------------------------------------------------------------------------- signature

@dataclass(frozen=True)
class Principal:
    """``'<msp_id>.<role>'``: an identity of that MSP holding that role."""

    msp_id: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in _ROLE_TO_PROTO:
            raise PolicyError(f"unknown role {self.role!r} for {self.msp_id} (expected one of "
                              f"{', '.join(_ROLE_TO_PROTO)})", step="policy")

    def matches(self, signer: VerifiedIdentity) -> bool:
        return signer.msp_id == self.msp_id and self.role in signer.roles

    def __str__(self) -> str:
        return f"'{self.msp_id}.{self.role}'"


class SignaturePolicy(Policy):
    """A cauthdsl rule tree: :class:`SignedBy` leaves under :class:`NOutOf` nodes."""

    def evaluate(self, signers: Sequence[VerifiedIdentity]) -> bool:
        # One identity signing twice is still one signer (Fabric deduplicates too).
        unique = list({s.serialized: s for s in signers}.values())
        memo: dict[tuple[int, _Uses], list[_Uses]] = {}
        return bool(self._solutions(unique, frozenset(range(len(unique))), memo))

    @abstractmethod
    def _solutions(self, signers: Sequence[VerifiedIdentity], available: _Uses,
                   memo: dict[tuple[int, _Uses], list[_Uses]]) -> list[_Uses]:
        """Minimal sets of signers (indices, drawn from ``available``) satisfying this."""

    @abstractmethod
    def principals(self) -> list[Principal]:
        """Principals in order of first appearance, without repeats."""


@dataclass(frozen=True)
class SignedBy(SignaturePolicy):
    """Satisfied by one signer matching ``principal``."""

    principal: Principal

    def _solutions(self, signers: Sequence[VerifiedIdentity], available: _Uses,
                   memo: dict[tuple[int, _Uses], list[_Uses]]) -> list[_Uses]:
        return [frozenset((i,)) for i in sorted(available)
                if self.principal.matches(signers[i])]

    def principals(self) -> list[Principal]:
        return [self.principal]

    def __str__(self) -> str:
        return str(self.principal)


@dataclass(frozen=True)
class NOutOf(SignaturePolicy):
    """Satisfied when ``n`` of ``rules`` are, by disjoint sets of signers.

    ``AND`` is ``n == len(rules)``, ``OR`` is ``n == 1``.
    """

    n: int
    rules: tuple[SignaturePolicy, ...]

    def _solutions(self, signers: Sequence[VerifiedIdentity], available: _Uses,
                   memo: dict[tuple[int, _Uses], list[_Uses]]) -> list[_Uses]:
        key = (id(self), available)
        if key in memo:
            return memo[key]
        # partial[k]: minimal signer sets that satisfy k of the rules seen so far. Keeping
        # every minimal set (not just the first found) is what makes the search complete.
        nobody: _Uses = frozenset()
        partial: list[list[_Uses]] = [[nobody]] + [[] for _ in range(self.n)]
        for rule in self.rules:
            for k in range(min(self.n, len(self.rules)) - 1, -1, -1):
                grown = [used | extra for used in partial[k]
                         for extra in rule._solutions(signers, available - used, memo)]
                if grown:
                    partial[k + 1] = _minimal(partial[k + 1] + grown)
        result = partial[self.n] if self.n <= len(self.rules) else []
        memo[key] = result
        return result

    def principals(self) -> list[Principal]:
        seen: dict[Principal, None] = {}
        for rule in self.rules:
            seen.update(dict.fromkeys(rule.principals()))
        return list(seen)

    def __str__(self) -> str:
        args = ", ".join(str(r) for r in self.rules)
        if self.n == len(self.rules) and self.n > 1:
            return f"AND({args})"
        if self.n == 1:
            return f"OR({args})"
        return f"OutOf({self.n}, {args})"


def _minimal(sets: list[_Uses]) -> list[_Uses]:
    """Drop duplicates and supersets: using more signers never leaves more options."""
    out: list[_Uses] = []
    for s in sorted(set(sets), key=len):
        if not any(o <= s for o in out):
            out.append(s)
    return out


# --------------------------------------------------------------------------- implicit meta

class ImplicitMetaPolicy(Policy):
    """``ANY|ALL|MAJORITY <SubPolicy>`` over the channel's organisations.

    ``org_policies`` maps each org's MSP id to its ``<SubPolicy>`` (for
    ``Endorsement``, Fabric's sample config uses ``OR('<msp>.peer')``; see
    :func:`default_org_policies`).
    """

    def __init__(self, rule: str, sub_policy: str, org_policies: Mapping[str, Policy]) -> None:
        rule = rule.upper()
        if rule not in IMPLICIT_META_RULES:
            raise PolicyError(f"ImplicitMeta rule must be ANY, ALL or MAJORITY, not {rule!r}",
                              step="policy")
        self.rule = rule
        self.sub_policy = sub_policy
        self.org_policies: dict[str, Policy] = dict(org_policies)

    @property
    def threshold(self) -> int:
        """Sub-policies that must be satisfied (Fabric's arithmetic, zero orgs included)."""
        count = len(self.org_policies)
        return {"ANY": 1, "ALL": count, "MAJORITY": count // 2 + 1}[self.rule]

    def evaluate(self, signers: Sequence[VerifiedIdentity]) -> bool:
        needed = self.threshold
        if needed == 0:
            return True
        for policy in self.org_policies.values():
            if policy.evaluate(signers):
                needed -= 1
                if needed == 0:
                    return True
        return False

    def __str__(self) -> str:
        return f"{self.rule} {self.sub_policy}"

    def __repr__(self) -> str:
        return f"ImplicitMetaPolicy({self.rule!r}, {self.sub_policy!r}, " \
               f"orgs={list(self.org_policies)})"


def default_org_policies(msp_ids: Iterable[str], role: str = "peer") -> dict[str, Policy]:
    """``msp_id -> OR('<msp_id>.<role>')``, the per-org sub-policy ImplicitMeta counts."""
    return {m: NOutOf(1, (SignedBy(Principal(m, role)),)) for m in msp_ids}


# --------------------------------------------------------------------------- parser

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<punct>[(),])
  | (?P<int>\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>'[^']*'|"[^"]*")
""", re.VERBOSE)
_PRINCIPAL = re.compile(r"^([A-Za-z0-9.\-_]+)\.(member|admin|client|peer|orderer)$")
_IMPLICIT = re.compile(r"^\s*(ANY|ALL|MAJORITY)\s+([A-Za-z][A-Za-z0-9_-]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Tok:
    kind: str    # punct | int | name | str | end
    value: str
    pos: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = self._tokenize(text)
        self.i = 0

    def fail(self, what: str, pos: int) -> PolicyError:
        return PolicyError(f"{what} at position {pos} in policy {self.text!r}", step="policy")

    def _tokenize(self, text: str) -> list[_Tok]:
        toks, pos = [], 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                if text[pos] in "'\"":
                    raise self.fail(f"unterminated string starting with {text[pos]}", pos)
                raise self.fail(f"unexpected character {text[pos]!r}", pos)
            if m.lastgroup != "ws":
                toks.append(_Tok(m.lastgroup or "", m.group(), pos))
            pos = m.end()
        toks.append(_Tok("end", "", len(text)))
        return toks

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self, kind: str, value: str | None = None, what: str = "") -> _Tok:
        tok = self.peek()
        if tok.kind != kind or (value is not None and tok.value != value):
            found = "end of text" if tok.kind == "end" else repr(tok.value)
            raise self.fail(f"expected {what or repr(value)}, found {found}", tok.pos)
        self.i += 1
        return tok

    def parse(self) -> SignaturePolicy:
        rule = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(f"unexpected {tok.value!r} after the policy", tok.pos)
        return rule

    def expr(self) -> SignaturePolicy:
        tok = self.peek()
        if tok.kind == "str":
            self.i += 1
            return SignedBy(self.principal(tok))
        if tok.kind != "name":
            found = "end of text" if tok.kind == "end" else repr(tok.value)
            raise self.fail(f"expected AND, OR, OutOf or a quoted principal, found {found}",
                            tok.pos)
        func = tok.value.upper()
        if func not in ("AND", "OR", "OUTOF"):
            raise self.fail(f"unknown function {tok.value!r} (expected AND, OR or OutOf)",
                            tok.pos)
        self.i += 1
        self.take("punct", "(", f"'(' after {tok.value}")
        n = None
        if func == "OUTOF":
            n_tok = self.take("int", what=f"a count as the first argument of {tok.value}")
            n = int(n_tok.value)
            self.take("punct", ",", f"',' after the count of {tok.value}")
        rules = [self.expr()]
        while self.peek().kind == "punct" and self.peek().value == ",":
            self.i += 1
            rules.append(self.expr())
        self.take("punct", ")", f"',' or ')' in {tok.value}")
        if func == "AND":
            n = len(rules)
        elif func == "OR":
            n = 1
        assert n is not None
        if not 1 <= n <= len(rules):
            raise self.fail(f"{tok.value} count {n} must be between 1 and the number of "
                            f"policies given ({len(rules)})", tok.pos)
        return NOutOf(n, tuple(rules))

    def principal(self, tok: _Tok) -> Principal:
        body = tok.value[1:-1]
        m = _PRINCIPAL.match(body)
        if m is None:
            raise self.fail(f"bad principal {tok.value}: expected '<MSP id>.<role>' with role "
                            f"member, admin, client, peer or orderer", tok.pos)
        return Principal(m.group(1), m.group(2))


def parse_policy(text: str, org_policies: Mapping[str, Policy] | None = None) -> Policy:
    """Parse a signature policy (``OR('Org1MSP.peer', 'Org2MSP.peer')``, ``AND``,
    ``OutOf(n, ...)``, a lone quoted principal) or an ImplicitMeta policy
    (``MAJORITY Endorsement``), which needs the channel's ``org_policies``
    (msp_id -> that org's sub-policy, e.g. :func:`default_org_policies`)."""
    if not isinstance(text, str) or not text.strip():
        raise PolicyError("empty policy", step="policy")
    meta = _IMPLICIT.match(text)
    if meta:
        if org_policies is None:
            raise PolicyError(f"ImplicitMeta policy {text.strip()!r} needs the channel's "
                              f"organisation policies", step="policy")
        return ImplicitMetaPolicy(meta.group(1), meta.group(2), org_policies)
    return _Parser(text).parse()


# --------------------------------------------------------------------------- protobuf

def signature_policy_envelope(policy: Policy) -> policies_pb2.SignaturePolicyEnvelope:
    """``common.SignaturePolicyEnvelope`` of a signature policy (version 0, MSPRole
    principals), as stored for state-based endorsement."""
    if not isinstance(policy, SignaturePolicy):
        raise PolicyError(f"only signature policies have an envelope, not {policy}",
                          step="policy")
    principals = policy.principals()
    index = {p: i for i, p in enumerate(principals)}

    def rule_of(node: SignaturePolicy) -> policies_pb2.SignaturePolicy:
        if isinstance(node, SignedBy):
            return policies_pb2.SignaturePolicy(signed_by=index[node.principal])
        assert isinstance(node, NOutOf)
        return policies_pb2.SignaturePolicy(n_out_of=policies_pb2.SignaturePolicy.NOutOf(
            n=node.n, rules=[rule_of(r) for r in node.rules]))

    identities = [msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
        principal=msp_principal_pb2.MSPRole(
            msp_identifier=p.msp_id, role=_ROLE_TO_PROTO[p.role]).SerializeToString())
        for p in principals]
    return policies_pb2.SignaturePolicyEnvelope(version=0, rule=rule_of(policy),
                                                identities=identities)


def policy_from_envelope(data: bytes | policies_pb2.SignaturePolicyEnvelope) -> SignaturePolicy:
    """Signature policy from a ``SignaturePolicyEnvelope`` (or its bytes)."""
    if isinstance(data, policies_pb2.SignaturePolicyEnvelope):
        env = data
    else:
        try:
            env = policies_pb2.SignaturePolicyEnvelope.FromString(bytes(data))
        except (DecodeError, TypeError) as exc:
            raise PolicyError(f"not a SignaturePolicyEnvelope: {exc}", step="policy") from exc
    if env.version != 0:
        raise PolicyError(f"unsupported SignaturePolicyEnvelope version {env.version}",
                          step="policy")
    principals = [_principal_of(i, p) for i, p in enumerate(env.identities)]

    def node_of(rule: policies_pb2.SignaturePolicy, depth: int) -> SignaturePolicy:
        if depth > 64:
            raise PolicyError("signature policy nested too deeply", step="policy")
        which = rule.WhichOneof("Type")
        if which == "signed_by":
            if not 0 <= rule.signed_by < len(principals):
                raise PolicyError(f"signed_by {rule.signed_by} refers to no identity "
                                  f"(envelope has {len(principals)})", step="policy")
            return SignedBy(principals[rule.signed_by])
        if which == "n_out_of":
            if rule.n_out_of.n < 0:
                raise PolicyError(f"n_out_of with negative n {rule.n_out_of.n}", step="policy")
            return NOutOf(rule.n_out_of.n,
                          tuple(node_of(r, depth + 1) for r in rule.n_out_of.rules))
        raise PolicyError("signature policy rule is empty", step="policy")

    if not env.HasField("rule"):
        raise PolicyError("SignaturePolicyEnvelope has no rule", step="policy")
    return node_of(env.rule, 0)


def _principal_of(i: int, p: msp_principal_pb2.MSPPrincipal) -> Principal:
    if p.principal_classification != msp_principal_pb2.MSPPrincipal.ROLE:
        name = msp_principal_pb2.MSPPrincipal.Classification.Name(p.principal_classification)
        raise PolicyError(f"identity {i}: principal classification {name} is not supported "
                          f"(only ROLE)", step="policy")
    try:
        role = msp_principal_pb2.MSPRole.FromString(p.principal)
    except DecodeError as exc:
        raise PolicyError(f"identity {i}: bad MSPRole: {exc}", step="policy") from exc
    if role.role not in _PROTO_TO_ROLE or not role.msp_identifier:
        raise PolicyError(f"identity {i}: bad MSPRole ({role.msp_identifier!r}, {role.role})",
                          step="policy")
    return Principal(role.msp_identifier, _PROTO_TO_ROLE[role.role])


__all__ = [
    "IMPLICIT_META_RULES", "ImplicitMetaPolicy", "NOutOf", "Policy", "Principal", "SignedBy",
    "SignaturePolicy", "default_org_policies", "parse_policy", "policy_from_envelope",
    "signature_policy_envelope",
]
