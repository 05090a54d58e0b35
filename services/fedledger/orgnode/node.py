"""Everything one running org node holds: settings, database, ledger connection, request
verifier, anchor agent and round worker. Built once by the app's lifespan."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from eth_account import Account
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from fedledger.bridge.agents import OrgAnchorAgent
from fedledger.fabric.msp import MSPManager
from fedledger.orgnode.client import CoordinatorClient
from fedledger.orgnode.ledger import LedgerUnavailable, OrgLedger
from fedledger.orgnode.models import Policy, User
from fedledger.orgnode.proofstore import SqlAnchorStore
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.orgnode.worker import RoundWorker
from fedledger.web.database import make_engine, migrate
from fedledger.web.signing import RequestVerifier

log = logging.getLogger("fedledger.orgnode")


class OrgNode:
    def __init__(self, settings: OrgNodeSettings, *, start_worker: bool = True) -> None:
        self.settings = settings
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.db_url)
        migrate(self.engine, "fedledger.orgnode")
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.dataset_lock = threading.Lock()
        self._bootstrap()
        self.ledger = OrgLedger(settings)
        key = settings.anchor_key()
        self.account = Account.from_key(key.get_secret_value()) if key is not None else None
        del key
        try:
            self.ledger.ensure_ready(self.anchor_address)
        except LedgerUnavailable as exc:  # the worker and the API retry it later
            log.warning("org node %s: %s", settings.msp_id, exc.message)
        self.anchor_store = SqlAnchorStore(self.sessions)
        self.verifier = (RequestVerifier(MSPManager.from_dirs(settings.msp_dirs))
                         if settings.msp_dirs else None)
        self._staked = False
        self.agent = None
        if self.account is not None:
            self.agent = OrgAnchorAgent(
                settings.msp_id, private_channel=settings.private_channel,
                private_query=self.ledger.private.evaluate,
                consortium_query=self.ledger.consortium.evaluate, account=self.account,
                store=self.anchor_store)
        self.worker: RoundWorker | None = None
        if settings.coordinator_url:
            client = CoordinatorClient(settings.coordinator_url, self.ledger.identity,
                                       timeout=settings.http_timeout_s)
            self.worker = RoundWorker(self, client)
            if start_worker:
                self.worker.start()

    def ensure_stake(self) -> None:
        """Top this org's stake up to ``staking.stake_wei`` from its anchor key (once it
        holds it; a failure is retried at the next poll)."""
        wanted = self.settings.staking
        if wanted is None or not wanted.stake_wei or self._staked or self.account is None:
            return
        from fedledger.evm.backends import connect
        from fedledger.evm.config import EvmConfig
        from fedledger.evm.contracts import StakingClient

        try:
            chain = connect(EvmConfig(backend="rpc", rpc_url=wanted.rpc_url,
                                      chain_id=wanted.chain_id))
            staking = StakingClient(chain, wanted.address)
            missing = wanted.stake_wei - staking.stake_of(self.account.address)
            if missing > 0:
                staking.stake(self.account, missing)
                log.info("%s staked %d wei", self.settings.msp_id, missing)
            self._staked = True
        except Exception as exc:  # noqa: BLE001 - the chain may not be up yet: retry later
            log.warning("%s could not stake yet: %s", self.settings.msp_id, exc)

    @property
    def anchor_address(self) -> str | None:
        return None if self.account is None else self.account.address

    def _bootstrap(self) -> None:
        """The policy row, and the admin whose token hash the settings carry."""
        with self.sessions() as session:
            if session.get(Policy, 1) is None:
                session.add(Policy(id=1, mode="always", rounds=[]))
            wanted = self.settings.bootstrap_admin_token_sha256
            if wanted and session.scalar(select(User).where(User.token_sha256 == wanted)) is None:
                name = self.settings.bootstrap_admin_name
                if session.scalar(select(User).where(User.name == name)) is not None:
                    name = f"{name}-{wanted[:8]}"
                session.add(User(name=name, role="admin", token_sha256=wanted))
            session.commit()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.ledger.close()
        self.engine.dispose()
