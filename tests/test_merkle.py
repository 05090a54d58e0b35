"""Merkle trees: RFC 6962 compatibility, inclusion proofs an auditor can check alone,
and salted sorted commitments with membership / non-membership proofs."""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json

import pytest

from fedledger.merkle import (
    EMPTY_ROOT,
    InclusionProof,
    MembershipProof,
    MerkleError,
    MerkleTree,
    NeighbourLeaf,
    NonMembershipProof,
    SortedMerkleTree,
    key_commitment,
    leaf_hash,
    leaves_sorted,
    merkle_root,
    node_hash,
    proof_from_dict,
    verify_inclusion,
)

# The certificate-transparency reference test leaves (merkle_tree_test.cc).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _leaves(n: int) -> list[bytes]:
    return [f"record-{i}".encode() for i in range(n)]


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH written straight from the spec, to check the level-by-level build."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


# --------------------------------------------------------------------------- plain tree


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    tree = MerkleTree([])
    assert tree.size == 0
    assert tree.root == EMPTY_ROOT
    assert tree.root.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    with pytest.raises(MerkleError):
        tree.prove(0)


@pytest.mark.parametrize("n", range(1, 9))
def test_certificate_transparency_vectors(n: int) -> None:
    assert MerkleTree(CT_LEAVES[:n]).root.hex() == CT_ROOTS[n - 1]


def test_root_matches_rfc6962_recursive_definition() -> None:
    for n in (*range(0, 34), 100, 1000, 1025):
        leaves = _leaves(n)
        assert MerkleTree(leaves).root == _reference_root(leaves) == merkle_root(leaves)


def test_leaf_hash_is_domain_separated() -> None:
    tree = MerkleTree([b"a", b"b"])
    assert tree.leaf_hash(0) == hashlib.sha256(b"\x00a").digest()
    assert tree.root == hashlib.sha256(
        b"\x01" + hashlib.sha256(b"\x00a").digest() + hashlib.sha256(b"\x00b").digest()
    ).digest()
    # A leaf equal to the concatenated children of the root does not give the same root.
    assert MerkleTree([tree.leaf_hash(0) + tree.leaf_hash(1)]).root != tree.root


def test_odd_leaf_is_not_duplicated() -> None:
    a, b, c = b"a", b"b", b"c"
    assert MerkleTree([a, b, c]).root != MerkleTree([a, b, c, c]).root
    assert MerkleTree([a]).root != MerkleTree([a, a]).root


def test_order_matters_unless_sorted() -> None:
    items = [b"c", b"a", b"b"]
    assert MerkleTree(items).root != MerkleTree(sorted(items)).root
    assert leaves_sorted(items) == [b"a", b"b", b"c"]
    assert MerkleTree(leaves_sorted(items)).root == MerkleTree(leaves_sorted(items[::-1])).root


def test_non_bytes_leaf_rejected() -> None:
    with pytest.raises(MerkleError):
        MerkleTree([b"ok", "not bytes"])  # type: ignore[list-item]


@pytest.mark.parametrize("n", range(1, 41))
def test_every_inclusion_proof_verifies(n: int) -> None:
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    for i, leaf in enumerate(leaves):
        proof = tree.prove(i)
        assert proof.leaf_index == i and proof.tree_size == n
        assert proof.verify(leaf, tree.root)
        assert verify_inclusion(leaf, proof, tree.root)
        assert proof.verify_hash(tree.leaf_hash(i), tree.root)


def test_ct_audit_paths() -> None:
    """Audit paths from the certificate-transparency reference tests (8-leaf tree)."""
    tree = MerkleTree(CT_LEAVES)
    expected = {
        0: ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
        5: ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    }
    for index, path in expected.items():
        assert [p.hex() for p in tree.prove(index).path] == path
    # Leaf 5 of a 6-leaf tree has a shorter path (its right subtree is unbalanced).
    six = MerkleTree(CT_LEAVES[:6])
    assert [p.hex() for p in six.prove(5).path] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]


