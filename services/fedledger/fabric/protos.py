"""The one place Fabric protocol messages are built and taken apart.

Client and dev peer both use it, so what the client signs and what the peer verifies
are the same bytes by construction. Message shapes follow the official fabric-gateway
clients and the Fabric 2.5 peer:

- tx id = hex(sha256(nonce || serialized creator)), with a 24-byte random nonce;
- a proposal's header carries a ChannelHeader (ENDORSER_TRANSACTION, tx id, channel,
  timestamp, ChaincodeHeaderExtension) and a SignatureHeader (creator, nonce);
- endorsements bind to the proposal hash: sha256(channel header || signature header ||
  proposal payload without its transient map), so private inputs never reach a block;
- an endorser signs ``proposal_response_payload || endorser``;
- the transaction envelope reuses the proposal header, and the client signs its payload.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from fedledger.fabric.errors import FabricError

NONCE_BYTES = 24
ENDORSER_TRANSACTION = common_pb2.HeaderType.ENDORSER_TRANSACTION

Sign = Callable[[bytes], bytes]


class MalformedMessageError(FabricError):
    """Bytes that should hold a Fabric message do not parse or do not agree with
    themselves (wrong tx id, wrong header type, missing chaincode...)."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def transaction_id(nonce: bytes, creator: bytes) -> str:
    return hashlib.sha256(nonce + creator).hexdigest()


def timestamp_now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _parse(message_type, data: bytes, what: str, tx_id: str | None = None):
    message = message_type()
    try:
        message.ParseFromString(data)
    except (DecodeError, TypeError, ValueError) as exc:
        raise MalformedMessageError(f"malformed {what}: {exc}", tx_id=tx_id, step="parse") from exc
    return message


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True)
class UnsignedProposal:
    """A proposal ready to be signed by its creator."""

    tx_id: str
    channel_id: str
    chaincode: str
    proposal_bytes: bytes

    def signed(self, signature: bytes) -> proposal_pb2.SignedProposal:
        return proposal_pb2.SignedProposal(proposal_bytes=self.proposal_bytes, signature=signature)


def build_proposal(
    *,
    creator: bytes,
    channel_id: str,
    chaincode: str,
    args: Sequence[bytes],
    transient: Mapping[str, bytes] | None = None,
    nonce: bytes | None = None,
) -> UnsignedProposal:
    """An endorser-transaction proposal invoking ``chaincode`` with ``args`` (args[0] is
    the function name)."""
    nonce = nonce if nonce is not None else new_nonce()
    tx_id = transaction_id(nonce, creator)
    chaincode_id = chaincode_pb2.ChaincodeID(name=chaincode)
    channel_header = common_pb2.ChannelHeader(
        type=ENDORSER_TRANSACTION,
        tx_id=tx_id,
        channel_id=channel_id,
        timestamp=timestamp_now(),
        extension=proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_id).SerializeToString(),
    )
    signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=signature_header.SerializeToString(),
    )
    invocation = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            type=chaincode_pb2.ChaincodeSpec.Type.UNDEFINED,
            chaincode_id=chaincode_id,
            input=chaincode_pb2.ChaincodeInput(args=list(args)),
        )
    )
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=invocation.SerializeToString(), TransientMap=dict(transient or {})
    )
    proposal = proposal_pb2.Proposal(
        header=header.SerializeToString(), payload=payload.SerializeToString()
    )
    return UnsignedProposal(tx_id, channel_id, chaincode, proposal.SerializeToString())


@dataclass(frozen=True)
class ParsedProposal:
    """What a peer needs from a signed proposal, checked for internal consistency."""

    signed: proposal_pb2.SignedProposal
    tx_id: str
    channel_id: str
    chaincode: str
    creator: bytes
    nonce: bytes
    timestamp: timestamp_pb2.Timestamp
    chaincode_input: chaincode_pb2.ChaincodeInput
    transient: dict[str, bytes]
    header_bytes: bytes
    channel_header_bytes: bytes
    signature_header_bytes: bytes
    payload_for_tx: bytes  # the proposal payload without its transient map
    proposal_hash: bytes = field(repr=False)


def proposal_hash(channel_header: bytes, signature_header: bytes, payload_for_tx: bytes) -> bytes:
    return hashlib.sha256(channel_header + signature_header + payload_for_tx).digest()


def proposal_target(signed: proposal_pb2.SignedProposal) -> tuple[str, str]:
    """(channel id, chaincode name) of a signed proposal: all a Fabric gateway reads of
    it before handing it to an endorser (``getChannelAndChaincodeFromSignedProposal``).
    ``MalformedMessageError`` when it does not get that far; every further check is the
    endorser's (:func:`parse_signed_proposal`)."""
    if not signed.proposal_bytes:
        raise MalformedMessageError("a signed proposal is required", step="parse")
    proposal = _parse(proposal_pb2.Proposal, signed.proposal_bytes, "proposal")
    header = _parse(common_pb2.Header, proposal.header, "proposal header")
    channel_header = _parse(common_pb2.ChannelHeader, header.channel_header, "channel header")
    payload = _parse(proposal_pb2.ChaincodeProposalPayload, proposal.payload, "proposal payload")
    invocation = _parse(chaincode_pb2.ChaincodeInvocationSpec, payload.input, "invocation spec")
    if not channel_header.channel_id:
        raise MalformedMessageError("no channel id provided", step="parse")
    chaincode = invocation.chaincode_spec.chaincode_id.name
    if not chaincode:
        raise MalformedMessageError(
            f"no chaincode name is provided, channel id [{channel_header.channel_id}]",
            step="parse")
    return channel_header.channel_id, chaincode


