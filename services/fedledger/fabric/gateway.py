"""Fabric Gateway client: the same calls as the official fabric-gateway clients.

    with Gateway.connect("127.0.0.1:7051", identity, tls_root_cert=ca_pem) as gateway:
        contract = gateway.network("consortium").contract("fedledger", "consortium")
        result = contract.submit("OpenRound", round_json)      # endorse, submit, wait commit
        rounds = contract.evaluate("ListRounds")

It works against any Fabric 2.4+ peer's Gateway service and against the embedded dev
peer. A submit returns only after the transaction committed as VALID; otherwise it
raises :class:`CommitError` carrying Fabric's validation code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import chaincode_event_pb2, transaction_pb2
from google.rpc import status_pb2

from fedledger.fabric import protos
from fedledger.fabric.errors import (
    REFUSALS,
    CommitError,
    CommitStatusError,
    EndorseError,
    ErrorDetail,
    EvaluateError,
    FabricError,
    SubmitError,
)
from fedledger.fabric.identity import SigningIdentity
from fedledger.protocol.errors import parse_refusal

VALID = transaction_pb2.TxValidationCode.VALID
DEFAULT_TIMEOUTS = {"endorse": 30.0, "submit": 10.0, "commit_status": 60.0, "evaluate": 10.0}


def validation_code_name(code: int) -> str:
    try:
        return transaction_pb2.TxValidationCode.Name(code)
    except ValueError:
        return f"UNKNOWN_CODE_{code}"


def error_details(error: grpc.RpcError) -> list[ErrorDetail]:
    """The per-peer ErrorDetails a Fabric gateway packs into the gRPC status."""
    details: list[ErrorDetail] = []
    for key, value in (error.trailing_metadata() or ()):
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status()
        status.ParseFromString(value)
        for any_detail in status.details:
            detail = gateway_pb2.ErrorDetail()
            if any_detail.Unpack(detail):
                details.append(ErrorDetail(detail.address, detail.msp_id, detail.message))
    return details


def _wrap(error: grpc.RpcError, cls: type[FabricError], step: str,
          tx_id: str | None) -> FabricError:
    """The typed error of a failed gateway call: a :class:`ChaincodeRefusal` subclass when
    the chaincode refused (its code read from the refusal it encoded, wherever Fabric put
    it), else ``cls``; both carry the gRPC status code by name."""
    code = error.code().name if error.code() else "UNKNOWN"
    details = error_details(error)
    refusal = parse_refusal(error.details() or "", *(d.message for d in details))
    if refusal is not None:
        return REFUSALS[refusal.code](refusal, tx_id=tx_id, step=step, details=details,
                                      grpc_code=code)
    return cls(f"{step} failed ({code}): {error.details()}", tx_id=tx_id, step=step,
               details=details, grpc_code=code)


def _as_bytes(arg: Any) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode("utf-8")
    raise TypeError(f"transaction arguments are str or bytes, not {type(arg).__name__}")


@dataclass(frozen=True)
class ChaincodeEvent:
    block_number: int
    tx_id: str
    chaincode: str
    event_name: str
    payload: bytes


@dataclass(frozen=True)
class Status:
    """Commit status of a submitted transaction."""

    tx_id: str
    code: int
    block_number: int

    @property
    def successful(self) -> bool:
        return self.code == VALID

    @property
    def code_name(self) -> str:
        return validation_code_name(self.code)


class Gateway:
    """A connection to one gateway peer, acting as one signing identity."""

    def __init__(self, channel: grpc.Channel, identity: SigningIdentity,
                 timeouts: Mapping[str, float] | None = None) -> None:
        self._channel = channel
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self.identity = identity
        self.creator = identity.identity.serialize()
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}

    @classmethod
    def connect(cls, endpoint: str, identity: SigningIdentity, *, tls_root_cert: bytes | None = None,
                server_name: str | None = None, timeouts: Mapping[str, float] | None = None
                ) -> Gateway:
        """Connect to ``host:port``; with ``tls_root_cert`` (PEM) over TLS, naming the
        peer's certificate host with ``server_name`` when it differs from the endpoint."""
        options = [("grpc.max_receive_message_length", 100 * 1024 * 1024)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls_root_cert is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=tls_root_cert)
            channel = grpc.secure_channel(endpoint, credentials, options=options)
        else:
            channel = grpc.insecure_channel(endpoint, options=options)
        return cls(channel, identity, timeouts)

    def network(self, channel_id: str) -> Network:
        return Network(self, channel_id)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the four gateway calls, each with its own error type

    def _endorse(self, request: gateway_pb2.EndorseRequest) -> gateway_pb2.EndorseResponse:
        try:
            return self._stub.Endorse(request, timeout=self.timeouts["endorse"])
        except grpc.RpcError as error:
            raise _wrap(error, EndorseError, "endorse", request.transaction_id) from None

    def _submit(self, request: gateway_pb2.SubmitRequest) -> None:
        try:
            self._stub.Submit(request, timeout=self.timeouts["submit"])
        except grpc.RpcError as error:
            raise _wrap(error, SubmitError, "submit", request.transaction_id) from None

    def _commit_status(self, tx_id: str, channel_id: str) -> Status:
        request = protos.commit_status_request(tx_id, channel_id, self.creator, self.identity.sign)
        try:
            response = self._stub.CommitStatus(request, timeout=self.timeouts["commit_status"])
        except grpc.RpcError as error:
            raise _wrap(error, CommitStatusError, "commit_status", tx_id) from None
        return Status(tx_id, response.result, response.block_number)

    def _evaluate(self, request: gateway_pb2.EvaluateRequest) -> gateway_pb2.EvaluateResponse:
        try:
            return self._stub.Evaluate(request, timeout=self.timeouts["evaluate"])
        except grpc.RpcError as error:
            raise _wrap(error, EvaluateError, "evaluate", request.transaction_id) from None

    def _events(self, request: gateway_pb2.SignedChaincodeEventsRequest):
        return self._stub.ChaincodeEvents(request)