def test_inclusion_proof_rejects_tampering() -> None:
    leaves = _leaves(13)
    tree = MerkleTree(leaves)
    other_root = MerkleTree(_leaves(14)).root
    for i in range(13):
        proof = tree.prove(i)
        assert not proof.verify(b"not a leaf", tree.root)
        assert not proof.verify(leaves[(i + 1) % 13], tree.root)
        assert not proof.verify(leaves[i], other_root)
        for j in range(len(proof.path)):
            bad = list(proof.path)
            bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
            assert not dataclasses.replace(proof, path=tuple(bad)).verify(leaves[i], tree.root)
        assert not dataclasses.replace(proof, path=proof.path[:-1]).verify(leaves[i], tree.root)
        assert not dataclasses.replace(
            proof, path=(*proof.path, proof.path[0])).verify(leaves[i], tree.root)
        for index in {i ^ 1, (i + 1) % 13, 13, 100}:
            if index != i:
                assert not dataclasses.replace(proof, leaf_index=index).verify(
                    leaves[i], tree.root)
        # An index past the end, or a size whose path has another shape, never verifies.
        for size in (0, i, 26):
            assert not dataclasses.replace(proof, tree_size=size).verify(leaves[i], tree.root)
        # Pinned to the anchored size, any other claimed size is refused.
        assert proof.verify(leaves[i], tree.root, tree_size=13)
        for size in (12, 14, 16):
            wrong = dataclasses.replace(proof, tree_size=size)
            assert not wrong.verify(leaves[i], tree.root, tree_size=13)
            assert not verify_inclusion(leaves[i], wrong, tree.root, tree_size=13)


def test_single_leaf_tree() -> None:
    tree = MerkleTree([b"only"])
    proof = tree.prove(0)
    assert proof.path == ()
    assert tree.root == leaf_hash(b"only")
    assert proof.verify(b"only", tree.root)
    assert not proof.verify(b"other", tree.root)


def test_inclusion_proof_round_trips_through_json() -> None:
    tree = MerkleTree(_leaves(21))
    for i in (0, 7, 20):
        proof = tree.prove(i)
        data = json.loads(json.dumps(proof.to_dict()))
        assert data["leaf_index"] == i and data["tree_size"] == 21
        assert all(isinstance(p, str) and len(p) == 64 for p in data["path"])
        back = InclusionProof.from_dict(data)
        assert back == proof
        assert back.verify(_leaves(21)[i], tree.root)


def _good_dict() -> dict:
    return MerkleTree(_leaves(5)).prove(2).to_dict()


@pytest.mark.parametrize("mutate", [
    lambda d: "not a dict",
    lambda d: d.pop("path"),
    lambda d: d.update(extra=1),
    lambda d: d.update(leaf_index="2"),
    lambda d: d.update(leaf_index=-1),
    lambda d: d.update(leaf_index=True),
    lambda d: d.update(tree_size=2.0),
    lambda d: d.update(leaf_index=5),
    lambda d: d.update(path="ab" * 32),
    lambda d: d.update(path=[*d["path"][:-1], "zz" * 32]),
    lambda d: d.update(path=[*d["path"][:-1], "ab" * 31]),
    lambda d: d.update(path=[*d["path"][:-1], " " + "ab" * 32]),
    lambda d: d.update(path=[*d["path"][:-1], 7]),
    lambda d: d.update(path=d["path"][:-1]),
    lambda d: d.update(path=[*d["path"], "ab" * 32]),
])
def test_malformed_inclusion_dict_raises(mutate) -> None:
    data = _good_dict()
    result = mutate(data)
    if isinstance(result, str):
        data = result
    with pytest.raises(MerkleError):
        InclusionProof.from_dict(data)


