"""Thin typed clients of the project's contracts (``contracts/src``): AnchorRegistry and
Staking. They encode calls and decode results; signing the EIP-712 structs is
:mod:`fedledger.evm.typed_data`'s job, sending is :class:`~fedledger.evm.chain.Chain`'s.

Both contracts check signatures against a key-set COMMITMENT, so every authorised call
carries the full current key set (sorted ascending) plus the packed signature entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.types import TxReceipt

from fedledger.evm import typed_data as td
from fedledger.evm.chain import Chain

ANCHOR_REGISTRY = "AnchorRegistry"
STAKING = "Staking"


@dataclass(frozen=True)
class AnchorRecord:
    """One ``Anchored`` event: rounds ``first_round..last_round`` under ``root``."""

    first_round: int
    last_round: int
    root: bytes
    tx_hash: str
    block_number: int
    submitter: str

    def __iter__(self):  # (first, last, root, tx_hash, block_number)
        return iter((self.first_round, self.last_round, self.root, self.tx_hash, self.block_number))


@dataclass(frozen=True)
class StakeEvent:
    """A change of an org's stake: ``staked``, ``rewarded`` or ``slashed`` (round 0 for a
    deposit)."""

    kind: str
    round: int
    org: str
    amount: int
    block_number: int
    log_index: int
    tx_hash: str


def _keys(keys: Sequence[Any]) -> list[str]:
    return [to_checksum_address(k if isinstance(k, str) else k.address) for k in keys]


class _ThresholdClient:
    artifact = ""
    domain_name = ""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.contract = chain.contract(self.artifact, self.address)

    @property
    def functions(self) -> Any:
        return self.contract.functions

    def threshold(self) -> int:
        return int(self.chain.call(self.functions.threshold()))

    def keys_hash(self) -> bytes:
        """First 23 bytes of keccak256(abi.encodePacked(keys)) (the stored commitment)."""
        return bytes(self.chain.call(self.functions.keysHash()))

    def key_update_nonce(self) -> int:
        return int(self.chain.call(self.functions.keyUpdateNonce()))

    def next_round(self, block: int | str = "latest") -> int:
        return int(self.chain.call(self.functions.nextRound(), block=block))

    def current_keys(self, from_block: int | str = 0) -> list[str]:
        """The key set, rebuilt from the last ``KeySetUpdated`` event."""
        logs = self.chain.get_logs(self.contract.events.KeySetUpdated, from_block=from_block)
        return list(logs[-1]["args"]["keys"]) if logs else []

    def key_set_update_typed_data(self, new_keys: Sequence[Any], new_threshold: int,
                                  update_nonce: int | None = None) -> dict[str, Any]:
        nonce = self.key_update_nonce() if update_nonce is None else update_nonce
        return td.key_set_update_typed_data(self.chain.chain_id, self.address, self.domain_name,
                                            new_keys, new_threshold, nonce)

    def update_keys(self, new_keys: Sequence[Any], new_threshold: int, keys: Sequence[Any],
                    signatures: bytes, account: LocalAccount, **kw: Any) -> TxReceipt:
        fn = self.functions.updateKeys(_keys(new_keys), int(new_threshold), _keys(keys), bytes(signatures))
        return self.chain.transact(fn, account, **kw)


class AnchorRegistryClient(_ThresholdClient):
    artifact = ANCHOR_REGISTRY
    domain_name = td.ANCHOR_REGISTRY_DOMAIN_NAME

    def typed_data(self, first_round: int, last_round: int, root: bytes | str) -> dict[str, Any]:
        return td.anchor_typed_data(self.chain.chain_id, self.address, first_round, last_round, root)

    def anchor_call(self, first_round: int, last_round: int, root: bytes | str, keys: Sequence[Any],
                    signatures: bytes) -> Any:
        """The contract function call (for ``chain.prepare`` / exactly-once sending)."""
        raw_root = HexBytes(root)
        return self.functions.anchor(int(first_round), int(last_round), bytes(raw_root), _keys(keys),
                                     bytes(signatures))

    def anchor(self, first_round: int, last_round: int, root: bytes | str, keys: Sequence[Any],
               signatures: bytes, account: LocalAccount, **kw: Any) -> TxReceipt:
        """Anchor rounds ``first_round..last_round`` (``first_round`` must be ``next_round()``)."""
        return self.chain.transact(self.anchor_call(first_round, last_round, root, keys, signatures),
                                   account, **kw)

    def anchor_digest(self, first_round: int, last_round: int, root: bytes | str) -> bytes:
        return bytes(self.chain.call(self.functions.anchorDigest(first_round, last_round,
                                                                 bytes(HexBytes(root)))))

    def anchors(self, from_block: int | str = 0, to_block: int | str = "latest") -> list[AnchorRecord]:
        """Every ``Anchored`` event, oldest first."""
        out = []
        for ev in self.chain.get_logs(self.contract.events.Anchored, from_block=from_block,
                                      to_block=to_block):
            a = ev["args"]
            out.append(AnchorRecord(int(a["firstRound"]), int(a["lastRound"]), bytes(a["root"]),
                                    HexBytes(ev["transactionHash"]).to_0x_hex(),
                                    int(ev["blockNumber"]), a["submitter"]))
        return out


class StakingClient(_ThresholdClient):
    artifact = STAKING
    domain_name = td.STAKING_DOMAIN_NAME

    def typed_data(self, round: int, orgs: Sequence[Any], deltas: Sequence[int]) -> dict[str, Any]:  # noqa: A002
        return td.outcome_typed_data(self.chain.chain_id, self.address, round, _keys(orgs), deltas)

    def stake(self, account: LocalAccount, amount: int, **kw: Any) -> TxReceipt:
        return self.chain.transact(self.functions.stake(), account, value=int(amount), **kw)

    def fund_rewards(self, account: LocalAccount, amount: int, **kw: Any) -> TxReceipt:
        return self.chain.transact(self.functions.fundRewards(), account, value=int(amount), **kw)

    def settle_call(self, round: int, orgs: Sequence[Any], deltas: Sequence[int],  # noqa: A002
                    keys: Sequence[Any], signatures: bytes) -> Any:
        return self.functions.settle(int(round), _keys(orgs), [int(d) for d in deltas], _keys(keys),
                                     bytes(signatures))

    def settle(self, round: int, orgs: Sequence[Any], deltas: Sequence[int],  # noqa: A002
               keys: Sequence[Any], signatures: bytes, account: LocalAccount, **kw: Any) -> TxReceipt:
        """Apply round ``round``'s outcome: positive deltas reward from the pool, negative slash."""
        return self.chain.transact(self.settle_call(round, orgs, deltas, keys, signatures), account, **kw)

    def request_withdrawal(self, account: LocalAccount, amount: int, **kw: Any) -> TxReceipt:
        return self.chain.transact(self.functions.requestWithdrawal(int(amount)), account, **kw)

    def withdraw(self, account: LocalAccount, **kw: Any) -> TxReceipt:
        return self.chain.transact(self.functions.withdraw(), account, **kw)

    def stake_of(self, org: Any, block: int | str = "latest") -> int:
        return int(self.chain.call(self.functions.stakeOf(_keys([org])[0]), block=block))

    def pending_of(self, org: Any, block: int | str = "latest") -> tuple[int, int]:
        """``(amount, unlock_at)`` of the org's pending withdrawal."""
        amount, unlock_at = self.chain.call(self.functions.pendingOf(_keys([org])[0]),
                                            block=block)
        return int(amount), int(unlock_at)

    def reward_pool(self, block: int | str = "latest") -> int:
        return int(self.chain.call(self.functions.rewardPool(), block=block))

    def withdrawal_delay(self) -> int:
        return int(self.chain.call(self.functions.withdrawalDelay()))

    def history(self, from_block: int | str = 0, to_block: int | str = "latest"
                ) -> list[StakeEvent]:
        """Every ``Staked``, ``Rewarded`` and ``Slashed`` event, oldest first."""
        events = []
        for name in ("Staked", "Rewarded", "Slashed"):
            for ev in self.chain.get_logs(getattr(self.contract.events, name),
                                          from_block=from_block, to_block=to_block):
                a = ev["args"]
                events.append(StakeEvent(name.lower(), int(a.get("round", 0)), a["org"],
                                         int(a["amount"]), int(ev["blockNumber"]),
                                         int(ev["logIndex"]),
                                         HexBytes(ev["transactionHash"]).to_0x_hex()))
        return sorted(events, key=lambda e: (e.block_number, e.log_index))

    def outcome_digest(self, round: int, orgs: Sequence[Any], deltas: Sequence[int]) -> bytes:  # noqa: A002
        return bytes(self.chain.call(self.functions.outcomeDigest(int(round), _keys(orgs),
                                                                  [int(d) for d in deltas])))


def deploy_anchor_registry(chain: Chain, keys: Sequence[Any], threshold: int,
                           account: LocalAccount) -> AnchorRegistryClient:
    """Deploy AnchorRegistry with the org keys (sorted here) and the threshold m."""
    contract = chain.deploy(ANCHOR_REGISTRY, td.sorted_keys(keys), int(threshold), account=account)
    return AnchorRegistryClient(chain, contract.address)


def deploy_staking(chain: Chain, keys: Sequence[Any], threshold: int, account: LocalAccount, *,
                   withdrawal_delay_s: int = 7 * 24 * 3600) -> StakingClient:
    """Deploy Staking with the org keys (sorted here), threshold m and the withdrawal delay."""
    contract = chain.deploy(STAKING, td.sorted_keys(keys), int(threshold), int(withdrawal_delay_s),
                            account=account)
    return StakingClient(chain, contract.address)