def parse_signed_proposal(signed: proposal_pb2.SignedProposal) -> ParsedProposal:
    proposal = _parse(proposal_pb2.Proposal, signed.proposal_bytes, "proposal")
    header = _parse(common_pb2.Header, proposal.header, "proposal header")
    channel_header = _parse(common_pb2.ChannelHeader, header.channel_header, "channel header")
    tx_id = channel_header.tx_id
    if channel_header.type != ENDORSER_TRANSACTION:
        raise MalformedMessageError(
            f"proposal header type {channel_header.type} is not ENDORSER_TRANSACTION", tx_id=tx_id,
            step="parse")
    signature_header = _parse(common_pb2.SignatureHeader, header.signature_header,
                              "signature header", tx_id)
    if not signature_header.creator or len(signature_header.nonce) == 0:
        raise MalformedMessageError("proposal has no creator or no nonce", tx_id=tx_id, step="parse")
    if transaction_id(signature_header.nonce, signature_header.creator) != tx_id:
        raise MalformedMessageError(
            "tx id is not sha256(nonce || creator)", tx_id=tx_id, step="parse")
    extension = _parse(proposal_pb2.ChaincodeHeaderExtension, channel_header.extension,
                       "chaincode header extension", tx_id)
    payload = _parse(proposal_pb2.ChaincodeProposalPayload, proposal.payload, "proposal payload", tx_id)
    invocation = _parse(chaincode_pb2.ChaincodeInvocationSpec, payload.input, "invocation spec", tx_id)
    chaincode = extension.chaincode_id.name or invocation.chaincode_spec.chaincode_id.name
    if not chaincode or not channel_header.channel_id:
        raise MalformedMessageError("proposal names no channel or no chaincode", tx_id=tx_id,
                                    step="parse")
    if len(invocation.chaincode_spec.input.args) == 0:
        raise MalformedMessageError("proposal has no function name", tx_id=tx_id, step="parse")
    payload_for_tx = proposal_pb2.ChaincodeProposalPayload(input=payload.input).SerializeToString()
    return ParsedProposal(
        signed=signed,
        tx_id=tx_id,
        channel_id=channel_header.channel_id,
        chaincode=chaincode,
        creator=signature_header.creator,
        nonce=signature_header.nonce,
        timestamp=channel_header.timestamp,
        chaincode_input=invocation.chaincode_spec.input,
        transient=dict(payload.TransientMap),
        header_bytes=proposal.header,
        channel_header_bytes=header.channel_header,
        signature_header_bytes=header.signature_header,
        payload_for_tx=payload_for_tx,
        proposal_hash=proposal_hash(header.channel_header, header.signature_header, payload_for_tx),
    )


# --------------------------------------------------------------------------- endorsement


def build_proposal_response_payload(
    *,
    proposal: ParsedProposal,
    results: bytes,
    event: chaincode_event_pb2.ChaincodeEvent | None,
    response: proposal_response_pb2.Response,
) -> bytes:
    action = proposal_pb2.ChaincodeAction(
        results=results,
        events=event.SerializeToString() if event is not None else b"",
        response=response,
        chaincode_id=chaincode_pb2.ChaincodeID(name=proposal.chaincode),
    )
    return proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=proposal.proposal_hash, extension=action.SerializeToString()
    ).SerializeToString()


def endorse(payload: bytes, endorser: bytes, sign: Sign) -> proposal_response_pb2.Endorsement:
    """An endorsement: the endorser's signature over ``payload || endorser``."""
    return proposal_response_pb2.Endorsement(endorser=endorser, signature=sign(payload + endorser))


def endorsement_message(payload: bytes, endorsement: proposal_response_pb2.Endorsement) -> bytes:
    """The bytes an endorsement signature covers (what a validator verifies)."""
    return payload + endorsement.endorser


def build_transaction_payload(
    proposal: ParsedProposal,
    response_payload: bytes,
    endorsements: Sequence[proposal_response_pb2.Endorsement],
) -> bytes:
    """The payload of the prepared transaction envelope the creator then signs."""
    action_payload = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=proposal.payload_for_tx,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=response_payload, endorsements=list(endorsements)
        ),
    )
    transaction = transaction_pb2.Transaction(
        actions=[transaction_pb2.TransactionAction(
            header=proposal.signature_header_bytes, payload=action_payload.SerializeToString())]
    )
    header = _parse(common_pb2.Header, proposal.header_bytes, "proposal header", proposal.tx_id)
    return common_pb2.Payload(header=header, data=transaction.SerializeToString()).SerializeToString()