def test_hundred_thousand_leaves_build_and_prove() -> None:
    leaves = [i.to_bytes(8, "big") * 4 for i in range(100_000)]
    tree = MerkleTree(leaves)
    for i in (0, 1, 65_535, 65_536, 99_999):
        assert tree.prove(i).verify(leaves[i], tree.root)


# --------------------------------------------------------------------------- sorted tree

SALT = b"s" * 32
IDS = [f"sample-{i:03d}".encode() for i in range(0, 60, 3)]


def _absent_keys(tree: SortedMerkleTree, salt: bytes) -> dict[str, bytes]:
    """Absent keys whose commitment lands before the first leaf, after the last, and
    between two leaves."""
    commitments = sorted(key_commitment(k, salt) for k in IDS)
    found: dict[str, bytes] = {}
    for i in range(10_000):
        key = f"absent-{i}".encode()
        c = key_commitment(key, salt)
        where = ("before" if c < commitments[0] else
                 "after" if c > commitments[-1] else "between")
        found.setdefault(where, key)
        if len(found) == 3:
            return found
    raise AssertionError("could not find absent keys at every position")


def test_membership_proof_for_every_key() -> None:
    tree = SortedMerkleTree(IDS, salt=SALT)
    assert tree.size == len(IDS)
    for key in IDS:
        assert key in tree
        proof = tree.prove(key)
        assert isinstance(proof, MembershipProof)
        assert proof.verify(key, tree.root, SALT)
        assert proof.value == b""
        assert not proof.verify(key, tree.root, b"other salt")
        assert not proof.verify(key + b"x", tree.root, SALT)
        assert not proof.verify(key, SortedMerkleTree(IDS[1:], salt=SALT).root, SALT)


def test_membership_with_values_and_str_keys() -> None:
    entries = {k: b"slice-" + k[-1:] for k in IDS}
    tree = SortedMerkleTree(entries, salt=SALT)
    proof = tree.prove_membership(IDS[4].decode())
    assert proof.value == entries[IDS[4]]
    assert proof.verify(IDS[4].decode(), tree.root, SALT)
    assert proof.verify(IDS[4], tree.root, SALT)
    forged = dataclasses.replace(proof, value=b"slice-x")
    assert not forged.verify(IDS[4], tree.root, SALT)
    # Same keys, different values: a different commitment.
    assert tree.root != SortedMerkleTree(IDS, salt=SALT).root


def test_root_independent_of_input_order() -> None:
    assert (SortedMerkleTree(IDS, salt=SALT).root
            == SortedMerkleTree(list(reversed(IDS)), salt=SALT).root)


def test_non_membership_before_between_after() -> None:
    tree = SortedMerkleTree(IDS, salt=SALT)
    for where, key in _absent_keys(tree, SALT).items():
        assert key not in tree
        proof = tree.prove(key)
        assert isinstance(proof, NonMembershipProof), where
        assert proof.verify(key, tree.root, SALT), where
        if where == "before":
            assert proof.left is None and proof.right.inclusion.leaf_index == 0
        elif where == "after":
            assert proof.right is None and proof.left.inclusion.leaf_index == len(IDS) - 1
        else:
            assert proof.right.inclusion.leaf_index == proof.left.inclusion.leaf_index + 1
        # It says nothing about a committed key, nor about another root.
        assert not proof.verify(IDS[0], tree.root, SALT)
        assert not proof.verify(key, SortedMerkleTree(IDS[1:], salt=SALT).root, SALT)


def test_non_membership_in_empty_tree() -> None:
    tree = SortedMerkleTree([], salt=SALT)
    assert tree.root == EMPTY_ROOT and tree.size == 0
    proof = tree.prove(b"anyone")
    assert isinstance(proof, NonMembershipProof)
    assert proof.left is None and proof.right is None
    assert proof.verify(b"anyone", tree.root, SALT)
    assert not proof.verify(b"anyone", SortedMerkleTree([b"x"], salt=SALT).root, SALT)
    with pytest.raises(MerkleError):
        tree.prove_membership(b"anyone")


