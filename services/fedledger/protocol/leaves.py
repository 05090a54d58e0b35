"""What an anchor commits to: the leaves of a batch of rounds, and their Merkle tree.

Leaves are canonical JSON objects with a ``kind``:

- consortium records of each round in the batch: ``round``, ``submission``, ``vote``,
  ``attestation``, ``model_version``, ``unlearning_notice`` (a notice names the round
  after the last one opened when it was filed) (``{"kind", "round_id", "record"}``);
- private-channel records of one org, the leaves of that org's private-state tree:
  ``dataset``, ``commitment``, ``training_record``, ``deletion_request``,
  ``unlearning_record``, ``participation_decision`` (``{"kind", "record"}``);
- one ``private_state`` leaf per org: the root of its private-state tree
  (``{"kind", "org", "channel", "root", "records"}``), so a private record is proven
  against the public anchor through two paths without revealing any other record.

A leaf's ``record`` is the record's JSON as the ledger stores it
(``record.model_dump(mode="json")``), so a leaf built from a parsed record has the bytes
of one built from the ledger's. Leaves are sorted by their bytes: every org that
recomputes a batch from the ledger gets the same tree whatever order its queries returned.

Pure encoding (canonical JSON and Merkle trees only): the bridge, each org's anchor agent
and an outside auditor (:mod:`fedledger.audit`) share it, without any ledger client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from fedledger.canonical import canonical_json
from fedledger.merkle import InclusionProof, MerkleTree

ConsortiumKind = Literal["round", "submission", "vote", "attestation", "model_version",
                         "unlearning_notice"]
PrivateKind = Literal["dataset", "commitment", "training_record", "deletion_request",
                      "unlearning_record", "participation_decision"]

CONSORTIUM_KINDS: tuple[ConsortiumKind, ...] = (
    "round", "submission", "vote", "attestation", "model_version", "unlearning_notice")
PRIVATE_KINDS: tuple[PrivateKind, ...] = (
    "dataset", "commitment", "training_record", "deletion_request", "unlearning_record",
    "participation_decision")
PRIVATE_STATE = "private_state"

Leaf = dict[str, Any]


def leaf_bytes(leaf: Leaf) -> bytes:
    """The bytes a leaf is hashed as: its canonical JSON."""
    return canonical_json(leaf)


def consortium_leaf(kind: ConsortiumKind, round_id: int, record: BaseModel) -> Leaf:
    """The leaf of a consortium record of round ``round_id``."""
    return {"kind": kind, "round_id": round_id, "record": record.model_dump(mode="json")}


def private_leaf(kind: PrivateKind, record: BaseModel) -> Leaf:
    """The leaf of one of an org's private-channel records."""
    return {"kind": kind, "record": record.model_dump(mode="json")}


@dataclass(frozen=True)
class LeafTree:
    """Leaves (sorted by their canonical bytes, each once) and the Merkle tree over them."""

    leaves: tuple[Leaf, ...]
    tree: MerkleTree

    @classmethod
    def of(cls, leaves: Iterable[Leaf]) -> LeafTree:
        encoded = sorted({leaf_bytes(leaf): leaf for leaf in leaves}.items())
        return cls(tuple(leaf for _, leaf in encoded), MerkleTree([b for b, _ in encoded]))

    @property
    def root_hex(self) -> str:
        return self.tree.root.hex()

    def prove(self, leaf: Leaf) -> InclusionProof:
        target = leaf_bytes(leaf)
        for index, candidate in enumerate(self.leaves):
            if leaf_bytes(candidate) == target:
                return self.tree.prove(index)
        raise KeyError(f"leaf not in this tree: {target[:120]!r}")


def private_state_leaf(org: str, channel: str, tree: LeafTree) -> Leaf:
    """The leaf that publishes ``org``'s private-state tree (its root and size)."""
    return {"kind": PRIVATE_STATE, "org": org, "channel": channel, "root": tree.root_hex,
            "records": len(tree.leaves)}


@dataclass(frozen=True)
class AnchorBatch:
    """Rounds first..last and the tree whose root is anchored for them."""

    first_round: int
    last_round: int
    tree: LeafTree

    @property
    def root(self) -> bytes:
        return self.tree.tree.root

    @property
    def root_hex(self) -> str:
        return self.tree.root_hex

    @classmethod
    def build(cls, first_round: int, last_round: int, consortium: Iterable[Leaf],
              private_states: Iterable[Leaf]) -> AnchorBatch:
        return cls(first_round, last_round, LeafTree.of([*consortium, *private_states]))

    @classmethod
    def from_leaves(cls, first_round: int, last_round: int,
                    leaves: Iterable[Leaf]) -> AnchorBatch:
        return cls(first_round, last_round, LeafTree.of(leaves))
