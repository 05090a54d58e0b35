"""The coordinator's read-only view of the Staking contract: the stakes the validator
committee is drawn by, and the stakes and their history the API shows. Every org's
stake is keyed by its anchor address as registered on the consortium channel."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from fedledger.evm.config import EvmConfig
from fedledger.evm.connection import connect
from fedledger.evm.contracts import StakingClient

from .settings import StakingSettings


class Stakes:
    def __init__(self, settings: StakingSettings) -> None:
        self.settings = settings
        self._client: StakingClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> StakingClient:
        with self._lock:
            if self._client is None:
                chain = connect(EvmConfig(backend="rpc", rpc_url=self.settings.rpc_url,
                                          chain_id=self.settings.chain_id))
                self._client = StakingClient(chain, self.settings.address)
            return self._client

    def weights(self, addresses: Mapping[str, str]) -> tuple[dict[str, int], int]:
        """Each org's stake (wei) at the latest block, and that block's number: what the
        validators are drawn by (anyone can read the same stakes at that block)."""
        client = self.client
        block = client.chain.block_number()
        stakes = {org: client.stake_of(address, block) for org, address in sorted(addresses.items())}
        return stakes, block

    def view(self, addresses: Mapping[str, str]) -> dict[str, Any]:
        """Stakes, pending withdrawals, history and the next round to settle, all read at
        one block, so they agree with each other (a settlement landing in between would
        otherwise show in some and not in others)."""
        client = self.client
        chain = client.chain
        block = chain.block_number()
        by_address = {a.lower(): org for org, a in addresses.items()}
        history: dict[str, list[dict[str, Any]]] = {org: [] for org in addresses}
        for event in client.history(to_block=block):
            org = by_address.get(event.org.lower())
            if org is not None:
                history[org].append({"kind": event.kind, "round_id": event.round,
                                     "amount_wei": str(event.amount),
                                     "block_number": event.block_number,
                                     "tx_hash": event.tx_hash})
        orgs = {}
        for org, address in sorted(addresses.items()):
            pending, unlock_at = client.pending_of(address, block)
            orgs[org] = {"address": address, "stake_wei": str(client.stake_of(address, block)),
                         "pending_withdrawal_wei": str(pending), "unlock_at": unlock_at,
                         "history": history[org]}
        return {"staking": client.address, "chain_id": chain.chain_id, "block": block,
                "reward_pool_wei": str(client.reward_pool(block)),
                "next_round_to_settle": client.next_round(block), "orgs": orgs}
