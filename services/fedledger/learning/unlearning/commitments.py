"""Salted sorted-Merkle commitments to the sample ids of each (org, shard, slice).

Every model version has one :class:`CommitmentSet`: per (org, shard, slice) a
:class:`fedledger.merkle.SortedMerkleTree` of the sample ids that version trains on,
salted with the org's secret salt (kept by the org, shown only to auditors). After a
deletion the new version's tree no longer holds the id, so the org can prove
non-membership against the new root, and the old version's membership proof does not
verify against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fedledger.merkle import MembershipProof, MerkleError, NonMembershipProof, SortedMerkleTree

CommitmentKey = tuple[str, int, int]  # (org, shard, slice)


def org_salt(secret: str, org: str) -> bytes:
    """The default per-org salt: derived from the org's own secret (never shared)."""
    return hashlib.sha256(f"fedledger/commitment-salt/{secret}/{org}".encode()).digest()


@dataclass(frozen=True)
class CommitmentSet:
    """The commitments of one model version."""

    version: int
    trees: Mapping[CommitmentKey, SortedMerkleTree]

    def root(self, org: str, shard: int, slice_index: int) -> bytes:
        return self.trees[(org, shard, slice_index)].root

    def roots(self) -> dict[CommitmentKey, str]:
        """(org, shard, slice) -> hex root."""
        return {key: tree.root.hex() for key, tree in sorted(self.trees.items())}

    def roots_nested(self) -> dict[str, dict[str, dict[str, str]]]:
        """JSON-friendly: org -> shard -> slice -> hex root."""
        out: dict[str, dict[str, dict[str, str]]] = {}
        for (org, shard, sl), tree in sorted(self.trees.items()):
            out.setdefault(org, {}).setdefault(str(shard), {})[str(sl)] = tree.root.hex()
        return out


def build_commitments(
    version: int,
    ids: Mapping[CommitmentKey, Iterable[str]],
    salts: Mapping[str, bytes],
) -> CommitmentSet:
    trees = {key: SortedMerkleTree([sid.encode("utf-8") for sid in sids], salt=salts[key[0]])
             for key, sids in ids.items()}
    return CommitmentSet(version=version, trees=trees)


@dataclass(frozen=True)
class SampleProof:
    """A (non-)membership proof of one sample id in one version's commitment of
    (org, shard, slice). ``root`` is the root it was made against (hex)."""

    org: str
    shard: int
    slice: int
    version: int
    sample_id: str
    member: bool
    root: str
    proof: MembershipProof | NonMembershipProof = field(repr=False)

    def verify(self, salt: bytes, root: bytes | str | None = None) -> bool:
        """Check against ``root`` (default: the root the proof was made for). Verifying
        against another version's root of the same (org, shard, slice) fails unless
        that version committed the same set."""
        target = self.root if root is None else root
        target_bytes = bytes.fromhex(target) if isinstance(target, str) else target
        try:
            return self.proof.verify(self.sample_id, target_bytes, salt)
        except MerkleError:
            return False

    def to_dict(self) -> dict[str, object]:
        return {
            "org": self.org, "shard": self.shard, "slice": self.slice, "version": self.version,
            "sample_id": self.sample_id, "member": self.member, "root": self.root,
            "proof": self.proof.to_dict(),
        }


def prove(commitments: CommitmentSet, org: str, shard: int, slice_index: int, sample_id: str) -> SampleProof:
    tree = commitments.trees[(org, shard, slice_index)]
    proof = tree.prove(sample_id)
    return SampleProof(
        org=org, shard=shard, slice=slice_index, version=commitments.version, sample_id=sample_id,
        member=isinstance(proof, MembershipProof), root=tree.root.hex(), proof=proof,
    )


def verify_membership(proof: SampleProof, salt: bytes, root: bytes | str | None = None) -> bool:
    return proof.member and proof.verify(salt, root)


def verify_non_membership(proof: SampleProof, salt: bytes, root: bytes | str | None = None) -> bool:
    return (not proof.member) and proof.verify(salt, root)
