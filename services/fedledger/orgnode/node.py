"""The org node assembled: settings, database, ledger connection, request verifier,
anchor agent, and the round worker with its parts, each handed only what it needs.
Built once by the app's lifespan (:mod:`fedledger.orgnode.app`); no other module
imports this one.

The round worker's parts, in the order they are built: the job store
(:mod:`~fedledger.orgnode.jobstore`), the model host (:mod:`~fedledger.orgnode.modelhost`),
the evaluator, the org's training data, the participation agent, the job steps
(training, submission, voting, attestation), the job state machine
(:mod:`~fedledger.orgnode.jobs`), the deletion driver, and the poll loop
(:mod:`~fedledger.orgnode.worker`). The red-team hook (:mod:`~fedledger.orgnode.redteam`)
is installed only when the settings carry ``attack``.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

from eth_account import Account
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from fedledger.bridge.agents import OrgAnchorAgent
from fedledger.clients.coordinator import CoordinatorClient
from fedledger.fabric.msp import MSPManager
from fedledger.orgnode.attestation import Attester
from fedledger.orgnode.deletions import DeletionDriver
from fedledger.orgnode.evaluation import Evaluator, StartAccuracy
from fedledger.orgnode.jobs import JobRunner, decline_round
from fedledger.orgnode.jobstore import JobStore
from fedledger.orgnode.ledger import LedgerUnavailable, OrgLedger
from fedledger.orgnode.modelhost import ModelHost
from fedledger.orgnode.models import Policy, User
from fedledger.orgnode.participation import Participation
from fedledger.orgnode.proofstore import SqlAnchorStore
from fedledger.orgnode.redteam import RedTeamHook
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.orgnode.staking import StakeKeeper
from fedledger.orgnode.submission import SubmissionStep
from fedledger.orgnode.training import TrainingData, TrainingHook, TrainingStep
from fedledger.orgnode.voting import Voter
from fedledger.orgnode.worker import RoundWorker
from fedledger.web.database import make_engine, migrate
from fedledger.web.signing import RequestVerifier

log = logging.getLogger("fedledger.orgnode")


class OrgNode:
    def __init__(self, settings: OrgNodeSettings, *, start_worker: bool = True) -> None:
        self.settings = settings
        if settings.db_url is None or settings.private_channel is None:
            raise ValueError("settings not validated: db_url and private_channel are unset")
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
        self.stake = StakeKeeper(settings.msp_id, settings.staking, self.account)
        self.agent: OrgAnchorAgent | None = None
        private_channel = settings.private_channel
        if self.account is not None:
            self.agent = OrgAnchorAgent(
                settings.msp_id, private_channel=private_channel,
                private=self.ledger.private, consortium=self.ledger.consortium,
                account=self.account,
                store=self.anchor_store)
        self.jobs = JobStore(self.sessions, settings)
        self.worker: RoundWorker | None = None
        #: The participation agent: the round worker's (it measures the round's starting
        #: accuracy with the worker's model), or one that only reports, without a worker.
        self.participation: Participation
        if settings.coordinator_url:
            self.worker = self._round_worker(settings, settings.coordinator_url)
            self.participation = self.worker.participation
            if start_worker:
                self.worker.start()
        else:
            self.participation = Participation(settings, self.sessions, self.ledger,
                                               lambda _round: None,
                                               anchor_address=self.anchor_address)

    def _round_worker(self, settings: OrgNodeSettings, coordinator_url: str) -> RoundWorker:
        """The round worker and its parts (see module docs)."""
        client = CoordinatorClient(coordinator_url, self.ledger.identity,
                                   timeout=settings.http_timeout_s,
                                   verify=settings.coordinator_tls_ca or True)
        store, ledger, msp_id = self.jobs, self.ledger, settings.msp_id
        stopping = threading.Event()
        host = ModelHost(self.sessions, client, settings.max_update_bytes)
        evaluator = Evaluator(self.sessions, settings.data_dir)
        data = TrainingData(self.sessions, settings.data_dir, shards=settings.shards,
                            shard_key=settings.shard_key, msp_id=msp_id)
        participation = Participation(settings, self.sessions, ledger,
                                      StartAccuracy(store, host, evaluator),
                                      anchor_address=self.anchor_address)
        hook: TrainingHook | None = (RedTeamHook(settings.attack)
                                     if settings.attack is not None else None)
        runner = JobRunner(
            store=store,
            training=TrainingStep(msp_id=msp_id, store=store, data=data, host=host,
                                  evaluator=evaluator, ledger=ledger,
                                  decline=functools.partial(decline_round, client),
                                  stopping=stopping, hook=hook),
            submission=SubmissionStep(msp_id=msp_id, store=store, data=data, host=host,
                                      ledger=ledger, uploads=client,
                                      confirm_decision=participation.confirm),
            voter=Voter(msp_id=msp_id, store=store, data=data, host=host, ledger=ledger),
            attester=Attester(msp_id=msp_id, data_dir=settings.data_dir, store=store, host=host,
                              evaluator=evaluator, ledger=ledger, coordinator=client))
        deletions = DeletionDriver(settings=settings, sessions=self.sessions,
                                   dataset_lock=self.dataset_lock, ledger=ledger,
                                   coordinator=client, jobs=store, host=host)
        return RoundWorker(settings, store=store, jobs=runner, participation=participation,
                           deletions=deletions, coordinator=client,
                           events=ledger.consortium.contract.network, prepare=self._before_poll,
                           stopping=stopping)

    def _before_poll(self) -> None:
        """What the round worker makes sure of before each poll: the ledger joined
        (``Init``, registration) and the org's stake topped up."""
        self.ledger.ensure_ready(self.anchor_address)
        self.stake.ensure()

    def ensure_stake(self) -> None:
        """Top this org's stake up to ``staking.stake_wei`` (see :mod:`.staking`)."""
        self.stake.ensure()

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
