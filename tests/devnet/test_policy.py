"""Policies: the signature-policy language, cauthdsl evaluation, ImplicitMeta, envelopes."""

from __future__ import annotations

import pytest
from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2

from fedledger.devnet.ca import NetworkCrypto, write_network_crypto
from fedledger.devnet.policy import (
    ImplicitMetaPolicy,
    NOutOf,
    Principal,
    SignedBy,
    default_org_policies,
    parse_policy,
    policy_from_envelope,
    signature_policy_envelope,
)
from fedledger.fabric.errors import PolicyError
from fedledger.fabric.identity import load_signing_identity
from fedledger.fabric.msp import MSPManager, VerifiedIdentity

ORGS = ["Org1", "Org2", "Org3"]
MSPS = [f"{o}MSP" for o in ORGS]


@pytest.fixture(scope="module")
def ids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, VerifiedIdentity]:
    """Verified identities keyed 'peer1', 'admin1', 'user1', 'peer2', ..."""
    net: NetworkCrypto = write_network_crypto(tmp_path_factory.mktemp("policy") / "c", ORGS)
    manager = MSPManager.from_dirs(net.msp_dirs())
    out = {}
    for i, name in enumerate(ORGS, start=1):
        org = net.orgs[name]
        for label, msp_dir in [("peer", org.peer.msp_dir), ("admin", org.admin.msp_dir),
                               ("user", org.user.msp_dir)]:
            si = load_signing_identity(msp_dir, org.msp_id)
            out[f"{label}{i}"] = manager.deserialize(si.serialize())
    return out


def _signers(ids: dict[str, VerifiedIdentity], *names: str) -> list[VerifiedIdentity]:
    return [ids[n] for n in names]


# --------------------------------------------------------------------------- parsing

def test_parse_shapes() -> None:
    p = parse_policy("OR('Org1MSP.peer','Org2MSP.peer')")
    assert p == NOutOf(1, (SignedBy(Principal("Org1MSP", "peer")),
                           SignedBy(Principal("Org2MSP", "peer"))))
    p = parse_policy(' and ( "Org1MSP.member" ,\n\tOutOf( 2 , \'A.admin\', "B.client", '
                     "'C.orderer') ) ")
    assert isinstance(p, NOutOf) and p.n == 2
    inner = p.rules[1]
    assert isinstance(inner, NOutOf) and inner.n == 2 and len(inner.rules) == 3
    assert inner.principals() == [Principal("A", "admin"), Principal("B", "client"),
                                  Principal("C", "orderer")]
    assert parse_policy("'my.org-1.peer'") == SignedBy(Principal("my.org-1", "peer"))


@pytest.mark.parametrize("text", [
    "OR('Org1MSP.peer', 'Org2MSP.peer')",
    "AND('Org1MSP.member', OR('Org2MSP.admin', 'Org3MSP.client'))",
    "OutOf(2, 'Org1MSP.peer', 'Org2MSP.peer', 'Org3MSP.peer')",
    "AND('A.orderer', 'B.peer', OutOf(2, 'C.peer', 'D.peer', 'E.peer'))",
])
def test_text_round_trip(text: str) -> None:
    assert str(parse_policy(text)) == text
    assert parse_policy(str(parse_policy(text))) == parse_policy(text)


@pytest.mark.parametrize("text,message", [
    ("", "empty policy"),
    ("OR(", "found end of text at position 3"),
    ("OR('A.peer',)", "found ')' at position 12"),
    ("OR('A.peer' 'B.peer')", "expected ',' or ')' in OR, found \"'B.peer'\" at position 12"),
    ("AND('A.foo')", "bad principal 'A.foo'"),
    ("AND('Org1MSP')", "bad principal 'Org1MSP'"),
    ("OutOf(3, 'A.peer', 'B.peer')", "OutOf count 3 must be between 1 and the number"),
    ("OutOf(0, 'A.peer')", "OutOf count 0"),
    ("OutOf('A.peer')", "expected a count as the first argument of OutOf"),
    ("OR('A.peer') x", "unexpected 'x' after the policy at position 13"),
    ("OR('A.peer", "unterminated string"),
    ("NOT('A.peer')", "unknown function 'NOT'"),
    ("OR['A.peer']", "unexpected character '['"),
    ("MAJORITY Endorsement", "needs the channel's organisation policies"),
])
def test_parse_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    assert message in str(err.value)
    assert err.value.step == "policy"


# --------------------------------------------------------------------------- evaluation