def test_non_membership_in_single_key_tree() -> None:
    tree = SortedMerkleTree([b"only"], salt=SALT)
    for i in range(20):
        key = f"k{i}".encode()
        assert tree.prove_non_membership(key).verify(key, tree.root, SALT)


def test_non_membership_of_present_key_cannot_be_built() -> None:
    tree = SortedMerkleTree(IDS, salt=SALT)
    with pytest.raises(MerkleError):
        tree.prove_non_membership(IDS[3])
    with pytest.raises(MerkleError):
        tree.prove_membership(b"absent")


def _neighbour_of(tree: SortedMerkleTree, key: bytes, salt: bytes) -> NeighbourLeaf:
    """What a dishonest prover can assemble for a committed key from public pieces."""
    return NeighbourLeaf(commitment=key_commitment(key, salt),
                         value_digest=hashlib.sha256(b"").digest(),
                         inclusion=tree.prove_membership(key).inclusion)


def test_forged_non_membership_fails() -> None:
    tree = SortedMerkleTree(IDS, salt=SALT)
    by_commitment = sorted(IDS, key=lambda k: key_commitment(k, SALT))
    for at in range(len(by_commitment)):
        present = by_commitment[at]
        # Bracket the present key by the leaves either side of it: not adjacent.
        left = _neighbour_of(tree, by_commitment[at - 1], SALT) if at > 0 else None
        right = (_neighbour_of(tree, by_commitment[at + 1], SALT)
                 if at + 1 < len(IDS) else None)
        forged = NonMembershipProof(tree_size=len(IDS), left=left, right=right)
        assert not forged.verify(present, tree.root, SALT)
    key = _absent_keys(tree, SALT)["between"]
    real = tree.prove_non_membership(key)
    assert real.verify(key, tree.root, SALT)
    # Swapping the neighbours breaks the ordering check.
    swapped = dataclasses.replace(real, left=real.right, right=real.left)
    assert not swapped.verify(key, tree.root, SALT)
    # Dropping one side of an interior gap breaks the boundary check.
    assert not dataclasses.replace(real, right=None).verify(key, tree.root, SALT)
    assert not dataclasses.replace(real, left=None).verify(key, tree.root, SALT)
    # Replacing a neighbour by a non-adjacent leaf breaks the adjacency check.
    far = _neighbour_of(tree, by_commitment[0], SALT)
    if far.inclusion.leaf_index != real.left.inclusion.leaf_index:
        assert not dataclasses.replace(real, left=far).verify(key, tree.root, SALT)
    # Claiming the empty tree for a non-empty root fails.
    assert not NonMembershipProof(tree_size=0, left=None, right=None).verify(
        key, tree.root, SALT)
    # A tampered neighbour commitment no longer matches its inclusion proof.
    bad = dataclasses.replace(real.left, commitment=bytes(32))
    assert not dataclasses.replace(real, left=bad).verify(key, tree.root, SALT)


def test_wrong_salt_cannot_prove_absence() -> None:
    """The salt is bound into every leaf, so a prover can't claim another salt under
    which a committed key's commitment falls into a gap of the real tree."""
    tree = SortedMerkleTree(IDS, salt=SALT)
    other = b"o" * 32
    by_commitment = sorted(IDS, key=lambda k: key_commitment(k, SALT))
    commitments = [key_commitment(k, SALT) for k in by_commitment]
    for key in IDS:
        target = key_commitment(key, other)
        at = bisect.bisect_left(commitments, target)
        left = _neighbour_of(tree, by_commitment[at - 1], SALT) if at > 0 else None
        right = _neighbour_of(tree, by_commitment[at], SALT) if at < len(IDS) else None
        forged = NonMembershipProof(tree_size=len(IDS), left=left, right=right)
        # Ordering and adjacency hold; only the salt binding stops it.
        assert not forged.verify(key, tree.root, other)
        assert tree.prove(key).verify(key, tree.root, SALT)
    for where, key in _absent_keys(tree, SALT).items():
        assert not tree.prove_non_membership(key).verify(key, tree.root, other), where


