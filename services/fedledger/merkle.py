"""Merkle trees for anchoring and for salted data commitments.

Two things are built here, both on the RFC 6962 (Certificate Transparency) tree:

* :class:`MerkleTree` -- the tree the bridge anchors per round. Leaves are taken in the
  caller's order (use :func:`leaves_sorted` for order independence). An auditor holding
  one record and an :class:`InclusionProof` checks it against an anchored root with
  :func:`verify_inclusion`, seeing nothing else of the tree.
* :class:`SortedMerkleTree` -- an org's commitment to the set of sample ids of one
  (dataset, shard, slice). Leaves are sorted by a salted key commitment, so the org can
  later prove that a sample id is committed (:class:`MembershipProof`) or is not
  (:class:`NonMembershipProof`) without revealing any other id.

Encodings (fixed; any other implementation must reproduce them byte for byte)::

    leaf hash      = SHA-256(0x00 || leaf_bytes)
    interior node  = SHA-256(0x01 || left || right)
    empty root     = SHA-256(b"")
    shape          = RFC 6962 MTH: split at the largest power of two < n

    # sorted tree
    commitment(k)  = SHA-256(salt || key)                       # the sort key
    salt_id        = SHA-256(b"fedledger-salt-v1" || salt)
    value_digest   = SHA-256(value)
    leaf_bytes     = b"fedledger-sorted-leaf-v1" || salt_id || commitment || value_digest

The RFC 6962 shape never duplicates an odd node (the Bitcoin construction does, which
lets ``[a, b, c]`` and ``[a, b, c, c]`` share a root), and the 0x00/0x01 prefixes keep a
leaf from being passed off as an interior node.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedledger.errors import FedLedgerError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "InclusionProof",
    "MembershipProof",
    "MerkleError",
    "MerkleTree",
    "NeighbourLeaf",
    "NonMembershipProof",
    "SortedMerkleTree",
    "key_commitment",
    "leaf_hash",
    "leaves_sorted",
    "merkle_root",
    "node_hash",
    "proof_from_dict",
    "salt_id",
    "sorted_leaf_bytes",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_EMPTY_VALUE_DIGEST = EMPTY_ROOT  # SHA-256 of the empty value b""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_SORTED_LEAF_TAG = b"fedledger-sorted-leaf-v1"
_SALT_TAG = b"fedledger-salt-v1"
# A path longer than this would need a tree of more than 2**64 leaves.
_MAX_PATH = 64

_sha256 = hashlib.sha256
_HEX = re.compile(r"[0-9a-fA-F]*")


class MerkleError(FedLedgerError):
    """Root of every error raised by ``fedledger.merkle`` (bad input, malformed proofs)."""


# --------------------------------------------------------------------------- hashing


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || leaf)``."""
    return _sha256(_LEAF_PREFIX + bytes(leaf)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def leaves_sorted(items: Iterable[bytes]) -> list[bytes]:
    """Leaves in bytewise order, for callers whose root must not depend on input order.

    Duplicates are kept: the tree then commits to a multiset.
    """
    return sorted(_require_bytes(x, "leaf") for x in items)


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """Root of the RFC 6962 tree over ``leaves`` in the given order."""
    return MerkleTree(list(leaves)).root


# --------------------------------------------------------------------------- plain tree


def _next_level(level: bytes) -> bytes:
    """Hash adjacent pairs of a level (concatenated digests); an odd last node moves up
    unchanged, which is exactly RFC 6962's split at the largest power of two."""
    count = len(level) // HASH_SIZE
    pairs = count // 2
    width = 2 * HASH_SIZE
    base = _sha256(_NODE_PREFIX)
    out: list[bytes] = []
    append = out.append
    for off in range(0, pairs * width, width):
        h = base.copy()
        h.update(level[off:off + width])
        append(h.digest())
    if count % 2:
        append(level[-HASH_SIZE:])
    return b"".join(out)


class MerkleTree:
    """RFC 6962 Merkle tree over leaves in the caller's order.

    Every level is kept as one ``bytes`` of concatenated digests (about 64 bytes per leaf
    in all), so a million leaves take about 64 MB and proofs are read off in O(log n).
    """

    __slots__ = ("_levels", "_size")

    def __init__(self, leaves: Sequence[bytes] | Iterable[bytes]) -> None:
        base = _sha256(_LEAF_PREFIX)
        digests: list[bytes] = []
        append = digests.append
        for i, leaf in enumerate(leaves):
            if not isinstance(leaf, (bytes, bytearray, memoryview)):
                raise MerkleError(f"leaf {i} must be bytes, got {type(leaf).__name__}")
            h = base.copy()
            h.update(leaf)
            append(h.digest())
        self._size = len(digests)
        levels = [b"".join(digests)]
        del digests
        while len(levels[-1]) > HASH_SIZE:
            levels.append(_next_level(levels[-1]))
        self._levels = levels

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def __len__(self) -> int:
        return self._size

    @property
    def root(self) -> bytes:
        """The tree head; ``SHA-256(b"")`` for an empty tree."""
        if self._size == 0:
            return EMPTY_ROOT
        return self._levels[-1]

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index`` (``SHA-256(0x00 || leaf)``)."""
        self._check_index(index)
        return self._levels[0][index * HASH_SIZE:(index + 1) * HASH_SIZE]

    def prove(self, index: int) -> InclusionProof:
        """Audit path of leaf ``index``, leaf to root, as RFC 6962 PATH(m, D[n])."""
        self._check_index(index)
        path: list[bytes] = []
        i = index
        for level in self._levels[:-1]:
            count = len(level) // HASH_SIZE
            sibling = i ^ 1
            # An unpaired last node has no sibling at this level: it is carried up.
            if sibling < count:
                path.append(level[sibling * HASH_SIZE:(sibling + 1) * HASH_SIZE])
            i //= 2
        return InclusionProof(leaf_index=index, tree_size=self._size, path=tuple(path))

    def _check_index(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise MerkleError(f"leaf index must be an int, got {type(index).__name__}")
        if not 0 <= index < self._size:
            raise MerkleError(f"leaf index {index} out of range for a tree of {self._size}")


# --------------------------------------------------------------------------- inclusion


def _expected_path_length(index: int, size: int) -> int:
    """Length of the RFC 6962 audit path of leaf ``index`` in a tree of ``size``."""
    length = 0
    while size > 1:
        if index ^ 1 < size:
            length += 1
        index //= 2
        size = (size + 1) // 2
    return length


@dataclass(frozen=True)
class InclusionProof:
    """RFC 6962 audit path of one leaf: siblings from the leaf up to the root."""

    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("leaf_index", "tree_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise MerkleError(f"{name} must be a non-negative int, got {v!r}")
        path = tuple(self.path)
        for i, p in enumerate(path):
            if not isinstance(p, bytes) or len(p) != HASH_SIZE:
                raise MerkleError(f"path[{i}] must be {HASH_SIZE} bytes")
        object.__setattr__(self, "path", path)

    def verify(self, leaf: bytes, root: bytes, *, tree_size: int | None = None) -> bool:
        """True when ``leaf`` sits at ``leaf_index`` of a ``tree_size`` tree with ``root``
        (see :func:`verify_inclusion`)."""
        return verify_inclusion(leaf, self, root, tree_size=tree_size)

    def verify_hash(self, leaf_digest: bytes, root: bytes, *,
                    tree_size: int | None = None) -> bool:
        """As :meth:`verify`, from the leaf hash instead of the leaf bytes."""
        return _verify_from_hash(leaf_digest, self, root, tree_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"leaf_index", "tree_size", "path": [hex, ...]}``."""
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "path": [p.hex() for p in self.path],
        }

    @classmethod
    def from_dict(cls, data: Any) -> InclusionProof:
        """Parse :meth:`to_dict` output; raise :class:`MerkleError` if it is malformed."""
        _check_keys(data, {"leaf_index", "tree_size", "path"}, "inclusion proof")
        index = _get_int(data, "leaf_index", "inclusion proof")
        size = _get_int(data, "tree_size", "inclusion proof")
        if index >= size:
            raise MerkleError(
                f"inclusion proof: leaf_index {index} must be below tree_size {size}")
        raw = data["path"]
        if not isinstance(raw, list):
            raise MerkleError("inclusion proof: 'path' must be a list of hex strings")
        if len(raw) > _MAX_PATH:
            raise MerkleError(f"inclusion proof: path longer than {_MAX_PATH}")
        path = tuple(_hex_digest(p, f"inclusion proof: path[{i}]") for i, p in enumerate(raw))
        want = _expected_path_length(index, size)
        if len(path) != want:
            raise MerkleError(
                f"inclusion proof: path has {len(path)} hashes, leaf {index} of {size} "
                f"needs {want}")
        return cls(leaf_index=index, tree_size=size, path=path)