def test_or_and(ids: dict[str, VerifiedIdentity]) -> None:
    p = parse_policy("OR('Org1MSP.peer', 'Org2MSP.peer')")
    assert p.evaluate(_signers(ids, "peer2"))
    assert not p.evaluate(_signers(ids, "admin1", "user2", "peer3"))
    assert not p.evaluate([])
    p = parse_policy("AND('Org1MSP.peer', 'Org2MSP.peer')")
    assert p.evaluate(_signers(ids, "peer1", "peer2"))
    assert not p.evaluate(_signers(ids, "peer1", "admin2"))


def test_member_role_and_role_exactness(ids: dict[str, VerifiedIdentity]) -> None:
    assert parse_policy("'Org1MSP.member'").evaluate(_signers(ids, "user1"))
    assert parse_policy("'Org1MSP.admin'").evaluate(_signers(ids, "admin1"))
    assert not parse_policy("'Org1MSP.admin'").evaluate(_signers(ids, "peer1"))
    assert not parse_policy("'Org1MSP.client'").evaluate(_signers(ids, "admin1"))
    assert not parse_policy("'Org1MSP.member'").evaluate(_signers(ids, "peer2"))


def test_one_signer_cannot_count_twice(ids: dict[str, VerifiedIdentity]) -> None:
    p = parse_policy("OutOf(2, 'Org1MSP.member', 'Org1MSP.peer')")
    assert not p.evaluate(_signers(ids, "peer1"))
    # The same identity twice is still one signer.
    assert not p.evaluate(_signers(ids, "peer1", "peer1"))
    assert p.evaluate(_signers(ids, "peer1", "user1"))
    two_orgs = parse_policy("OutOf(2, 'Org1MSP.member', 'Org2MSP.member')")
    assert not two_orgs.evaluate(_signers(ids, "peer1", "admin1", "user1"))
    assert two_orgs.evaluate(_signers(ids, "user1", "admin2"))


def test_overlapping_principals_found_by_search(ids: dict[str, VerifiedIdentity]) -> None:
    # A greedy matcher gives peer1 to 'member' (first rule, first signer) and then has
    # nothing left for 'peer'; the assignment admin1->member, peer1->peer exists.
    p = parse_policy("AND('Org1MSP.member', 'Org1MSP.peer')")
    assert p.evaluate(_signers(ids, "peer1", "admin1"))
    assert p.evaluate(_signers(ids, "admin1", "peer1"))
    nested = parse_policy("OutOf(2, OR('Org1MSP.member', 'Org2MSP.member'), "
                          "'Org1MSP.peer', 'Org2MSP.admin')")
    # The member slot must go to user2 so that peer1 is left for the peer slot.
    assert nested.evaluate(_signers(ids, "peer1", "user2"))
    assert not nested.evaluate(_signers(ids, "peer1"))
    deep = parse_policy("AND(OR('Org1MSP.member', 'Org2MSP.member'), "
                        "OR('Org1MSP.peer', 'Org3MSP.peer'), 'Org2MSP.admin')")
    assert deep.evaluate(_signers(ids, "admin2", "peer1", "user1"))
    assert not deep.evaluate(_signers(ids, "admin2", "peer1"))


def test_signer_order_does_not_matter(ids: dict[str, VerifiedIdentity]) -> None:
    import itertools

    p = parse_policy("OutOf(3, 'Org1MSP.member', 'Org1MSP.admin', 'Org1MSP.peer', "
                     "'Org2MSP.member')")
    names = ("peer1", "admin1", "user1")
    for perm in itertools.permutations(names):
        assert p.evaluate(_signers(ids, *perm))


def test_implicit_meta_majority(ids: dict[str, VerifiedIdentity]) -> None:
    p = parse_policy("MAJORITY Endorsement", default_org_policies(MSPS))
    assert isinstance(p, ImplicitMetaPolicy) and p.threshold == 2
    assert not p.evaluate(_signers(ids, "peer1"))
    assert not p.evaluate(_signers(ids, "peer1", "peer1"))
    # Two signers of one org are one org.
    assert not p.evaluate(_signers(ids, "peer1", "admin1", "user1"))
    # Org2 signed, but not as a peer.
    assert not p.evaluate(_signers(ids, "peer1", "admin2"))
    assert p.evaluate(_signers(ids, "peer1", "peer3"))
    assert p.evaluate(_signers(ids, "peer1", "peer2", "peer3"))
    assert str(p) == "MAJORITY Endorsement"


def test_implicit_meta_any_all(ids: dict[str, VerifiedIdentity]) -> None:
    orgs = default_org_policies(MSPS)
    any_p = parse_policy("ANY Endorsement", orgs)
    all_p = parse_policy("ALL Endorsement", orgs)
    assert any_p.evaluate(_signers(ids, "peer3"))
    assert not any_p.evaluate(_signers(ids, "user3"))
    assert not all_p.evaluate(_signers(ids, "peer1", "peer2"))
    assert all_p.evaluate(_signers(ids, "peer1", "peer2", "peer3"))