def envelope_payload_header(envelope: common_pb2.Envelope) -> tuple[str, str]:
    """(tx id, channel id) of an envelope, for requests that must agree with it."""
    payload = _parse(common_pb2.Payload, envelope.payload, "envelope payload")
    channel_header = _parse(common_pb2.ChannelHeader, payload.header.channel_header, "channel header")
    return channel_header.tx_id, channel_header.channel_id


def response_of_envelope(envelope: common_pb2.Envelope) -> proposal_response_pb2.Response:
    """The chaincode response carried inside a prepared transaction (the submit result)."""
    payload = _parse(common_pb2.Payload, envelope.payload, "envelope payload")
    transaction = _parse(transaction_pb2.Transaction, payload.data, "transaction")
    if not transaction.actions:
        raise MalformedMessageError("transaction has no actions", step="parse")
    action_payload = _parse(transaction_pb2.ChaincodeActionPayload, transaction.actions[0].payload,
                            "chaincode action payload")
    response_payload = _parse(proposal_response_pb2.ProposalResponsePayload,
                              action_payload.action.proposal_response_payload,
                              "proposal response payload")
    action = _parse(proposal_pb2.ChaincodeAction, response_payload.extension, "chaincode action")
    return action.response


# --------------------------------------------------------------------------- gateway requests


def digest(message: bytes) -> bytes:
    """SHA-256 of ``message``: what a signer signs (prehashed) for a proposal, a
    transaction or a commit-status request, as fabric-gateway's ``Digest()``."""
    return hashlib.sha256(message).digest()


def commit_status_request_bytes(tx_id: str, channel_id: str, identity: bytes) -> bytes:
    """The serialized ``CommitStatusRequest`` its sender signs."""
    return gateway_pb2.CommitStatusRequest(
        transaction_id=tx_id, channel_id=channel_id, identity=identity).SerializeToString()


def commit_status_request(tx_id: str, channel_id: str, identity: bytes, sign: Sign
                          ) -> gateway_pb2.SignedCommitStatusRequest:
    request = commit_status_request_bytes(tx_id, channel_id, identity)
    return gateway_pb2.SignedCommitStatusRequest(request=request, signature=sign(request))


def proposed_transaction_from_bytes(data: bytes) -> gateway_pb2.ProposedTransaction:
    """A ``ProposedTransaction`` (tx id, signed proposal, endorsing orgs) from the bytes
    of a proposal handed out for signing elsewhere."""
    proposed = _parse(gateway_pb2.ProposedTransaction, data, "proposed transaction")
    if not proposed.transaction_id or not proposed.proposal.proposal_bytes:
        raise MalformedMessageError("proposed transaction has no tx id or no proposal", step="parse")
    return proposed


def prepared_transaction_from_bytes(data: bytes) -> gateway_pb2.PreparedTransaction:
    """A ``PreparedTransaction`` (tx id, envelope) from a transaction's bytes."""
    prepared = _parse(gateway_pb2.PreparedTransaction, data, "prepared transaction")
    if not prepared.transaction_id or not prepared.envelope.payload:
        raise MalformedMessageError("prepared transaction has no tx id or no envelope", step="parse")
    return prepared


def signed_commit_status_request_from_bytes(data: bytes) -> gateway_pb2.SignedCommitStatusRequest:
    """A ``SignedCommitStatusRequest`` from a commit's bytes."""
    return _parse(gateway_pb2.SignedCommitStatusRequest, data, "signed commit status request")


def chaincode_events_request(
    *, channel_id: str, chaincode: str, identity: bytes, sign: Sign,
    start_block: int | None = None, after_tx_id: str | None = None,
) -> gateway_pb2.SignedChaincodeEventsRequest:
    """Events from ``start_block`` (or from the next commit when None), skipping up to and
    including ``after_tx_id`` when given: the checkpoint a listener resumes from."""
    if start_block is None:
        position = ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
    else:
        position = ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))
    request = gateway_pb2.ChaincodeEventsRequest(
        channel_id=channel_id, chaincode_id=chaincode, identity=identity,
        start_position=position, after_transaction_id=after_tx_id or "",
    ).SerializeToString()
    return gateway_pb2.SignedChaincodeEventsRequest(request=request, signature=sign(request))


def parse_commit_status_request(signed: gateway_pb2.SignedCommitStatusRequest
                                ) -> gateway_pb2.CommitStatusRequest:
    return _parse(gateway_pb2.CommitStatusRequest, signed.request, "commit status request")


def parse_chaincode_events_request(signed: gateway_pb2.SignedChaincodeEventsRequest
                                   ) -> gateway_pb2.ChaincodeEventsRequest:
    return _parse(gateway_pb2.ChaincodeEventsRequest, signed.request, "chaincode events request")


def timestamp_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)
