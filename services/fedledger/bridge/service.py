"""The bridge: from final consortium rounds to anchors on the public chain, exactly once.

1. An event follower reads the consortium chaincode's events from a stored checkpoint and
   records every ``AggregateFinal`` round (event and checkpoint in one SQL transaction).
2. When ``batch_rounds`` consecutive rounds are final (and settled: their model version
   registered, see ``settle_s``), a batch is built — consortium leaves of those rounds
   plus each org's published private-state leaf — and stored. A round that never became
   final before a later final one (it failed) is anchored as the ledger holds it.
3. Org agents check and sign it (m-of-n, EIP-712).
4. The anchor transaction is signed and stored, then broadcast; after N confirmations
   the receipt (tx hash, block, root) is recorded on the consortium channel.

Each step is written to the outbox before the next begins, so a bridge killed anywhere
and restarted, or facing an RPC outage, resumes without anchoring anything twice.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict, Field

from fedledger.bridge.agents import AnchorAgent
from fedledger.bridge.errors import BridgeError
from fedledger.bridge.outbox import Anchor, AnchorStatus, FinalRound, Outbox
from fedledger.bridge.tree import consortium_leaves
from fedledger.evm.chain import Chain, PreparedTx
from fedledger.evm.contracts import AnchorRegistryClient, StakingClient
from fedledger.evm.errors import EvmError
from fedledger.evm.typed_data import pack_signatures
from fedledger.fabric.errors import FabricError
from fedledger.fabric.events import ChaincodeEvents
from fedledger.fabric.gateway import Network
from fedledger.incentives.outcome import ledger_outcome
from fedledger.ledgers import ConsortiumLedger
from fedledger.loop import BackgroundLoop
from fedledger.protocol.leaves import AnchorBatch
from fedledger.protocol.records import AnchorReceipt
from fedledger.web.metrics import ANCHOR_GAS, ANCHOR_SECONDS, ANCHORS, observe_ledger_call

log = logging.getLogger(__name__)
CHECKPOINT = "consortium-events"


class BridgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_rounds: int = Field(default=1, ge=1, le=10_000, description="rounds per anchor")
    confirmations: int = Field(default=1, ge=0, description="blocks before an anchor counts")
    chaincode: str = "fedledger"
    channel: str = "consortium"
    poll_interval_s: float = Field(default=0.5, gt=0)
    settle_s: float = Field(
        default=0.0, ge=0, description="how long a final round may wait for its model version to be "
        "registered before it is batched anyway (0: never wait); a later round opening ends "
        "the wait too. The services use it so a round's anchor covers its model version.")


@dataclass(frozen=True)
class FinalRoundEvent:
    round_id: int
    aggregate_digest: str
    block_number: int
    tx_id: str


#: Events after which a round may be ready to anchor.
WAKE_EVENTS = frozenset({"AggregateFinal", "ModelVersionRegistered", "UnlearningNotice"})


class EventFollower:
    """Reads consortium chaincode events in a thread, from the outbox's checkpoint."""

    def __init__(self, network: Network, chaincode: str, outbox: Outbox,
                 wake: threading.Event | None = None) -> None:
        self.network = network
        self.chaincode = chaincode
        self.outbox = outbox
        self.wake = wake or threading.Event()
        self._events: ChaincodeEvents | None = None
        self.errors: queue.Queue[Exception] = queue.Queue()
        # Follow from the checkpoint; when the stream ends, at once again from there.
        self._loop = BackgroundLoop(self._follow, name="bridge-events", interval_s=0,
                                    on_error=self._failed, on_stop=self._close, join_s=10)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _close(self) -> None:
        if self._events is not None:
            self._events.close()

    def _follow(self) -> None:
        checkpoint = self.outbox.checkpoint(CHECKPOINT)
        start, after = (checkpoint if checkpoint else (0, ""))
        events = self._events = self.network.chaincode_events(
            self.chaincode, start_block=start, after_tx_id=after or None)
        for event in events:
            self._record(event)
            if self._loop.stopping:
                return

    def _failed(self, exc: Exception) -> float:
        if isinstance(exc, FabricError):  # peer restarting: resume from the checkpoint
            self.errors.put(exc)
        else:
            log.error("bridge event follower failed; resuming from the checkpoint",
                      exc_info=exc)
        return 1.0

    def _record(self, event) -> None:  # noqa: ANN001 - gateway.ChaincodeEvent
        with self.outbox.session() as session:
            if event.event_name == "AggregateFinal":
                payload = json.loads(event.payload)
                if session.get(FinalRound, payload["round_id"]) is None:
                    session.add(FinalRound(round_id=payload["round_id"],
                                           aggregate_digest=payload["aggregate_digest"]))
            self.outbox.save_checkpoint(session, CHECKPOINT, event.block_number, event.tx_id)
        if event.event_name in WAKE_EVENTS:
            self.wake.set()


