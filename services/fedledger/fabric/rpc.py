"""The four Gateway RPCs (Endorse, Submit, CommitStatus, Evaluate; and ChaincodeEvents),
as one identity, each turning a gRPC failure into the error of its step.

:class:`GatewayClient` is what proposals, transactions and commits talk through;
:class:`~fedledger.fabric.gateway.Gateway` adds connecting and the Network / Contract API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import transaction_pb2
from google.rpc import status_pb2

from fedledger.fabric import protos
from fedledger.fabric.errors import (
    REFUSALS,
    CommitStatusError,
    EndorseError,
    ErrorDetail,
    EvaluateError,
    FabricError,
    IdentityError,
    SubmitError,
)
from fedledger.fabric.identity import Identity, SigningIdentity
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


def wrap_rpc_error(error: grpc.RpcError, cls: type[FabricError], step: str,
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


class GatewayClient:
    """The gateway calls of one identity over one gRPC channel; with a
    :class:`SigningIdentity` it signs what it sends, with a bare :class:`Identity` the
    caller signs (see :meth:`sign`)."""

    def __init__(self, channel: grpc.Channel, identity: SigningIdentity | Identity,
                 timeouts: Mapping[str, float] | None = None) -> None:
        self._channel = channel
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self.identity = identity
        self.creator = identity.serialize()
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}

    def sign(self, message: bytes, what: str) -> bytes:
        """The gateway identity's signature of ``message``; :class:`IdentityError` when it
        has no key (then ``what`` must be signed elsewhere and attached)."""
        if not isinstance(self.identity, SigningIdentity):
            attach = (f": sign its digest elsewhere and attach it with Gateway.new_signed_{what}"
                      if what in ("proposal", "transaction", "commit") else "")
            raise IdentityError(f"the gateway has no signing key for the {what}{attach}", step="sign")
        return self.identity.sign(message)

    # -- the four gateway calls, each with its own error type

    def _endorse(self, request: gateway_pb2.EndorseRequest) -> gateway_pb2.EndorseResponse:
        try:
            return self._stub.Endorse(request, timeout=self.timeouts["endorse"])
        except grpc.RpcError as error:
            raise wrap_rpc_error(error, EndorseError, "endorse", request.transaction_id) from None

    def _submit(self, request: gateway_pb2.SubmitRequest) -> None:
        try:
            self._stub.Submit(request, timeout=self.timeouts["submit"])
        except grpc.RpcError as error:
            raise wrap_rpc_error(error, SubmitError, "submit", request.transaction_id) from None

    def _commit_status(self, tx_id: str, channel_id: str,
                       request: gateway_pb2.SignedCommitStatusRequest | None = None) -> Status:
        if request is None:
            message = protos.commit_status_request_bytes(tx_id, channel_id, self.creator)
            request = gateway_pb2.SignedCommitStatusRequest(
                request=message, signature=self.sign(message, "commit"))
        try:
            response = self._stub.CommitStatus(request, timeout=self.timeouts["commit_status"])
        except grpc.RpcError as error:
            raise wrap_rpc_error(error, CommitStatusError, "commit_status", tx_id) from None
        return Status(tx_id, response.result, response.block_number)

    def _evaluate(self, request: gateway_pb2.EvaluateRequest) -> gateway_pb2.EvaluateResponse:
        try:
            return self._stub.Evaluate(request, timeout=self.timeouts["evaluate"])
        except grpc.RpcError as error:
            raise wrap_rpc_error(error, EvaluateError, "evaluate", request.transaction_id) from None

    def _events(self, request: gateway_pb2.SignedChaincodeEventsRequest) -> Any:
        return self._stub.ChaincodeEvents(request)


__all__ = ["DEFAULT_TIMEOUTS", "VALID", "GatewayClient", "Status", "error_details", "validation_code_name",
           "wrap_rpc_error"]