def test_salt_changes_root_and_hides_neighbours() -> None:
    a = SortedMerkleTree(IDS, salt=SALT)
    b = SortedMerkleTree(IDS, salt=b"t" * 32)
    c = SortedMerkleTree(IDS)
    assert len({a.root, b.root, c.root}) == 3
    key = _absent_keys(a, SALT)["between"]
    text = json.dumps(a.prove(key).to_dict())
    for raw in IDS:
        assert raw.hex() not in text and raw.decode() not in text
        # Not even the unsalted hash of a neighbour appears.
        assert hashlib.sha256(raw).hexdigest() not in text
    nb = a.prove(key).left
    assert nb.commitment in {key_commitment(k, SALT) for k in IDS}


def test_duplicate_keys_rejected() -> None:
    with pytest.raises(MerkleError):
        SortedMerkleTree([b"a", b"b", b"a"])
    with pytest.raises(MerkleError):
        SortedMerkleTree({b"a": b"1", "a": b"2"})  # type: ignore[dict-item]
    with pytest.raises(MerkleError):
        SortedMerkleTree([b"a", 3])  # type: ignore[list-item]


def test_sorted_leaves_differ_from_plain_leaves() -> None:
    """A sorted-tree root is not the plain tree of the raw keys, in any order."""
    tree = SortedMerkleTree(IDS)
    assert tree.root != MerkleTree(IDS).root
    assert tree.root != MerkleTree(leaves_sorted(IDS)).root


def test_sorted_proofs_round_trip_through_json() -> None:
    tree = SortedMerkleTree({k: k[::-1] for k in IDS}, salt=SALT)
    keys = [IDS[0], IDS[-1], *_absent_keys(tree, SALT).values()]
    for key in keys:
        proof = tree.prove(key)
        data = json.loads(json.dumps(proof.to_dict()))
        assert data["type"] == ("membership" if key in tree else "non-membership")
        back = proof_from_dict(data)
        assert back == proof
        assert type(back).from_dict(data) == proof
        assert back.verify(key, tree.root, SALT)
    empty = SortedMerkleTree([]).prove(b"x")
    assert proof_from_dict(json.loads(json.dumps(empty.to_dict()))) == empty


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(type="other"),
    lambda d: d.pop("type"),
    lambda d: d.update(tree_size=-1),
    lambda d: d.update(left=None, right=None),
    lambda d: d.update(left="nope"),
    lambda d: d["left"].update(commitment="ab"),
    lambda d: d["left"].update(value_digest=None),
    lambda d: d["left"].pop("inclusion"),
    lambda d: d["right"]["inclusion"].update(tree_size=d["tree_size"] + 1),
    lambda d: d.update(tree_size=0),
])
def test_malformed_non_membership_dict_raises(mutate) -> None:
    tree = SortedMerkleTree(IDS, salt=SALT)
    data = tree.prove(_absent_keys(tree, SALT)["between"]).to_dict()
    mutate(data)
    with pytest.raises(MerkleError):
        proof_from_dict(data)


@pytest.mark.parametrize("data", [
    None,
    [],
    {"type": "membership"},
    {"type": "membership", "value": "xyz", "inclusion": _good_dict()},
    {"type": "membership", "value": 12, "inclusion": _good_dict()},
    {"type": "membership", "value": "", "inclusion": {}},
    {"type": "membership", "value": "", "inclusion": _good_dict(), "extra": 1},
])
def test_malformed_membership_dict_raises(data) -> None:
    with pytest.raises(MerkleError):
        proof_from_dict(data)
    with pytest.raises(MerkleError):
        MembershipProof.from_dict(data)