def verify_inclusion(leaf: bytes, proof: InclusionProof, root: bytes, *,
                     tree_size: int | None = None) -> bool:
    """Check an inclusion proof for ``leaf`` against ``root`` (RFC 9162 §2.1.3.2).

    As in RFC 6962 the root does not fix the tree size by itself: trees whose audit
    paths have the same shape (leaf 0 of 12 or of 13 leaves) verify alike. Pass the
    anchored ``tree_size`` to pin it. Returns False (never raises) for a proof that does
    not verify, including proofs whose index, size or path length are inconsistent.
    """
    if not isinstance(leaf, (bytes, bytearray, memoryview)):
        return False
    return _verify_from_hash(leaf_hash(bytes(leaf)), proof, root, tree_size)


def _verify_from_hash(digest: bytes, proof: InclusionProof, root: bytes,
                      tree_size: int | None = None) -> bool:
    if not isinstance(proof, InclusionProof) or not isinstance(root, (bytes, bytearray)):
        return False
    if tree_size is not None and proof.tree_size != tree_size:
        return False
    if proof.leaf_index >= proof.tree_size:
        return False
    fn = proof.leaf_index
    sn = proof.tree_size - 1
    r = digest
    for p in proof.path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node was the unpaired last one.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == bytes(root)


# --------------------------------------------------------------------------- sorted tree


