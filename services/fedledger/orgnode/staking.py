"""The org's stake on the Staking contract, kept at ``staking.stake_wei`` from its
anchor key once it holds the tokens (a failure is retried at the next poll)."""

from __future__ import annotations

import logging

from eth_account.signers.local import LocalAccount

from fedledger.evm.config import EvmConfig
from fedledger.evm.connection import connect
from fedledger.evm.contracts import StakingClient
from fedledger.orgnode.settings import StakeSettings

log = logging.getLogger("fedledger.orgnode")


class StakeKeeper:
    def __init__(self, msp_id: str, wanted: StakeSettings | None,
                 account: LocalAccount | None) -> None:
        self.msp_id = msp_id
        self.wanted = wanted
        self.account = account
        self._staked = False

    def ensure(self) -> None:
        """Top the stake up (once; nothing without settings, a stake or a key)."""
        wanted = self.wanted
        if wanted is None or not wanted.stake_wei or self._staked or self.account is None:
            return
        try:
            chain = connect(EvmConfig(backend="rpc", rpc_url=wanted.rpc_url,
                                      chain_id=wanted.chain_id))
            staking = StakingClient(chain, wanted.address)
            missing = wanted.stake_wei - staking.stake_of(self.account.address)
            if missing > 0:
                staking.stake(self.account, missing)
                log.info("%s staked %d wei", self.msp_id, missing)
            self._staked = True
        except Exception as exc:  # noqa: BLE001 - the chain may not be up yet: retry later
            log.warning("%s could not stake yet: %s", self.msp_id, exc)
