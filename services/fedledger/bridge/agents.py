"""An organisation's side of anchoring.

The bridge proposes a batch; each org's agent recomputes the consortium part from its
own view of the ledger, checks that its own private-state leaf is one it published, and
only then signs the EIP-712 anchor with the org's anchor key. The bridge therefore
needs no org key and never reads a private channel; a bridge that proposes a wrong
tree gets no signatures.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.bridge.errors import BridgeError
from fedledger.bridge.tree import (
    AnchorBatch,
    LeafTree,
    Query,
    consortium_leaves,
    leaf_bytes,
    private_leaves,
    private_state_leaf,
)
from fedledger.evm.typed_data import anchor_typed_data, sign_typed


class OrgAnchorAgent:
    def __init__(self, msp_id: str, *, private_channel: str, private_query: Query,
                 consortium_query: Query, account: LocalAccount) -> None:
        self.msp_id = msp_id
        self.private_channel = private_channel
        self._private_query = private_query
        self._consortium_query = consortium_query
        self.account = account
        self._published: dict[str, LeafTree] = {}  # private root hex -> its tree

    @property
    def address(self) -> str:
        return self.account.address

    def private_state(self) -> dict[str, Any]:
        """Publish the digest of this org's private-channel records now."""
        tree = LeafTree.of(private_leaves(self._private_query))
        self._published[tree.root_hex] = tree
        return private_state_leaf(self.msp_id, self.private_channel, tree)

    def private_tree(self, root_hex: str) -> LeafTree:
        """A tree this agent published (to prove one of its private records)."""
        try:
            return self._published[root_hex]
        except KeyError:
            raise BridgeError(f"{self.msp_id} did not publish private root {root_hex}",
                              step="prove") from None

    def approve(self, batch: AnchorBatch, *, chain_id: int, registry: str) -> bytes:
        """Sign the batch's anchor after checking it; BridgeError says what is wrong."""
        rounds = range(batch.first_round, batch.last_round + 1)
        expected = {leaf_bytes(leaf) for leaf in consortium_leaves(self._consortium_query, rounds)}
        proposed = {leaf_bytes(leaf) for leaf in batch.tree.leaves if leaf["kind"] != "private_state"}
        if expected != proposed:
            raise BridgeError(
                f"{self.msp_id} refuses rounds {batch.first_round}..{batch.last_round}: "
                f"{len(proposed - expected)} leaves not on its ledger, "
                f"{len(expected - proposed)} of its ledger's leaves missing", step="approve")
        mine = [leaf for leaf in batch.tree.leaves
                if leaf["kind"] == "private_state" and leaf["org"] == self.msp_id]
        if len(mine) != 1 or mine[0]["root"] not in self._published:
            raise BridgeError(f"{self.msp_id} refuses: its private-state leaf is missing or "
                              "not one it published", step="approve")
        typed = anchor_typed_data(chain_id, registry, batch.first_round, batch.last_round,
                                  batch.root)
        return sign_typed(self.account, typed)