def key_commitment(key: bytes | str, salt: bytes = b"") -> bytes:
    """``SHA-256(salt || key)``: the sort key of ``key`` in a :class:`SortedMerkleTree`.

    ``str`` keys are taken as UTF-8.
    """
    return _sha256(_require_bytes(salt, "salt") + _key_bytes(key)).digest()


def salt_id(salt: bytes) -> bytes:
    """``SHA-256("fedledger-salt-v1" || salt)``, written into every sorted leaf.

    It binds the root to one salt: without it a prover could pick another salt under
    which an excluded key falls into a gap and "prove" its absence.
    """
    return _sha256(_SALT_TAG + _require_bytes(salt, "salt")).digest()


def sorted_leaf_bytes(salt_digest: bytes, commitment: bytes, value_digest: bytes) -> bytes:
    """Leaf bytes of a sorted tree: tag || salt_id || commitment || SHA-256(value).

    Fixed-width fields after a fixed tag make the encoding unambiguous, and the tag keeps
    it apart from the canonical-JSON records of plain trees.
    """
    return _SORTED_LEAF_TAG + salt_digest + commitment + value_digest


class SortedMerkleTree:
    """Salted commitment to a set of keys (or a key -> value map) with (non-)membership
    proofs.

    Leaves are sorted by ``SHA-256(salt || key)``, not by the raw key, so the two
    neighbours shown in a non-membership proof appear only as salted hashes (and the
    digests of their values). A verifier needs the salt to check a proof for one key;
    hiding then rests on the keys being unguessable to whoever holds the salt, so reveal
    it only to auditors. Soundness of non-membership assumes the committer built the
    root with this class (leaves strictly sorted), which is what the anchored record
    attests.
    """

    __slots__ = ("_commitments", "_salt", "_salt_id", "_tree", "_values")

    def __init__(self, entries: Mapping[bytes, bytes] | Iterable[bytes], *,
                 salt: bytes = b"") -> None:
        self._salt = _require_bytes(salt, "salt")
        self._salt_id = salt_id(self._salt)
        salted = _sha256(self._salt)

        def commit(key: Any) -> bytes:
            h = salted.copy()
            # Plain bytes skip the conversion helper: this runs once per sample id.
            h.update(key if type(key) is bytes else _key_bytes(key))
            return h.digest()

        values: dict[bytes, bytes] | None = None
        if isinstance(entries, Mapping):
            values = {}
            for key, value in entries.items():
                values[commit(key)] = _require_bytes(value, "value")
            unique: Collection[bytes] = values
            # A Mapping may still hold one key twice, as str and as its UTF-8 bytes.
            count = len(entries)
        else:
            committed = [commit(k) for k in entries]
            unique = set(committed)
            count = len(committed)
        if len(unique) != count:
            raise MerkleError(
                f"duplicate key in entries ({count} keys, {len(unique)} distinct)")
        self._commitments = sorted(unique)
        # An id set (no values) is the common case: every leaf then shares one digest.
        self._values = values
        prefix = _SORTED_LEAF_TAG + self._salt_id
        if values is None:
            suffix = _EMPTY_VALUE_DIGEST
            leaves = [prefix + c + suffix for c in self._commitments]
        else:
            leaves = [prefix + c + _sha256(values[c]).digest() for c in self._commitments]
        self._tree = MerkleTree(leaves)

    @property
    def root(self) -> bytes:
        """The commitment to publish; ``SHA-256(b"")`` for an empty set."""
        return self._tree.root

    @property
    def size(self) -> int:
        """Number of keys."""
        return self._tree.size

    def __len__(self) -> int:
        return self._tree.size

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (bytes, str)):
            return False
        return self._find(key)[1]

    def prove(self, key: bytes | str) -> MembershipProof | NonMembershipProof:
        """Membership proof if ``key`` is committed, else a non-membership proof."""
        index, present = self._find(key)
        if present:
            return self._membership(index)
        return self._non_membership(index)

    def prove_membership(self, key: bytes | str) -> MembershipProof:
        """Proof that ``key`` is committed; raise :class:`MerkleError` if it is not."""
        index, present = self._find(key)
        if not present:
            raise MerkleError("key is not committed: no membership proof exists")
        return self._membership(index)

    def prove_non_membership(self, key: bytes | str) -> NonMembershipProof:
        """Proof that ``key`` is not committed; raise :class:`MerkleError` if it is."""
        index, present = self._find(key)
        if present:
            raise MerkleError("key is committed: no non-membership proof exists")
        return self._non_membership(index)

    def _find(self, key: bytes | str) -> tuple[int, bool]:
        c = key_commitment(key, self._salt)
        i = bisect_left(self._commitments, c)
        return i, i < len(self._commitments) and self._commitments[i] == c

    def _value(self, commitment: bytes) -> bytes:
        return b"" if self._values is None else self._values[commitment]

    def _membership(self, index: int) -> MembershipProof:
        value = self._value(self._commitments[index])
        return MembershipProof(value=value, inclusion=self._tree.prove(index))

    def _neighbour(self, index: int) -> NeighbourLeaf:
        c = self._commitments[index]
        return NeighbourLeaf(commitment=c, value_digest=_sha256(self._value(c)).digest(),
                             inclusion=self._tree.prove(index))

    def _non_membership(self, insert_at: int) -> NonMembershipProof:
        n = self._tree.size
        left = self._neighbour(insert_at - 1) if insert_at > 0 else None
        right = self._neighbour(insert_at) if insert_at < n else None
        return NonMembershipProof(tree_size=n, left=left, right=right)