class Bridge:
    def __init__(self, settings: BridgeSettings, *, consortium: ConsortiumLedger, chain: Chain,
                 registry: AnchorRegistryClient, submitter: LocalAccount,
                 agents: Sequence[AnchorAgent], keys: Sequence[str], threshold: int,
                 outbox: Outbox, staking: StakingClient | None = None) -> None:
        self.settings = settings
        self.consortium = consortium
        self.chain = chain
        self.registry = registry
        self.submitter = submitter
        self.agents = agents
        self.keys = keys
        self.threshold = threshold
        self.outbox = outbox
        self.staking = staking
        self.last_error: str | None = None
        # Set by the follower when a round went final or got its model version, so the
        # next step batches it at once instead of at the next poll.
        self.wake = threading.Event()
        self.follower = EventFollower(consortium.contract.network, settings.chaincode, outbox,
                                      self.wake)

    # ------------------------------------------------------------------ driving

    def start(self) -> None:
        self.follower.start()

    def stop(self) -> None:
        self.wake.set()  # a run() waiting for work sees its stop event at once
        self.follower.stop()

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set. Every failure is retried at the next step -- RPC
        outages, a peer restarting, an org node down or refusing: the outbox holds where
        each anchor is -- and the latest is kept in :attr:`last_error` (logged once per
        distinct message, not every poll)."""
        self.loop(stop).run()

    def loop(self, stop: threading.Event) -> BackgroundLoop:
        """The loop of :meth:`run`, to ``start()`` on a thread of its own."""
        return BackgroundLoop(self._step, name="bridge", interval_s=self.settings.poll_interval_s,
                              wake=self.wake, stop_event=stop, on_error=self._failed, join_s=15)

    def _step(self) -> None:
        self.step()
        self.last_error = None

    def _failed(self, exc: Exception) -> None:
        # the bridge must outlive any one step
        text = str(exc)
        if text != self.last_error:
            expected = isinstance(exc, (EvmError, FabricError, BridgeError))
            log.warning("bridge step will be retried: %s", text, exc_info=not expected)
        self.last_error = text

    def step(self, *, flush: bool = False) -> list[Anchor]:
        """Batch what is ready (``flush``: also a partial batch), then advance every
        unfinished anchor as far as it goes. Returns the anchors touched."""
        self._batch(flush=flush)
        touched = []
        for anchor in self.outbox.unfinished():
            touched.append(self._advance(anchor))
        self._settle()
        return touched

    # ------------------------------------------------------------------ settlement

    def _settle(self) -> None:
        """Apply the Staking outcome of every anchored round, in order, exactly once: the
        contract settles each round once and in order, and says which is next, so a
        restarted bridge resumes there. A round without a validator committee has an
        empty outcome (settled all the same: the contract allows no gaps)."""
        if self.staking is None:
            return
        anchored = [a.last_round for a in self.outbox.anchors()
                    if a.status == AnchorStatus.RECORDED]
        if not anchored:
            return
        round_id = self.staking.next_round()
        while round_id <= max(anchored):
            self._settle_round(round_id)
            round_id += 1

    def _settle_round(self, round_id: int) -> None:
        staking = self.staking
        assert staking is not None
        outcome = ledger_outcome(self.consortium, round_id)
        signatures: dict[str, bytes] = {}
        refusals = []
        for agent in self.agents:
            try:
                signatures[agent.address] = agent.approve_outcome(
                    round_id, list(outcome.orgs), list(outcome.deltas),
                    chain_id=self.chain.chain_id, staking=staking.address)
            except BridgeError as exc:
                refusals.append(str(exc))
            if len(signatures) >= self.threshold:
                break
        if len(signatures) < self.threshold:
            raise BridgeError(f"outcome of round {round_id}: {len(signatures)} of "
                              f"{self.threshold} signatures; refusals: {refusals}",
                              step="settle", rounds=(round_id, round_id))
        packed = pack_signatures(self.keys, signatures)
        receipt = staking.settle(round_id, list(outcome.orgs), list(outcome.deltas),
                                      self.keys, packed, self.submitter)
        log.info("settled round %d on Staking (tx %s): %s", round_id,
                 HexBytes(receipt["transactionHash"]).to_0x_hex(),
                 outcome.entries() or "nothing moves")

    # ------------------------------------------------------------------ batching

    def _next_round(self) -> int:
        anchors = self.outbox.anchors()
        return anchors[-1].last_round + 1 if anchors else 1

    def _settled(self, round_: FinalRound) -> bool:
        """A final round's records are complete: its model version is registered, a later
        round is open, or it waited ``settle_s``."""
        if self.settings.settle_s <= 0:
            return True
        seen = round_.seen_at if round_.seen_at.tzinfo else round_.seen_at.replace(
            tzinfo=UTC)
        if datetime.now(UTC) - seen >= timedelta(seconds=self.settings.settle_s):
            return True
        if self.consortium.list_model_versions(round_.round_id):
            return True
        return self.consortium.find_round(round_.round_id + 1) is not None

    def _batch(self, *, flush: bool) -> None:
        pending = set()
        for round_ in self.outbox.pending_rounds():
            if not self._settled(round_):
                break  # batches are contiguous: later rounds wait for this one
            pending.add(round_.round_id)
        while True:
            first = self._next_round()
            later = [r for r in pending if r >= first]
            if not later:
                return
            # Every round up to a final one is covered: a round in a gap before it never
            # became final (it failed; the coordinator runs one round at a time) and is
            # anchored as the ledger holds it, so one failure cannot stall the anchors.
            ready = min(max(later) - first + 1, self.settings.batch_rounds)
            if ready < self.settings.batch_rounds and not flush:
                return
            self._build(first, first + ready - 1)
            pending -= set(range(first, first + ready))

    def _batch_of(self, first: int, last: int) -> AnchorBatch:
        consortium = consortium_leaves(self.consortium, range(first, last + 1))
        private = [agent.private_state() for agent in self.agents]
        return AnchorBatch.build(first, last, consortium, private)

    def _build(self, first: int, last: int) -> Anchor:
        rounds = list(range(first, last + 1))
        batch = self._batch_of(first, last)
        with self.outbox.session() as session:
            anchor = Anchor(first_round=first, last_round=last, root=batch.root_hex,
                            leaves_json=json.dumps(list(batch.tree.leaves), sort_keys=True),
                            status=AnchorStatus.BUILT)
            session.add(anchor)
            session.flush()
            for round_ in session.query(FinalRound).filter(FinalRound.round_id.in_(rounds)):
                round_.anchor_id = anchor.id
        log.info("built anchor for rounds %d..%d root %s", first, last, batch.root_hex)
        return anchor

    # ------------------------------------------------------------------ the anchor's steps

    def _advance(self, anchor: Anchor) -> Anchor:
        rounds = (anchor.first_round, anchor.last_round)
        try:
            if anchor.status == AnchorStatus.BUILT:
                anchor = self._sign(anchor)
            if anchor.status == AnchorStatus.SIGNED:
                anchor = self._prepare(anchor)
            if anchor.status == AnchorStatus.PREPARED:
                anchor = self._confirm(anchor)
            if anchor.status == AnchorStatus.CONFIRMED:
                anchor = self._record(anchor)
        except (EvmError, FabricError, BridgeError) as exc:
            self.outbox.update(anchor.id, attempts=anchor.attempts + 1, last_error=str(exc))
            if isinstance(exc, BridgeError):
                exc.rounds = exc.rounds or rounds
            raise
        return anchor

    def _sign(self, anchor: Anchor) -> Anchor:
        signatures, refusals = self._collect(anchor)
        if len(signatures) < self.threshold and refusals:
            # A round's records can still grow after it went final (the last orgs'
            # attestations, its model version): orgs then refuse a batch that misses
            # them. Rebuild it from the ledger as it is now; signatures over the old
            # root are worthless for the new one.
            anchor = self._rebuild(anchor)
            signatures, refusals = self._collect(anchor)
        status = AnchorStatus.SIGNED if len(signatures) >= self.threshold else anchor.status
        anchor = self.outbox.update(anchor.id, signatures_json=json.dumps(signatures, sort_keys=True),
                                    status=status)
        if status != AnchorStatus.SIGNED:
            raise BridgeError(f"{len(signatures)} of {self.threshold} signatures; refusals: "
                              f"{refusals}", step="sign")
        return anchor

    def _collect(self, anchor: Anchor) -> tuple[dict[str, str], list[str]]:
        """Ask every org that has not signed yet, all at once (each recomputes the batch
        from its own ledger: asking one after another made 8 orgs cost ~1 s)."""
        batch = AnchorBatch.from_leaves(anchor.first_round, anchor.last_round, anchor.leaves)
        signatures: dict[str, str] = dict(anchor.signatures)
        asked = [agent for agent in self.agents if agent.address not in signatures]

        def approve(agent: AnchorAgent) -> bytes | BridgeError:
            try:
                return agent.approve(batch, chain_id=self.chain.chain_id,
                                     registry=self.registry.address)
            except BridgeError as exc:
                return exc

        refusals = []
        with ThreadPoolExecutor(max(1, len(asked)), thread_name_prefix="bridge-sign") as pool:
            for agent, answer in zip(asked, pool.map(approve, asked), strict=True):
                if isinstance(answer, BridgeError):
                    refusals.append(str(answer))
                else:
                    signatures[agent.address] = "0x" + answer.hex()
        return signatures, refusals

    def _rebuild(self, anchor: Anchor) -> Anchor:
        batch = self._batch_of(anchor.first_round, anchor.last_round)
        log.info("rebuilt anchor for rounds %d..%d: root %s -> %s", anchor.first_round,
                 anchor.last_round, anchor.root, batch.root_hex)
        return self.outbox.update(anchor.id, root=batch.root_hex, signatures_json="{}",
                                  leaves_json=json.dumps(list(batch.tree.leaves), sort_keys=True))

    def _prepare(self, anchor: Anchor) -> Anchor:
        on_chain_next = self.registry.next_round()
        if on_chain_next > anchor.first_round:
            # Only this bridge's own stored transaction can have advanced the registry
            # past these rounds; if it has none, something else anchored them.
            raise BridgeError(f"registry is already at round {on_chain_next} but this "
                              "anchor was never sent", step="prepare")
        signatures = {address: bytes.fromhex(sig[2:]) for address, sig in anchor.signatures.items()}
        packed = pack_signatures(self.keys, signatures)
        function = self.registry.anchor_call(anchor.first_round, anchor.last_round,
                                             bytes.fromhex(anchor.root), self.keys, packed)
        prepared = self.chain.prepare(function, self.submitter)
        # Stored before it is broadcast: a restart re-sends these bytes, never new ones.
        anchor = self.outbox.update(anchor.id, raw_tx=prepared.raw, tx_hash=prepared.tx_hash,
                                    status=AnchorStatus.PREPARED)
        log.info("anchor %d..%d signed as %s", anchor.first_round, anchor.last_round,
                 prepared.tx_hash)
        return anchor

    def _confirm(self, anchor: Anchor) -> Anchor:
        assert anchor.raw_tx is not None and anchor.tx_hash is not None
        self.chain.broadcast(PreparedTx.from_raw(anchor.raw_tx))
        receipt = self.chain.wait(anchor.tx_hash, self.settings.confirmations)
        gas = receipt.get("gasUsed")
        if gas is not None:
            ANCHOR_GAS.observe(int(gas))
        log.info("anchor %d..%d confirmed in block %s (gas %s)", anchor.first_round,
                 anchor.last_round, receipt["blockNumber"], gas)
        return self.outbox.update(anchor.id, block_number=receipt["blockNumber"],
                                  status=AnchorStatus.CONFIRMED, last_error=None)

    def _record(self, anchor: Anchor) -> Anchor:
        assert anchor.tx_hash is not None and anchor.block_number is not None
        tx_hash = anchor.tx_hash if anchor.tx_hash.startswith("0x") else "0x" + anchor.tx_hash
        receipt = AnchorReceipt(
            first_round=anchor.first_round, last_round=anchor.last_round,
            merkle_root=anchor.root, chain_id=self.chain.chain_id,
            contract_address=self.registry.address, tx_hash=tx_hash,
            block_number=anchor.block_number)
        pending = self.consortium.record_anchor_receipt(receipt).submit_async()
        status = pending.transaction.status()
        # The commit status is read, not raised (Pending.committed would time it).
        observe_ledger_call(pending.call.function, "submit", pending.started,
                            None if status.successful else status.code_name)
        if not status.successful:
            raise BridgeError(f"anchor receipt committed as {status.code_name}", step="record",
                              tx_hash=anchor.tx_hash)
        recorded = self.outbox.update(anchor.id, receipt_tx_id=pending.tx_id,
                                      status=AnchorStatus.RECORDED)
        ANCHORS.labels("recorded").inc()
        if anchor.created_at is not None:
            built = anchor.created_at if anchor.created_at.tzinfo else anchor.created_at.replace(
                tzinfo=UTC)  # SQLite keeps no time zone
            ANCHOR_SECONDS.observe(max(0.0, (datetime.now(UTC) - built).total_seconds()))
        log.info("anchor %d..%d recorded on the ledger (tx %s)", anchor.first_round,
                 anchor.last_round, pending.tx_id)
        return recorded
