"""An organisation's side of anchoring.

The bridge proposes a batch; each org's agent recomputes the consortium part from its
own view of the ledger, checks that its own private-state leaf is one it published, and
only then signs the EIP-712 anchor with the org's anchor key. The bridge therefore
needs no org key and never reads a private channel; a bridge that proposes a wrong
tree gets no signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from fedledger.bridge.errors import BridgeError
from fedledger.bridge.tree import consortium_leaves, private_leaves
from fedledger.evm.typed_data import anchor_typed_data, outcome_typed_data, sign_typed
from fedledger.incentives.outcome import ledger_outcome
from fedledger.ledgers import ConsortiumLedger, PrivateLedger
from fedledger.protocol.leaves import (
    AnchorBatch,
    LeafTree,
    leaf_bytes,
    private_state_leaf,
)


class AnchorStore(Protocol):
    """Where an agent keeps what it will need to prove records later: the private-state
    trees it published and the batches it signed (their leaves)."""

    def save_private_state(self, root: str, leaves: list[dict[str, Any]]) -> None: ...

    def private_state_leaves(self, root: str) -> list[dict[str, Any]] | None: ...

    def save_signed_batch(self, first_round: int, last_round: int, root: str,
                          leaves: list[dict[str, Any]]) -> None: ...


class AnchorAgent(Protocol):
    """What the bridge asks of an org's agent: this org's own (:class:`OrgAnchorAgent`) or
    one reached over HTTP (:class:`fedledger.bridge.remote.RemoteAnchorAgent`)."""

    @property
    def msp_id(self) -> str: ...

    @property
    def address(self) -> str: ...

    def private_state(self) -> dict[str, Any]: ...

    def approve(self, batch: AnchorBatch, *, chain_id: int, registry: str) -> bytes: ...

    def approve_outcome(self, round_id: int, orgs: Sequence[str], deltas: Sequence[int], *,
                        chain_id: int, staking: str) -> bytes: ...


class OrgAnchorAgent:
    """One org's anchor agent: reads its own private channel (``private``) and its own
    view of the consortium channel (``consortium``), and signs with ``account``."""

    def __init__(self, msp_id: str, *, private_channel: str, private: PrivateLedger,
                 consortium: ConsortiumLedger, account: LocalAccount,
                 store: AnchorStore | None = None) -> None:
        self.msp_id = msp_id
        self.private_channel = private_channel
        self.private = private
        self.consortium = consortium
        self.account = account
        self.store = store
        self._published: dict[str, LeafTree] = {}  # private root hex -> its tree

    @property
    def address(self) -> str:
        return self.account.address

    def private_state(self) -> dict[str, Any]:
        """Publish the digest of this org's private-channel records now."""
        tree = LeafTree.of(private_leaves(self.private))
        if tree.root_hex not in self._published and self.store is not None:
            self.store.save_private_state(tree.root_hex, list(tree.leaves))
        self._published[tree.root_hex] = tree
        return private_state_leaf(self.msp_id, self.private_channel, tree)

    def private_tree(self, root_hex: str) -> LeafTree:
        """A tree this agent published (to prove one of its private records)."""
        tree = self._published.get(root_hex)
        if tree is None and self.store is not None:
            leaves = self.store.private_state_leaves(root_hex)
            if leaves is not None:
                tree = self._published[root_hex] = LeafTree.of(leaves)
        if tree is None:
            raise BridgeError(f"{self.msp_id} did not publish private root {root_hex}",
                              step="prove")
        return tree

    def approve(self, batch: AnchorBatch, *, chain_id: int, registry: str) -> bytes:
        """Sign the batch's anchor after checking it; BridgeError says what is wrong."""
        rounds = range(batch.first_round, batch.last_round + 1)
        expected = {leaf_bytes(leaf) for leaf in consortium_leaves(self.consortium, rounds)}
        proposed = {leaf_bytes(leaf) for leaf in batch.tree.leaves if leaf["kind"] != "private_state"}
        if expected != proposed:
            raise BridgeError(
                f"{self.msp_id} refuses rounds {batch.first_round}..{batch.last_round}: "
                f"{len(proposed - expected)} leaves not on its ledger, "
                f"{len(expected - proposed)} of its ledger's leaves missing", step="approve")
        mine = [leaf for leaf in batch.tree.leaves
                if leaf["kind"] == "private_state" and leaf["org"] == self.msp_id]
        if len(mine) != 1 or not self._published_root(mine[0]["root"]):
            raise BridgeError(f"{self.msp_id} refuses: its private-state leaf is missing or "
                              "not one it published", step="approve")
        typed = anchor_typed_data(chain_id, registry, batch.first_round, batch.last_round,
                                  batch.root)
        signature = sign_typed(self.account, typed)
        if self.store is not None:
            self.store.save_signed_batch(batch.first_round, batch.last_round, batch.root_hex,
                                         list(batch.tree.leaves))
        return signature

    def approve_outcome(self, round_id: int, orgs: Sequence[str], deltas: Sequence[int], *,
                        chain_id: int, staking: str) -> bytes:
        """Sign a round's Staking outcome after recomputing it from this org's own view
        of the ledger (:func:`fedledger.incentives.outcome.ledger_outcome`)."""
        expected = ledger_outcome(self.consortium, round_id)
        proposed = ([str(o).lower() for o in orgs], [int(d) for d in deltas])
        if proposed != (list(expected.orgs), list(expected.deltas)):
            raise BridgeError(f"{self.msp_id} refuses the outcome of round {round_id}: its "
                              f"ledger gives {expected.entries()}, the bridge proposed "
                              f"{dict(zip(*proposed, strict=False))}", step="approve_outcome")
        typed = outcome_typed_data(chain_id, staking, round_id, list(expected.orgs),
                                   list(expected.deltas))
        return sign_typed(self.account, typed)

    def _published_root(self, root_hex: str) -> bool:
        try:
            self.private_tree(root_hex)
        except BridgeError:
            return False
        return True
