"""The dev peer: one process playing every org's peer and the orderer of a dev network.

What a Fabric 2.5 gateway peer does, in order, is what this does:
- **join**: each channel starts from its config block (block 0, :mod:`.configblock`),
  written when the channel's ledger is created;
- **endorse** / **evaluate**: find endorsers for the channel and chaincode, check the
  proposal as Fabric's endorser does (well formed, signed by a valid identity of a
  channel member, tx id not used), simulate it once on the chaincode over the shim
  stream, and (endorse) have the peer identity of each endorsing org sign the result;
- **submit**: the orderer's broadcast checks (headers decode, size within
  ``AbsoluteMaxBytes``, the creator a channel writer with a valid signature), then the
  block cutter (:mod:`.orderer`);
- **commit**: validate each transaction (signatures, endorsement policy), let the
  ledger add duplicate-tx-id and MVCC checks, write the hash-chained block, store the
  private data of valid transactions, then wake commit-status waiters and listeners.

A refusal is raised as one of the errors below, each naming what refused in Fabric's
terms (the endorser's proposal checks, the orderer, discovery, an ACL). The gateway
service (:mod:`.service`) answers each, at each call, with the gRPC status a Fabric 2.5
gateway answers with; ``docs/fabric.md`` has the table.

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

from fedledger.devnet.blocks import MalformedTransactionError, parse_envelope_header
from fedledger.devnet.chaincode import KEEPALIVE_INTERVAL_S, ChaincodeClient
from fedledger.devnet.channel import ChannelDefinition, ChannelPolicies
from fedledger.devnet.configblock import genesis_block
from fedledger.devnet.events import BlockEvents, CommitNotifier
from fedledger.devnet.ledger import Ledger
from fedledger.devnet.orderer import BlockCutter, CommitBatch, OrdererRefusal, OrdererSettings
from fedledger.devnet.rwset import PrivateWrites
from fedledger.devnet.validator import VALIDATION_PARAMETER, Validator
from fedledger.fabric import protos
from fedledger.fabric.errors import (
    ChaincodeError,
    EndorseError,
    FabricError,
    MSPError,
    PermissionDeniedError,
    SubmitError,
)
from fedledger.fabric.identity import SigningIdentity, parse_serialized_identity
from fedledger.fabric.msp import MSPManager, SignatureMemo, VerifiedIdentity

log = logging.getLogger(__name__)
TRANSIENT_CAPACITY = 50_000
VALIDATION_SLICE = 64


class NotFoundError(FabricError):
    """An unknown channel, chaincode or organisation was named."""


class ChannelUnavailableError(NotFoundError):
    """This peer has not joined the channel (Fabric: ``failed to get config for channel``)."""


class NoEndorsersError(NotFoundError):
    """No peer of the channel can run the chaincode (it is not defined there, or the
    channel is unknown): Fabric's discovery finds no endorsers."""


class EndorsingOrgsUnavailableError(NoEndorsersError):
    """The client named endorsing organisations that have no peer on the channel with the
    chaincode (Fabric: ``failed to find any endorsing peers for org(s)``)."""


class ProposalRejectedError(PermissionDeniedError):
    """The endorser refused the proposal before running it, as Fabric's endorser does
    (``preProcess``): header, tx id, creator identity and signature, channel
    membership, or a tx id already committed."""


class ChaincodeResponseError(EndorseError):
    """The chaincode answered with an error status (>= 400); ``status`` and
    ``response_message`` are its response's."""

    def __init__(self, status: int, response_message: str, *, tx_id: str, step: str) -> None:
        super().__init__(f"chaincode response {status}, {response_message}", tx_id=tx_id,
                         step=step)
        self.status = status
        self.response_message = response_message


class SimulationError(EndorseError):
    """The peer could not run the chaincode (not running, unreachable, timed out)."""


class AccessDeniedError(PermissionDeniedError):
    """A channel ACL refused a commit-status or chaincode-events request (unknown
    channel, not a channel member, bad signature)."""


