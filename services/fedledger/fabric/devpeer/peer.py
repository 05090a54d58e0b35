"""The dev peer: one process playing every org's peer and the orderer of a dev network.

What a Fabric 2.5 gateway peer does, in order, is what this does:
- **endorse**: check the proposal (well formed, signed by a valid identity of a channel
  member, tx id not used), simulate it once on the chaincode over the shim stream,
  and have the peer identity of each endorsing org sign the proposal response;
- **submit**: check the creator's envelope signature and hand it to the block cutter;
- **commit**: validate each transaction (signatures, endorsement policy), let the
  ledger add duplicate-tx-id and MVCC checks, write the hash-chained block, store the
  private data of valid transactions, then wake commit-status waiters and listeners.

Divergence from a multi-peer network, by design: the orgs' peers share one world state,
so a proposal is simulated once (as the first endorsing org's peer, which decides
private-data read access) and every endorsing org signs that one result.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import chaincode_event_pb2, proposal_response_pb2

from fedledger.fabric import protos
from fedledger.fabric.devpeer.blocks import parse_transaction
from fedledger.fabric.devpeer.channel import ChannelDefinition, ChannelPolicies
from fedledger.fabric.devpeer.chaincode import ChaincodeClient
from fedledger.fabric.devpeer.events import BlockEvents, CommitNotifier
from fedledger.fabric.devpeer.ledger import Ledger
from fedledger.fabric.devpeer.orderer import BlockCutter
from fedledger.fabric.devpeer.validator import VALIDATION_PARAMETER, Validator
from fedledger.fabric.errors import (
    ChaincodeError,
    EndorseError,
    FabricError,
    MSPError,
    PermissionDeniedError,
    SubmitError,
)
from fedledger.fabric.identity import SigningIdentity
from fedledger.fabric.msp import MSPManager, SignatureMemo, VerifiedIdentity

log = logging.getLogger(__name__)
TRANSIENT_CAPACITY = 50_000
VALIDATION_SLICE = 64


class NotFoundError(FabricError):
    """An unknown channel, chaincode or organisation was named."""


@dataclass(frozen=True)
class PeerSettings:
    ledger_dir: Path
    channels: Sequence[ChannelDefinition]
    peer_identities: Mapping[str, SigningIdentity]  # msp id -> that org's peer identity
    chaincode_addresses: Mapping[str, str]          # chaincode name -> CCaaS address
    address: str = "127.0.0.1:7051"                 # reported in error details
    max_batch: int = 500
    batch_timeout: float = 0.002


@dataclass
class ChannelRuntime:
    policies: ChannelPolicies
    ledger: Ledger
    validator: Validator
    notifier: CommitNotifier
    cutter: BlockCutter
    private_data: OrderedDict[str, object] = field(default_factory=OrderedDict)

    @property
    def name(self) -> str:
        return self.policies.definition.name


class DevPeer:
    def __init__(self, settings: PeerSettings, msps: MSPManager) -> None:
        self.settings = settings
        self.msps = msps
        self.channels: dict[str, ChannelRuntime] = {}
        self.chaincodes: dict[str, ChaincodeClient] = {}
        # Envelope signatures checked at submit and endorsements this peer signed are
        # not verified a second time at commit (same bytes, same process).
        self.signatures = SignatureMemo()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.settings.ledger_dir.mkdir(parents=True, exist_ok=True)
        for definition in self.settings.channels:
            for member in definition.members:
                if member not in self.settings.peer_identities:
                    raise NotFoundError(f"channel {definition.name}: no peer identity for {member}")
            policies = ChannelPolicies.of(definition)
            ledger = Ledger(self.settings.ledger_dir / f"{definition.name}.sqlite", definition.name)
            runtime = ChannelRuntime(
                policies=policies,
                ledger=ledger,
                validator=Validator(self.msps, policies, self._key_policy_lookup(ledger),
                                    self.signatures),
                notifier=CommitNotifier(ledger),
                cutter=None,  # type: ignore[arg-type]  # set just below: it needs the runtime
            )
            runtime.cutter = BlockCutter(
                lambda batch, rt=runtime: self._commit(rt, batch),
                max_batch=self.settings.max_batch, batch_timeout=self.settings.batch_timeout)
            runtime.cutter.start()
            self.channels[definition.name] = runtime
        for name, address in self.settings.chaincode_addresses.items():
            client = ChaincodeClient(address, name)
            await client.connect()
            self.chaincodes[name] = client

    async def stop(self) -> None:
        for runtime in self.channels.values():
            await runtime.cutter.stop()
            runtime.notifier.close()
        for client in self.chaincodes.values():
            await client.close()
        for runtime in self.channels.values():
            runtime.ledger.close()

    @staticmethod
    def _key_policy_lookup(ledger: Ledger):  # noqa: ANN205
        def lookup(namespace: str, key: str) -> bytes | None:
            return ledger.get_state_metadata(namespace, key).get(VALIDATION_PARAMETER)
        return lookup

    # ------------------------------------------------------------------ checks

    def _channel(self, channel_id: str, tx_id: str | None, step: str) -> ChannelRuntime:
        runtime = self.channels.get(channel_id)
        if runtime is None:
            raise NotFoundError(f"channel {channel_id!r} does not exist on this peer",
                                tx_id=tx_id, step=step)
        return runtime

    def _member(self, runtime: ChannelRuntime, serialized: bytes, message: bytes,
                signature: bytes, tx_id: str | None, step: str) -> VerifiedIdentity:
        try:
            identity = self.signatures.verify(self.msps, serialized, message, signature)
        except MSPError as exc:
            raise type(exc)(exc.message, tx_id=tx_id, step=step) from None
        if not runtime.policies.is_member(identity):
            raise PermissionDeniedError(
                f"{identity.msp_id} is not a member of channel {runtime.name!r}",
                tx_id=tx_id, step=step)
        return identity

    def _proposal(self, signed, tx_id: str, channel_id: str, step: str  # noqa: ANN001
                  ) -> tuple[ChannelRuntime, protos.ParsedProposal, VerifiedIdentity]:
        proposal = protos.parse_signed_proposal(signed)
        if proposal.tx_id != tx_id or proposal.channel_id != channel_id:
            raise protos.MalformedMessageError(
                "request tx id/channel do not match the proposal", tx_id=tx_id, step=step)
        runtime = self._channel(channel_id, tx_id, step)
        creator = self._member(runtime, proposal.creator, signed.proposal_bytes, signed.signature,
                               tx_id, step)
        if proposal.chaincode not in runtime.policies.definition.chaincodes:
            raise NotFoundError(f"chaincode {proposal.chaincode!r} is not defined on channel "
                                f"{channel_id!r}", tx_id=tx_id, step=step)
        return runtime, proposal, creator

    def _endorsing_orgs(self, runtime: ChannelRuntime, creator: VerifiedIdentity,
                        requested: Sequence[str], tx_id: str) -> list[str]:
        members = runtime.policies.definition.members
        if requested:
            unknown = [org for org in requested if org not in members]
            if unknown:
                raise NotFoundError(f"organisations {unknown} are not members of channel "
                                    f"{runtime.name!r}", tx_id=tx_id, step="endorse")
            return list(dict.fromkeys(requested))
        # Like the gateway's discovery-based plan: the local (creator's) org first, then
        # the fewest further orgs that satisfy the chaincode's endorsement policy.
        ordered = sorted(members, key=lambda m: m != creator.msp_id)
        for count in range(1, len(ordered) + 1):
            chosen = ordered[:count]
            if runtime.policies.endorsement.evaluate(
                    [self._peer_identity(org) for org in chosen]):
                return chosen
        return ordered

    def _peer_identity(self, msp_id: str) -> VerifiedIdentity:
        return self.msps.deserialize(self.settings.peer_identities[msp_id].identity.serialize())

    async def _simulate(self, runtime: ChannelRuntime, proposal: protos.ParsedProposal,
                        as_org: str, step: str):  # noqa: ANN202
        client = self.chaincodes.get(proposal.chaincode)
        if client is None:
            raise NotFoundError(f"chaincode {proposal.chaincode!r} is not running",
                                tx_id=proposal.tx_id, step=step)
        simulator = runtime.ledger.new_simulator(private_reader_msp=as_org)
        result = await client.execute(
            channel_id=runtime.name, tx_id=proposal.tx_id, signed_proposal=proposal.signed,
            chaincode_input=proposal.chaincode_input, simulator=simulator,
            transient=proposal.transient)
        return simulator, result

    # ------------------------------------------------------------------ gateway operations

    async def endorse(self, request: gateway_pb2.EndorseRequest) -> common_pb2.Envelope:
        tx_id = request.transaction_id
        runtime, proposal, creator = self._proposal(
            request.proposed_transaction, tx_id, request.channel_id, "endorse")
        if runtime.ledger.tx_status(tx_id) is not None:
            raise EndorseError(f"duplicate transaction found [{tx_id}]", tx_id=tx_id,
                               step="endorse")
        orgs = self._endorsing_orgs(runtime, creator, request.endorsing_organizations, tx_id)
        simulator, result = await self._simulate(runtime, proposal, orgs[0], "endorse")
        if result.response.status >= 400:
            raise EndorseError(
                f"chaincode response {result.response.status}, {result.response.message}",
                tx_id=tx_id, step="endorse")
        simulation = simulator.results()
        payload = protos.build_proposal_response_payload(
            proposal=proposal, results=simulation.public_rwset.SerializeToString(),
            event=result.event, response=result.response)
        endorsements = []
        for org in orgs:
            peer = self.settings.peer_identities[org]
            endorsement = protos.endorse(payload, peer.identity.serialize(), peer.sign)
            self.signatures.remember(endorsement.endorser,
                                     protos.endorsement_message(payload, endorsement),
                                     endorsement.signature)
            endorsements.append(endorsement)
        if simulation.private_writes:
            runtime.private_data[tx_id] = simulation.private_writes
            while len(runtime.private_data) > TRANSIENT_CAPACITY:
                runtime.private_data.popitem(last=False)
        return common_pb2.Envelope(
            payload=protos.build_transaction_payload(proposal, payload, endorsements))

    async def evaluate(self, request: gateway_pb2.EvaluateRequest
                       ) -> proposal_response_pb2.Response:
        tx_id = request.transaction_id
        runtime, proposal, creator = self._proposal(
            request.proposed_transaction, tx_id, request.channel_id, "evaluate")
        as_org = creator.msp_id
        if request.target_organizations:
            as_org = self._endorsing_orgs(runtime, creator, request.target_organizations, tx_id)[0]
        _, result = await self._simulate(runtime, proposal, as_org, "evaluate")
        if result.response.status >= 400:
            raise EndorseError(
                f"chaincode response {result.response.status}, {result.response.message}",
                tx_id=tx_id, step="evaluate")
        return result.response

    async def submit(self, request: gateway_pb2.SubmitRequest) -> None:
        tx_id = request.transaction_id
        envelope = request.prepared_transaction
        try:
            parsed = parse_transaction(envelope.SerializeToString())
        except FabricError as exc:
            raise protos.MalformedMessageError(f"malformed transaction: {exc.message}",
                                               tx_id=tx_id, step="submit") from None
        if parsed.tx_id != tx_id or parsed.channel_id != request.channel_id:
            raise protos.MalformedMessageError(
                "request tx id/channel do not match the transaction", tx_id=tx_id, step="submit")
        runtime = self._channel(request.channel_id, tx_id, "submit")
        # The orderer's Writers check: only a channel member's signed envelope is ordered.
        self._member(runtime, parsed.creator, parsed.payload, parsed.signature, tx_id, "submit")
        runtime.cutter.order(envelope.SerializeToString(), tx_id)

    async def commit_status(self, signed: gateway_pb2.SignedCommitStatusRequest
                            ) -> gateway_pb2.CommitStatusResponse:
        request = protos.parse_commit_status_request(signed)
        runtime = self._channel(request.channel_id, request.transaction_id, "commit_status")
        self._member(runtime, request.identity, signed.request, signed.signature,
                     request.transaction_id, "commit_status")
        code, block_number = await runtime.notifier.wait_for(request.transaction_id)
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block_number)

    async def chaincode_events(self, signed: gateway_pb2.SignedChaincodeEventsRequest
                               ) -> AsyncIterator[gateway_pb2.ChaincodeEventsResponse]:
        request = protos.parse_chaincode_events_request(signed)
        runtime = self._channel(request.channel_id, None, "events")
        self._member(runtime, request.identity, signed.request, signed.signature, None, "events")
        position = request.start_position
        start = position.specified.number if position.HasField("specified") else (
            0 if position.HasField("oldest") else None)
        skip_until = request.after_transaction_id or None
        async for block in runtime.notifier.blocks_from(start):
            events = [e for e in block.events if e.chaincode_id == request.chaincode_id]
            if skip_until is not None:
                ids = [e.tx_id for e in events]
                if skip_until in ids:
                    events = events[ids.index(skip_until) + 1:]
                # The checkpoint transaction is in the start block; later blocks are new.
                skip_until = None
            if events:
                yield gateway_pb2.ChaincodeEventsResponse(events=events,
                                                          block_number=block.block_number)

    # ------------------------------------------------------------------ commit

    async def _commit(self, runtime: ChannelRuntime, batch: list[bytes]) -> None:
        # Validation runs on the event loop in slices, not in a worker thread: a
        # CPU-bound thread would make the loop wait for the GIL at every wake-up
        # (the convoy effect).
        validated = []
        for start in range(0, len(batch), VALIDATION_SLICE):
            validated += runtime.validator.validate_block(batch[start:start + VALIDATION_SLICE])
            await asyncio.sleep(0)
        private = {}
        for item in validated:
            writes = runtime.private_data.pop(item.parsed.tx_id, None) if item.parsed else None
            if writes is not None:
                private[item.parsed.tx_id] = writes
        try:
            committed = runtime.ledger.commit_block(batch, [v.code for v in validated], private,
                                                     parsed=[v.parsed for v in validated])
        except FabricError:
            log.exception("commit of a block on %s failed", runtime.name)
            raise
        events = BlockEvents(committed.number, [
            _event(v.parsed.chaincode_event) for v, code in zip(validated, committed.codes)
            if code == 0 and v.parsed is not None and v.parsed.chaincode_event])
        runtime.notifier.committed(committed.number, committed.tx_ids, committed.codes, events)


def _event(data: bytes) -> chaincode_event_pb2.ChaincodeEvent:
    event = chaincode_event_pb2.ChaincodeEvent()
    event.ParseFromString(data)
    return event


__all__ = ["ChaincodeError", "DevPeer", "NotFoundError", "PeerSettings", "SubmitError"]