class Network:
    """One channel seen through a gateway."""

    def __init__(self, gateway: Gateway, channel_id: str) -> None:
        self.gateway = gateway
        self.channel_id = channel_id

    def contract(self, chaincode: str, contract_name: str | None = None) -> Contract:
        return Contract(self, chaincode, contract_name)

    def chaincode_events(self, chaincode: str, *, start_block: int | None = None,
                         after_tx_id: str | None = None) -> ChaincodeEvents:
        """Events of committed VALID transactions, in commit order. Resume after a
        checkpoint with ``start_block`` = its block and ``after_tx_id`` = its last tx."""
        request = protos.chaincode_events_request(
            channel_id=self.channel_id, chaincode=chaincode, identity=self.gateway.creator,
            sign=self.gateway.identity.sign, start_block=start_block, after_tx_id=after_tx_id)
        return ChaincodeEvents(self.gateway._events(request), chaincode)


class ChaincodeEvents:
    """Iterator over chaincode events; ``close()`` (or a ``with`` block) ends the stream."""

    def __init__(self, call: Any, chaincode: str) -> None:
        self._call = call
        self._chaincode = chaincode

    def __iter__(self) -> Iterator[ChaincodeEvent]:
        try:
            for response in self._call:
                for event in response.events:
                    yield _event(event, response.block_number)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED:
                return
            raise _wrap(error, FabricError, "events", None) from None

    def close(self) -> None:
        self._call.cancel()

    def __enter__(self) -> ChaincodeEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _event(event: chaincode_event_pb2.ChaincodeEvent, block_number: int) -> ChaincodeEvent:
    return ChaincodeEvent(block_number, event.tx_id, event.chaincode_id, event.event_name,
                          event.payload)