@dataclass(frozen=True)
class PeerSettings:
    ledger_dir: Path
    channels: Sequence[ChannelDefinition]
    peer_identities: Mapping[str, SigningIdentity]  # msp id -> that org's peer identity
    chaincode_addresses: Mapping[str, str]          # chaincode name -> CCaaS address
    chaincode_keepalive: float = KEEPALIVE_INTERVAL_S  # s between pings to chaincode servers
    address: str = "127.0.0.1:7051"                 # reported in error details
    # Every channel's block cutting, and the BatchSize/BatchTimeout of its config block.
    orderer: OrdererSettings = field(default_factory=OrdererSettings.deployment)
    orderer_msp_id: str = "OrdererMSP"              # the orderer org in config blocks
    orderer_address: str = "127.0.0.1:7050"         # OrdererAddresses in config blocks


@dataclass
class ChannelRuntime:
    policies: ChannelPolicies
    ledger: Ledger
    validator: Validator
    notifier: CommitNotifier
    cutter: BlockCutter
    private_data: OrderedDict[str, PrivateWrites] = field(default_factory=OrderedDict)

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
            if ledger.height == 0:
                ledger.join(self._genesis_block(definition))
            runtime = ChannelRuntime(
                policies=policies,
                ledger=ledger,
                validator=Validator(self.msps, policies, self._key_policy_lookup(ledger),
                                    self.signatures),
                notifier=CommitNotifier(ledger),
                cutter=None,  # type: ignore[arg-type]  # set just below: it needs the runtime
            )
            runtime.cutter = BlockCutter(self._committer(runtime), self.settings.orderer)
            runtime.cutter.start()
            self.channels[definition.name] = runtime
        for name, address in self.settings.chaincode_addresses.items():
            client = ChaincodeClient(address, name,
                                     keepalive_interval=self.settings.chaincode_keepalive)
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

    def _genesis_block(self, definition: ChannelDefinition):  # noqa: ANN202 - common.Block
        msps = {m: self.msps.msp(m) for m in definition.members}
        return genesis_block(definition, msps=msps,
                             orderer_msp=self.msps.msp(self.settings.orderer_msp_id),
                             orderer=self.settings.orderer,
                             orderer_addresses=[self.settings.orderer_address])

    @staticmethod
    def _key_policy_lookup(ledger: Ledger):  # noqa: ANN205
        def lookup(namespace: str, key: str) -> bytes | None:
            return ledger.get_state_metadata(namespace, key).get(VALIDATION_PARAMETER)
        return lookup

    # ------------------------------------------------------------------ checks

    def _joined(self, channel_id: str, tx_id: str | None, step: str) -> ChannelRuntime:
        runtime = self.channels.get(channel_id)
        if runtime is None:
            raise ChannelUnavailableError(f"failed to get config for channel [{channel_id}]: "
                                          f"this peer has not joined it", tx_id=tx_id, step=step)
        return runtime

    def _verified(self, serialized: bytes, message: bytes, signature: bytes,
                  runtime: ChannelRuntime) -> VerifiedIdentity:
        """The signer, if a valid identity of a channel member signed ``message``;
        otherwise ``MSPError`` / ``PermissionDeniedError`` saying why."""
        identity = self.signatures.verify(self.msps, serialized, message, signature)
        if not runtime.policies.is_member(identity):
            raise PermissionDeniedError(
                f"{identity.msp_id} is not a member of channel {runtime.name!r}")
        return identity

    def _endorser_checks(self, runtime: ChannelRuntime, signed, tx_id: str,  # noqa: ANN001
                         step: str) -> tuple[protos.ParsedProposal, VerifiedIdentity]:
        """What Fabric's endorser checks before simulating (``UnpackedProposal.Validate``
        and ``preProcess``); ``ProposalRejectedError`` when one fails."""
        channel = runtime.name
        try:
            proposal = protos.parse_signed_proposal(signed)
        except protos.MalformedMessageError as exc:
            raise ProposalRejectedError(f"error validating proposal: {exc.message}",
                                        tx_id=tx_id, step=step) from None
        if proposal.tx_id != tx_id:
            # A dev peer check only, as the channel one in _unpack.
            raise protos.MalformedMessageError(
                "request tx id does not match the proposal's", tx_id=tx_id, step=step)
        try:
            creator = self._verified(proposal.creator, signed.proposal_bytes, signed.signature,
                                     runtime)
        except PermissionDeniedError as exc:
            # The channel's MSPs do not include a non-member's: Fabric cannot even
            # deserialize the creator.
            raise ProposalRejectedError(
                f"error validating proposal: access denied: channel [{channel}] creator org "
                f"unknown, creator is malformed ({exc.message})", tx_id=tx_id, step=step) from None
        except MSPError as exc:
            org = _msp_id_of(proposal.creator)
            raise ProposalRejectedError(
                f"error validating proposal: access denied: channel [{channel}] creator org "
                f"[{org}] ({exc.message})", tx_id=tx_id, step=step) from None
        if runtime.ledger.tx_status(tx_id) is not None:
            raise ProposalRejectedError(
                f"duplicate transaction found [{tx_id}]. Creator [{proposal.creator.hex()}]",
                tx_id=tx_id, step=step)
        return proposal, creator

    def _unpack(self, request, step: str) -> tuple[str, str]:  # noqa: ANN001
        """(channel, chaincode) of an evaluate/endorse request: what the gateway reads
        before any endorser sees the proposal."""
        tx_id = request.transaction_id
        channel_id, chaincode = protos.proposal_target(request.proposed_transaction)
        # Not a check a Fabric gateway makes (it goes by the proposal): the dev peer
        # refuses a request that contradicts its own proposal.
        if request.channel_id != channel_id:
            raise protos.MalformedMessageError(
                "request channel does not match the proposal's", tx_id=tx_id, step=step)
        return channel_id, chaincode

    def _endorsing_orgs(self, runtime: ChannelRuntime, creator: VerifiedIdentity,
                        requested: Sequence[str]) -> list[str]:
        members = runtime.policies.definition.members
        if requested:
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
            raise SimulationError(f"chaincode {proposal.chaincode!r} is not running on this "
                                  f"peer", tx_id=proposal.tx_id, step=step)
        simulator = runtime.ledger.new_simulator(private_reader_msp=as_org)
        try:
            result = await client.execute(
                channel_id=runtime.name, tx_id=proposal.tx_id, signed_proposal=proposal.signed,
                chaincode_input=proposal.chaincode_input, simulator=simulator,
                transient=proposal.transient)
        except ChaincodeError as exc:
            raise SimulationError(f"error in simulation: {exc.message}", tx_id=proposal.tx_id,
                                  step=step) from None
        if result.response.status >= 400:
            raise ChaincodeResponseError(result.response.status, result.response.message,
                                         tx_id=proposal.tx_id, step=step)
        return simulator, result

    # ------------------------------------------------------------------ gateway operations

    async def endorse(self, request: gateway_pb2.EndorseRequest) -> common_pb2.Envelope:
        tx_id = request.transaction_id
        channel_id, chaincode = self._unpack(request, "endorse")
        runtime = self.channels.get(channel_id)
        runs_chaincode = runtime is not None and chaincode in runtime.policies.definition.chaincodes
        requested = list(request.endorsing_organizations)
        if requested:
            members = runtime.policies.definition.members if runs_chaincode and runtime else ()
            missing = [org for org in requested if org not in members]
            if missing:
                raise EndorsingOrgsUnavailableError(
                    f"failed to find any endorsing peers for org(s): {', '.join(missing)}",
                    tx_id=tx_id, step="endorse")
        elif not runs_chaincode:
            raise NoEndorsersError(
                f"no combination of peers can be derived which satisfy the endorsement "
                f"policy: no peers of channel [{channel_id}] run chaincode [{chaincode}]",
                tx_id=tx_id, step="endorse")
        assert runtime is not None
        proposal, creator = self._endorser_checks(runtime, request.proposed_transaction, tx_id,
                                                  "endorse")
        orgs = self._endorsing_orgs(runtime, creator, requested)
        simulator, result = await self._simulate(runtime, proposal, orgs[0], "endorse")
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
        channel_id, chaincode = self._unpack(request, "evaluate")
        runtime = self._joined(channel_id, tx_id, "evaluate")
        members = runtime.policies.definition.members
        targets = [org for org in request.target_organizations if org in members]
        if (chaincode not in runtime.policies.definition.chaincodes
                or (request.target_organizations and not targets)):
            raise NoEndorsersError(f"no peers available to evaluate chaincode {chaincode} in "
                                   f"channel {channel_id}", tx_id=tx_id, step="evaluate")
        proposal, creator = self._endorser_checks(runtime, request.proposed_transaction, tx_id,
                                                  "evaluate")
        as_org = creator.msp_id if not targets or creator.msp_id in targets else targets[0]
        _, result = await self._simulate(runtime, proposal, as_org, "evaluate")
        return result.response

    async def submit(self, request: gateway_pb2.SubmitRequest) -> None:
        tx_id = request.transaction_id
        if not request.HasField("prepared_transaction"):
            raise protos.MalformedMessageError("a prepared transaction is required",
                                               tx_id=tx_id, step="submit")
        envelope = request.prepared_transaction
        if not envelope.signature:
            raise protos.MalformedMessageError("prepared transaction must be signed",
                                               tx_id=tx_id, step="submit")
        runtime = self._joined(request.channel_id, tx_id, "submit")
        # From here on, the orderer's broadcast checks (msgprocessor's standard channel
        # filters): headers decode, size within AbsoluteMaxBytes, signed by a writer.
        envelope_bytes = envelope.SerializeToString()
        try:
            header = parse_envelope_header(envelope_bytes)
        except MalformedTransactionError as exc:
            raise OrdererRefusal(exc.message, status="BAD_REQUEST", tx_id=tx_id) from None
        if header.tx_id != tx_id or header.channel_id != request.channel_id:
            # A dev peer check only: a Fabric gateway broadcasts what it is given.
            raise protos.MalformedMessageError(
                "request tx id/channel do not match the transaction", tx_id=tx_id, step="submit")
        runtime.cutter.check_size(header.size, tx_id)
        try:
            self._verified(header.creator, header.payload, header.signature, runtime)
        except FabricError as exc:
            raise OrdererRefusal(
                f"implicit policy evaluation failed for /Channel/Writers: {exc.message}",
                status="FORBIDDEN", tx_id=tx_id) from None
        runtime.cutter.order(envelope_bytes, tx_id, size=header.size)

    def _acl(self, runtime: ChannelRuntime | None, channel_id: str, serialized: bytes,
             message: bytes, signature: bytes, tx_id: str | None, step: str) -> ChannelRuntime:
        """The channel Readers ACL of the gateway's CommitStatus and ChaincodeEvents."""
        if runtime is None:
            raise AccessDeniedError(f"Failed to get policy manager for channel [{channel_id}]",
                                    tx_id=tx_id, step=step)
        try:
            self._verified(serialized, message, signature, runtime)
        except FabricError as exc:
            raise AccessDeniedError(
                f"failed evaluating policy on signed data during check policy "
                f"[/Channel/Application/Readers]: {exc.message}", tx_id=tx_id, step=step) from None
        return runtime

    async def commit_status(self, signed: gateway_pb2.SignedCommitStatusRequest
                            ) -> gateway_pb2.CommitStatusResponse:
        request = protos.parse_commit_status_request(signed)
        runtime = self._acl(self.channels.get(request.channel_id), request.channel_id,
                            request.identity, signed.request, signed.signature,
                            request.transaction_id, "commit_status")
        code, block_number = await runtime.notifier.wait_for(request.transaction_id)
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block_number)

    async def chaincode_events(self, signed: gateway_pb2.SignedChaincodeEventsRequest
                               ) -> AsyncIterator[gateway_pb2.ChaincodeEventsResponse]:
        """As Fabric's gateway: from the block of ``after_transaction_id`` when the ledger
        has it, else from the start position (a block number, or the next commit); events
        up to and including ``after_transaction_id`` are skipped."""
        request = protos.parse_chaincode_events_request(signed)
        runtime = self._acl(self.channels.get(request.channel_id), request.channel_id,
                            request.identity, signed.request, signed.signature, None, "events")
        position = request.start_position
        kind = position.WhichOneof("Type")
        if kind not in (None, "next_commit", "specified"):
            raise protos.MalformedMessageError(f"invalid start position type: {kind}",
                                               step="events")
        start = position.specified.number if kind == "specified" else None
        after = request.after_transaction_id
        if after:
            found = runtime.ledger.tx_status(after)
            if found is not None:
                start = found[1]
        passed = not after
        async for block in runtime.notifier.blocks_from(start):
            events = []
            for event in block.events:
                if not passed:
                    passed = event.tx_id == after
                elif event.chaincode_id == request.chaincode_id:
                    events.append(event)
            if events:
                yield gateway_pb2.ChaincodeEventsResponse(events=events,
                                                          block_number=block.block_number)

    # ------------------------------------------------------------------ commit

    def _committer(self, runtime: ChannelRuntime) -> CommitBatch:
        """The block cutter's callback for ``runtime``: commit a cut batch."""
        async def commit(batch: list[bytes]) -> None:
            await self._commit(runtime, batch)
        return commit

    async def _commit(self, runtime: ChannelRuntime, batch: list[bytes]) -> None:
        # Validation runs on the event loop in slices, not in a worker thread: a
        # CPU-bound thread would make the loop wait for the GIL at every wake-up
        # (the convoy effect).
        validated = []
        for start in range(0, len(batch), VALIDATION_SLICE):
            validated += runtime.validator.validate_block(batch[start:start + VALIDATION_SLICE])
            await asyncio.sleep(0)
        private: dict[str, PrivateWrites] = {}
        for item in validated:
            parsed = item.parsed
            writes = runtime.private_data.pop(parsed.tx_id, None) if parsed else None
            if parsed is not None and writes is not None:
                private[parsed.tx_id] = writes
        try:
            committed = runtime.ledger.commit_block(batch, [v.code for v in validated], private,
                                                     parsed=[v.parsed for v in validated])
        except FabricError:
            log.exception("commit of a block on %s failed", runtime.name)
            raise
        events = BlockEvents(committed.number, [
            _event(v.parsed.chaincode_event) for v, code in zip(validated, committed.codes, strict=True)
            if code == 0 and v.parsed is not None and v.parsed.chaincode_event])
        runtime.notifier.committed(committed.number, committed.tx_ids, committed.codes, events)


def _event(data: bytes) -> chaincode_event_pb2.ChaincodeEvent:
    event = chaincode_event_pb2.ChaincodeEvent()
    event.ParseFromString(data)
    return event


def _msp_id_of(serialized: bytes) -> str:
    """The MSP id a serialized identity claims ("" when it does not parse)."""
    try:
        return parse_serialized_identity(serialized).msp_id
    except FabricError:
        return ""


__all__ = ["AccessDeniedError", "ChaincodeError", "ChaincodeResponseError",
           "ChannelUnavailableError", "DevPeer", "EndorsingOrgsUnavailableError",
           "NoEndorsersError", "NotFoundError", "PeerSettings", "ProposalRejectedError",
           "SimulationError", "SubmitError"]
