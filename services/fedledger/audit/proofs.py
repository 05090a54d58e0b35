"""Proof packages: one record, the Merkle paths to an anchored root, and where that
root was anchored. A package is JSON; ``fedledger verify`` checks it against the
public chain alone (see :mod:`fedledger.audit.verify`).

- A consortium record (``round``, ``submission``, ``vote``, ``attestation``,
  ``model_version``) is a leaf of the anchor's tree: one path.
- A private record (``dataset``, ``deletion_request``, ``unlearning_record``, ...) is a
  leaf of its org's private-state tree, whose root is a ``private_state`` leaf of the
  anchor's tree: two paths. Nothing else of the org's private channel is revealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from fedledger.protocol.leaves import CONSORTIUM_KINDS, PRIVATE_KINDS, LeafTree
from fedledger.protocol.records import AnchorReceipt

HEX64 = r"^[0-9a-f]{64}$"
#: Anchor statuses past the chain's confirmations (``fedledger.bridge.outbox.AnchorStatus``).
ANCHORED = ("confirmed", "recorded")


class StoredAnchor(Protocol):
    """An anchor as the bridge's outbox keeps it (``fedledger.bridge.outbox.Anchor``):
    what a proof needs of it, without the ORM."""

    @property
    def first_round(self) -> int: ...
    @property
    def last_round(self) -> int: ...
    @property
    def root(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def tx_hash(self) -> str | None: ...
    @property
    def block_number(self) -> int | None: ...
    @property
    def leaves(self) -> Sequence[dict[str, Any]]: ...


class AnchorRef(BaseModel):
    """Where a root was anchored."""

    model_config = ConfigDict(extra="forbid")

    first_round: int = Field(ge=1)
    last_round: int = Field(ge=1)
    root: str = Field(pattern=HEX64)
    chain_id: int = Field(ge=1)
    contract: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    tx_hash: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    block_number: int = Field(ge=0)


class PrivatePath(BaseModel):
    """The org's private-state leaf and the record's path to its root."""

    model_config = ConfigDict(extra="forbid")

    state: dict[str, Any]          # the private_state leaf (org, channel, root, records)
    proof: dict[str, Any]          # InclusionProof.to_dict() of the record in that tree


class ProofPackage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    record: dict[str, Any]         # the leaf: {"kind", ..., "record": {...}}
    private: PrivatePath | None = None
    proof: dict[str, Any]          # path of the record (or its private_state leaf) to root
    anchor: AnchorRef


def anchor_ref(anchor: StoredAnchor, *, chain_id: int, contract: str) -> AnchorRef:
    if (anchor.status not in ANCHORED or anchor.tx_hash is None
            or anchor.block_number is None):
        raise ValueError(f"rounds {anchor.first_round}..{anchor.last_round} are not anchored "
                         f"yet (status {anchor.status})")
    tx_hash = anchor.tx_hash if anchor.tx_hash.startswith("0x") else "0x" + anchor.tx_hash
    return AnchorRef(first_round=anchor.first_round, last_round=anchor.last_round,
                     root=anchor.root, chain_id=chain_id, contract=contract,
                     tx_hash=tx_hash.lower(), block_number=anchor.block_number)


def receipt_ref(receipt: AnchorReceipt) -> AnchorRef:
    """The :class:`AnchorRef` of an ``AnchorReceipt`` record of the consortium channel."""
    return AnchorRef(first_round=receipt.first_round, last_round=receipt.last_round,
                     root=receipt.merkle_root, chain_id=receipt.chain_id,
                     contract=receipt.contract_address, tx_hash=receipt.tx_hash,
                     block_number=receipt.block_number)


def consortium_package(leaves: list[dict[str, Any]], ref: AnchorRef,
                       leaf: dict[str, Any]) -> ProofPackage:
    """The package of a consortium record ``leaf`` of an anchored batch's ``leaves``."""
    if leaf.get("kind") not in CONSORTIUM_KINDS:
        raise ValueError(f"not a consortium record leaf: kind {leaf.get('kind')!r}")
    tree = LeafTree.of(leaves)
    if tree.root_hex != ref.root:
        raise ValueError("the leaves are not those of the anchored root")
    return ProofPackage(record=leaf, proof=tree.prove(leaf).to_dict(), anchor=ref)


def private_package(leaves: list[dict[str, Any]], ref: AnchorRef, leaf: dict[str, Any],
                    private_tree: LeafTree, state_leaf: dict[str, Any]) -> ProofPackage:
    """The package of a private record ``leaf``: its path to the org's private-state root
    (``private_tree``, published as ``state_leaf``), and that leaf's path to the anchor."""
    if leaf.get("kind") not in PRIVATE_KINDS:
        raise ValueError(f"not a private record leaf: kind {leaf.get('kind')!r}")
    if state_leaf.get("root") != private_tree.root_hex:
        raise ValueError("the private-state leaf is not the root of the given private tree")
    tree = LeafTree.of(leaves)
    if tree.root_hex != ref.root:
        raise ValueError("the leaves are not those of the anchored root")
    return ProofPackage(
        record=leaf,
        private=PrivatePath(state=state_leaf, proof=private_tree.prove(leaf).to_dict()),
        proof=tree.prove(state_leaf).to_dict(), anchor=ref)


def consortium_proof(anchor: StoredAnchor, leaf: dict[str, Any], *, chain_id: int,
                     contract: str) -> ProofPackage:
    return consortium_package(list(anchor.leaves), anchor_ref(anchor, chain_id=chain_id,
                                                        contract=contract), leaf)


def private_proof(anchor: StoredAnchor, leaf: dict[str, Any], private_tree: LeafTree,
                  state_leaf: dict[str, Any], *, chain_id: int, contract: str) -> ProofPackage:
    return private_package(list(anchor.leaves), anchor_ref(anchor, chain_id=chain_id,
                                                     contract=contract),
                           leaf, private_tree, state_leaf)