def test_implicit_meta_custom_sub_policies(ids: dict[str, VerifiedIdentity]) -> None:
    writers = {m: parse_policy(f"OR('{m}.admin', '{m}.client')") for m in MSPS}
    p = parse_policy("MAJORITY Writers", writers)
    assert p.evaluate(_signers(ids, "user1", "admin2"))
    assert not p.evaluate(_signers(ids, "peer1", "peer2", "user3"))
    two_orgs = ImplicitMetaPolicy("MAJORITY", "Endorsement", default_org_policies(MSPS[:2]))
    assert two_orgs.threshold == 2           # more than half of 2 is 2
    assert not two_orgs.evaluate(_signers(ids, "peer1"))


def test_implicit_meta_zero_orgs_like_fabric() -> None:
    assert ImplicitMetaPolicy("ALL", "X", {}).evaluate([])
    assert not ImplicitMetaPolicy("ANY", "X", {}).evaluate([])
    assert not ImplicitMetaPolicy("MAJORITY", "X", {}).evaluate([])
    with pytest.raises(PolicyError):
        ImplicitMetaPolicy("MOST", "X", {})


# --------------------------------------------------------------------------- envelopes

def test_envelope_contents() -> None:
    p = parse_policy("AND('Org1MSP.peer', OR('Org2MSP.admin', 'Org1MSP.peer'))")
    env = signature_policy_envelope(p)
    assert env.version == 0
    roles = []
    for ident in env.identities:
        assert ident.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE
        role = msp_principal_pb2.MSPRole.FromString(ident.principal)
        roles.append((role.msp_identifier, role.role))
    # Repeated principals share one identity entry.
    assert roles == [("Org1MSP", msp_principal_pb2.MSPRole.PEER),
                     ("Org2MSP", msp_principal_pb2.MSPRole.ADMIN)]
    assert env.rule.n_out_of.n == 2
    assert env.rule.n_out_of.rules[0].signed_by == 0
    inner = env.rule.n_out_of.rules[1].n_out_of
    assert inner.n == 1 and [r.signed_by for r in inner.rules] == [1, 0]


@pytest.mark.parametrize("text", [
    "'Org1MSP.member'",
    "OR('Org1MSP.peer', 'Org2MSP.peer')",
    "OutOf(2, 'Org1MSP.peer', AND('Org2MSP.admin', 'Org2MSP.client'), 'Org3MSP.orderer')",
])
def test_envelope_round_trip(text: str, ids: dict[str, VerifiedIdentity]) -> None:
    p = parse_policy(text)
    raw = signature_policy_envelope(p).SerializeToString()
    back = policy_from_envelope(raw)
    assert back == p
    assert policy_from_envelope(signature_policy_envelope(p)) == p
    for names in [("peer1",), ("peer1", "peer2"), ("admin2", "user2", "peer1")]:
        assert back.evaluate(_signers(ids, *names)) == p.evaluate(_signers(ids, *names))


def test_envelope_errors() -> None:
    with pytest.raises(PolicyError, match="not a SignaturePolicyEnvelope"):
        policy_from_envelope(b"\xff\xff\xff")
    with pytest.raises(PolicyError, match="no rule"):
        policy_from_envelope(b"")
    env = signature_policy_envelope(parse_policy("'Org1MSP.peer'"))
    env.rule.signed_by = 5
    with pytest.raises(PolicyError, match="signed_by 5 refers to no identity"):
        policy_from_envelope(env.SerializeToString())
    env = signature_policy_envelope(parse_policy("'Org1MSP.peer'"))
    env.identities[0].principal_classification = msp_principal_pb2.MSPPrincipal.IDENTITY
    with pytest.raises(PolicyError, match="IDENTITY is not supported"):
        policy_from_envelope(env)
    env = signature_policy_envelope(parse_policy("'Org1MSP.peer'"))
    env.version = 1
    with pytest.raises(PolicyError, match="version"):
        policy_from_envelope(env)
    with pytest.raises(PolicyError, match="only signature policies"):
        signature_policy_envelope(parse_policy("ANY Endorsement", default_org_policies(MSPS)))


def test_envelope_n_zero_accepts_all(ids: dict[str, VerifiedIdentity]) -> None:
    # Fabric's "accept all" policy is NOutOf(0, []); it comes only from envelopes.
    env = policies_pb2.SignaturePolicyEnvelope(
        version=0, rule=policies_pb2.SignaturePolicy(
            n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=0)))
    assert policy_from_envelope(env).evaluate([])