@dataclass
class SubmittedTransaction:
    """A transaction handed to the orderer: its result is known, its commit is not yet."""

    network: Network
    tx_id: str
    result: bytes

    def status(self) -> Status:
        return self.network.gateway._commit_status(self.tx_id, self.network.channel_id)

    def committed(self) -> Status:
        """Wait for the commit; raises :class:`CommitError` unless it committed VALID."""
        status = self.status()
        if not status.successful:
            raise CommitError(
                f"transaction {status.tx_id} committed as {status.code_name} "
                f"in block {status.block_number}",
                code=status.code_name, block_number=status.block_number, tx_id=status.tx_id)
        return status


@dataclass
class Transaction:
    """An endorsed, signed transaction not yet handed to the orderer."""

    network: Network
    tx_id: str
    envelope: common_pb2.Envelope

    @property
    def result(self) -> bytes:
        return protos.response_of_envelope(self.envelope).payload

    def submit(self) -> SubmittedTransaction:
        self.network.gateway._submit(gateway_pb2.SubmitRequest(
            transaction_id=self.tx_id, channel_id=self.network.channel_id,
            prepared_transaction=self.envelope))
        return SubmittedTransaction(self.network, self.tx_id, self.result)


class Contract:
    """A chaincode (and optionally one contract inside it) on a channel."""

    def __init__(self, network: Network, chaincode: str, contract_name: str | None = None) -> None:
        self.network = network
        self.chaincode = chaincode
        self.contract_name = contract_name

    def _function(self, name: str) -> str:
        return f"{self.contract_name}:{name}" if self.contract_name else name

    def _proposal(self, name: str, args: Sequence[Any], transient: Mapping[str, bytes] | None
                  ) -> tuple[protos.UnsignedProposal, Any]:
        gateway = self.network.gateway
        unsigned = protos.build_proposal(
            creator=gateway.creator, channel_id=self.network.channel_id, chaincode=self.chaincode,
            args=[_as_bytes(self._function(name)), *(_as_bytes(a) for a in args)],
            transient=transient)
        return unsigned, unsigned.signed(gateway.identity.sign(unsigned.proposal_bytes))

    def evaluate(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                 target_orgs: Sequence[str] | None = None) -> bytes:
        """Run a query on one peer; nothing is ordered or committed."""
        unsigned, signed = self._proposal(name, args, transient)
        response = self.network.gateway._evaluate(gateway_pb2.EvaluateRequest(
            transaction_id=unsigned.tx_id, channel_id=self.network.channel_id,
            proposed_transaction=signed, target_organizations=list(target_orgs or [])))
        return response.result.payload

    def endorse(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                endorsing_orgs: Sequence[str] | None = None) -> Transaction:
        """Endorse only: the returned transaction can be submitted later (or never)."""
        gateway = self.network.gateway
        unsigned, signed = self._proposal(name, args, transient)
        endorsed = gateway._endorse(gateway_pb2.EndorseRequest(
            transaction_id=unsigned.tx_id, channel_id=self.network.channel_id,
            proposed_transaction=signed, endorsing_organizations=list(endorsing_orgs or [])))
        envelope = endorsed.prepared_transaction
        envelope.signature = gateway.identity.sign(envelope.payload)
        return Transaction(self.network, unsigned.tx_id, envelope)

    def submit_async(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                     endorsing_orgs: Sequence[str] | None = None) -> SubmittedTransaction:
        """Endorse and hand to the orderer; returns before the commit."""
        return self.endorse(name, *args, transient=transient, endorsing_orgs=endorsing_orgs).submit()

    def submit(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
               endorsing_orgs: Sequence[str] | None = None) -> bytes:
        """Endorse, order and wait for the commit; raises CommitError unless VALID."""
        return self.submit_with_id(name, *args, transient=transient,
                                   endorsing_orgs=endorsing_orgs)[0]

    def submit_with_id(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                       endorsing_orgs: Sequence[str] | None = None) -> tuple[bytes, str]:
        """:meth:`submit`, also returning the committed transaction's id."""
        submitted = self.submit_async(name, *args, transient=transient,
                                      endorsing_orgs=endorsing_orgs)
        submitted.committed()
        return submitted.result, submitted.tx_id
