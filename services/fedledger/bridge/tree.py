"""What an anchor commits to: the leaves of a batch of rounds, and their Merkle tree.

Leaves are canonical JSON objects with a ``kind``:
- consortium records of each round in the batch: ``round``, ``submission``, ``vote``,
  ``attestation``, ``model_version``, ``unlearning_notice`` (a notice names the round
  after the last one opened when it was filed) (``{"kind", "round_id", "record"}``);
- one ``private_state`` leaf per org: the root of a Merkle tree over that org's
  private-channel records (``{"kind", "org", "channel", "root", "records"}``), so a
  private record is proven against the public anchor through two paths without
  revealing any other record, and the bridge never reads a private channel.

Leaves are sorted by their bytes, so every org that recomputes a batch from the ledger
gets the same tree whatever order the queries returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fedledger.canonical import canonical_json
from fedledger.merkle import InclusionProof, MerkleTree

# (function, *args) -> JSON value: a query on a channel's chaincode (Contract.evaluate).
Query = Callable[..., bytes]

CONSORTIUM_KINDS = ("round", "submission", "vote", "attestation", "model_version",
                    "unlearning_notice")
PRIVATE_KINDS = ("dataset", "commitment", "training_record", "deletion_request",
                 "unlearning_record", "participation_decision")


def leaf_bytes(leaf: dict[str, Any]) -> bytes:
    return canonical_json(leaf)


@dataclass(frozen=True)
class LeafTree:
    """Leaves (sorted by their canonical bytes) and the Merkle tree over them."""

    leaves: tuple[dict[str, Any], ...]
    tree: MerkleTree

    @classmethod
    def of(cls, leaves: Iterable[dict[str, Any]]) -> LeafTree:
        encoded = sorted({leaf_bytes(leaf): leaf for leaf in leaves}.items())
        return cls(tuple(leaf for _, leaf in encoded), MerkleTree([b for b, _ in encoded]))

    @property
    def root_hex(self) -> str:
        return self.tree.root.hex()

    def prove(self, leaf: dict[str, Any]) -> InclusionProof:
        target = leaf_bytes(leaf)
        for index, candidate in enumerate(self.leaves):
            if leaf_bytes(candidate) == target:
                return self.tree.prove(index)
        raise KeyError(f"leaf not in this tree: {target[:120]!r}")


def _json(raw: bytes) -> Any:
    return json.loads(raw)


def consortium_leaves(query: Query, round_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The consortium-channel records of ``round_ids``, as leaves."""
    leaves: list[dict[str, Any]] = []
    for round_id in round_ids:
        arg = str(round_id)
        leaves.append({"kind": "round", "round_id": round_id,
                       "record": _json(query("GetRound", arg))})
        for kind, function in (("submission", "ListSubmissions"), ("vote", "ListVotes"),
                               ("attestation", "ListAttestations"),
                               ("model_version", "ListModelVersions"),
                               ("unlearning_notice", "ListUnlearningNotices")):
            leaves += [{"kind": kind, "round_id": round_id, "record": record}
                       for record in _json(query(function, arg))]
    return leaves


def private_leaves(query: Query) -> list[dict[str, Any]]:
    """An org's private-channel records, as leaves (read by the org itself)."""
    leaves = [{"kind": "dataset", "record": d} for d in _json(query("ListDatasets"))]
    for dataset in leaves[:]:
        leaves += [{"kind": "commitment", "record": c}
                   for c in _json(query("ListCommitments", dataset["record"]["dataset_id"]))]
    leaves += [{"kind": "training_record", "record": t} for t in _json(query("ListTrainingRecords"))]
    requests = _json(query("ListDeletionRequests"))
    leaves += [{"kind": "deletion_request", "record": r} for r in requests]
    for request in requests:
        if request.get("status") in ("executing", "completed"):
            try:
                record = _json(query("GetUnlearningRecord", request["request_id"]))
            except Exception:  # noqa: BLE001 - a request being executed may have none yet
                continue
            leaves.append({"kind": "unlearning_record", "record": record})
    leaves += [{"kind": "participation_decision", "record": d}
               for d in _json(query("ListParticipationDecisions"))]
    return leaves


def private_state_leaf(org: str, channel: str, tree: LeafTree) -> dict[str, Any]:
    return {"kind": "private_state", "org": org, "channel": channel, "root": tree.root_hex,
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
    def build(cls, first_round: int, last_round: int, consortium: Iterable[dict[str, Any]],
              private_states: Iterable[dict[str, Any]]) -> AnchorBatch:
        return cls(first_round, last_round, LeafTree.of([*consortium, *private_states]))

    @classmethod
    def from_leaves(cls, first_round: int, last_round: int,
                    leaves: Iterable[dict[str, Any]]) -> AnchorBatch:
        return cls(first_round, last_round, LeafTree.of(leaves))