@dataclass(frozen=True)
class MembershipProof:
    """The key's leaf is in the tree: its value and the leaf's inclusion proof."""

    value: bytes
    inclusion: InclusionProof

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise MerkleError(f"value must be bytes, got {type(self.value).__name__}")
        if not isinstance(self.inclusion, InclusionProof):
            raise MerkleError("inclusion must be an InclusionProof")

    def verify(self, key: bytes | str, root: bytes, salt: bytes = b"") -> bool:
        """True when ``key`` (with :attr:`value`) is committed under ``root`` and ``salt``."""
        try:
            c = key_commitment(key, salt)
            leaf = sorted_leaf_bytes(salt_id(salt), c, _sha256(self.value).digest())
        except (MerkleError, TypeError):
            return False
        return verify_inclusion(leaf, self.inclusion, root)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "membership", "value": hex, "inclusion": {...}}``."""
        return {"type": "membership", "value": self.value.hex(),
                "inclusion": self.inclusion.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> MembershipProof:
        """Parse :meth:`to_dict` output; raise :class:`MerkleError` if it is malformed."""
        _check_keys(data, {"type", "value", "inclusion"}, "membership proof")
        if data["type"] != "membership":
            raise MerkleError(f"membership proof: type must be 'membership', "
                              f"got {data['type']!r}")
        value = _hex_bytes(data["value"], "membership proof: value")
        return cls(value=value, inclusion=InclusionProof.from_dict(data["inclusion"]))


@dataclass(frozen=True)
class NeighbourLeaf:
    """A leaf shown in a non-membership proof: only hashes, never the raw key or value."""

    commitment: bytes
    value_digest: bytes
    inclusion: InclusionProof

    def __post_init__(self) -> None:
        for name in ("commitment", "value_digest"):
            v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) != HASH_SIZE:
                raise MerkleError(f"neighbour {name} must be {HASH_SIZE} bytes")

    def verify(self, salt_digest: bytes, root: bytes, tree_size: int) -> bool:
        """True when this leaf is in the ``tree_size`` tree with ``root``."""
        if self.inclusion.tree_size != tree_size:
            return False
        leaf = sorted_leaf_bytes(salt_digest, self.commitment, self.value_digest)
        return verify_inclusion(leaf, self.inclusion, root)

    def to_dict(self) -> dict[str, Any]:
        """``{"commitment": hex, "value_digest": hex, "inclusion": {...}}``."""
        return {"commitment": self.commitment.hex(), "value_digest": self.value_digest.hex(),
                "inclusion": self.inclusion.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, what: str = "neighbour") -> NeighbourLeaf:
        """Parse :meth:`to_dict` output; raise :class:`MerkleError` if it is malformed."""
        _check_keys(data, {"commitment", "value_digest", "inclusion"}, what)
        return cls(commitment=_hex_digest(data["commitment"], f"{what}: commitment"),
                   value_digest=_hex_digest(data["value_digest"], f"{what}: value_digest"),
                   inclusion=InclusionProof.from_dict(data["inclusion"]))


@dataclass(frozen=True)
class NonMembershipProof:
    """The key's commitment falls strictly between two adjacent leaves (or before the
    first, after the last, or the tree is empty)."""

    tree_size: int
    left: NeighbourLeaf | None
    right: NeighbourLeaf | None

    def __post_init__(self) -> None:
        if (isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int)
                or self.tree_size < 0):
            raise MerkleError(f"tree_size must be a non-negative int, got {self.tree_size!r}")

    def verify(self, key: bytes | str, root: bytes, salt: bytes = b"") -> bool:
        """True when ``key`` is provably absent from the set committed by ``root``."""
        try:
            c = key_commitment(key, salt)
            sid = salt_id(salt)
        except (MerkleError, TypeError):
            return False
        left, right, n = self.left, self.right, self.tree_size
        if n == 0:
            return left is None and right is None and root == EMPTY_ROOT
        if left is None and right is None:
            return False
        if left is not None:
            if not left.commitment < c or not left.verify(sid, root, n):
                return False
        if right is not None:
            if not c < right.commitment or not right.verify(sid, root, n):
                return False
        # Adjacency is what rules out a leaf hidden between the two bracketing ones.
        if left is not None and right is not None:
            return right.inclusion.leaf_index == left.inclusion.leaf_index + 1
        if left is None:
            assert right is not None
            return right.inclusion.leaf_index == 0
        return left.inclusion.leaf_index == n - 1

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "non-membership", "tree_size": n, "left": {...}|None,
        "right": {...}|None}``."""
        return {"type": "non-membership", "tree_size": self.tree_size,
                "left": None if self.left is None else self.left.to_dict(),
                "right": None if self.right is None else self.right.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> NonMembershipProof:
        """Parse :meth:`to_dict` output; raise :class:`MerkleError` if it is malformed."""
        what = "non-membership proof"
        _check_keys(data, {"type", "tree_size", "left", "right"}, what)
        if data["type"] != "non-membership":
            raise MerkleError(f"{what}: type must be 'non-membership', got {data['type']!r}")
        size = _get_int(data, "tree_size", what)
        sides = {}
        for side in ("left", "right"):
            raw = data[side]
            sides[side] = None if raw is None else NeighbourLeaf.from_dict(
                raw, f"{what}: {side}")
        if size == 0 and (sides["left"] or sides["right"]):
            raise MerkleError(f"{what}: an empty tree has no neighbours")
        if size > 0 and sides["left"] is None and sides["right"] is None:
            raise MerkleError(f"{what}: a non-empty tree needs at least one neighbour")
        for side, nb in sides.items():
            if nb is not None and nb.inclusion.tree_size != size:
                raise MerkleError(f"{what}: {side} inclusion tree_size "
                                  f"{nb.inclusion.tree_size} differs from {size}")
        return cls(tree_size=size, left=sides["left"], right=sides["right"])


def proof_from_dict(data: Any) -> MembershipProof | NonMembershipProof:
    """Parse either sorted-tree proof by its ``"type"``."""
    if not isinstance(data, Mapping):
        raise MerkleError(f"proof must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind == "membership":
        return MembershipProof.from_dict(data)
    if kind == "non-membership":
        return NonMembershipProof.from_dict(data)
    raise MerkleError(f"proof type must be 'membership' or 'non-membership', got {kind!r}")


# --------------------------------------------------------------------------- helpers


def _require_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, bytes):
        raise MerkleError(f"{what} must be bytes, got {type(value).__name__}")
    return value


def _key_bytes(key: Any) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    return _require_bytes(key, "key")


def _check_keys(data: Any, keys: set[str], what: str) -> None:
    if not isinstance(data, Mapping):
        raise MerkleError(f"{what} must be a JSON object, got {type(data).__name__}")
    missing = keys - set(data)
    if missing:
        raise MerkleError(f"{what}: missing field(s) {sorted(missing)}")
    extra = set(data) - keys
    if extra:
        raise MerkleError(f"{what}: unknown field(s) {sorted(map(str, extra))}")


def _get_int(data: Mapping[str, Any], name: str, what: str) -> int:
    v = data[name]
    # bool is an int in Python but never a valid index or size in a proof.
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise MerkleError(f"{what}: '{name}' must be a non-negative integer, got {v!r}")
    return v


def _hex_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MerkleError(f"{what} must be a hex string, got {type(value).__name__}")
    # fromhex would also take spaces; a proof has exactly one spelling of each hash.
    if len(value) % 2 or not _HEX.fullmatch(value):
        raise MerkleError(f"{what} is not valid hex")
    return bytes.fromhex(value)


def _hex_digest(value: Any, what: str) -> bytes:
    raw = _hex_bytes(value, what)
    if len(raw) != HASH_SIZE:
        raise MerkleError(f"{what} must be {HASH_SIZE} bytes ({2 * HASH_SIZE} hex chars), "
                          f"got {len(raw)}")
    return raw
