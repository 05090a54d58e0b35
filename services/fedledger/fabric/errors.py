"""Errors of the Fabric layer: one root, each error carrying the tx id and the step.

``step`` names where it failed (``endorse``, ``submit``, ``commit``, ``evaluate``,
``events``, ``msp``, ``policy``, ``ledger``...) and ``grpc_code`` the gRPC status the
peer answered with (``"FAILED_PRECONDITION"``...), so a caller can log or map it without
parsing messages. A refusal by the chaincode itself is a :class:`ChaincodeRefusal`, one
subclass per ``fedledger.protocol.errors.ErrorCode``, raised at the step it happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fedledger.errors import ContextField, FedLedgerError
from fedledger.protocol.errors import ErrorCode, Refusal


@dataclass(frozen=True)
class ErrorDetail:
    """One peer's part of a failure, as Fabric's gateway reports it (gateway.ErrorDetail)."""

    address: str
    msp_id: str
    message: str


class FabricError(FedLedgerError):
    """Root of every error raised by ``fedledger.fabric``."""

    tx_id = ContextField()

    def __init__(self, message: str, *, tx_id: str | None = None, step: str | None = None,
                 details: list[ErrorDetail] | None = None, grpc_code: str | None = None) -> None:
        super().__init__(message, step=step, context={"tx_id": tx_id})
        self.details = list(details or [])
        self.grpc_code = grpc_code

    def _notes(self) -> list[str]:
        return [f"[{d.msp_id}@{d.address}: {d.message}]" for d in self.details]


class IdentityError(FabricError):
    """An identity or key could not be loaded (missing file, bad PEM, key/cert mismatch)."""


class MSPError(FabricError):
    """An identity is not valid for an MSP: unknown MSP, untrusted or expired certificate."""


class SignatureError(MSPError):
    """A signature does not verify against the identity that claims it."""


class PolicyError(FabricError):
    """A policy expression is malformed or refers to something that does not exist."""


class PermissionDeniedError(FabricError):
    """The caller is not allowed on this channel or for this operation."""


class EndorseError(FabricError):
    """Endorsement failed: the chaincode returned an error or no endorser could be used."""


class SubmitError(FabricError):
    """The orderer did not accept the transaction."""


class CommitError(FabricError):
    """The transaction was ordered but committed as invalid; ``code`` is Fabric's
    TxValidationCode name (``MVCC_READ_CONFLICT``, ``ENDORSEMENT_POLICY_FAILURE``...)."""

    def __init__(self, message: str, *, code: str, block_number: int | None = None,
                 tx_id: str | None = None, step: str | None = "commit",
                 details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message, tx_id=tx_id, step=step, details=details)
        self.code = code
        self.block_number = block_number


class CommitStatusError(FabricError):
    """The commit status of a transaction could not be obtained."""


class EvaluateError(FabricError):
    """A query (evaluate) failed at the peer or in the chaincode."""


class ChaincodeError(FabricError):
    """The chaincode connection failed or the chaincode broke the shim protocol."""


class ChaincodeRefusal(FabricError):
    """The chaincode refused the call with a machine-readable code (``code``), at
    ``step`` ``endorse`` or ``evaluate``; ``function`` is ``Contract:Function``."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, refusal: Refusal, *, tx_id: str | None = None, step: str | None = None,
                 details: list[ErrorDetail] | None = None, grpc_code: str | None = None) -> None:
        super().__init__(f"{refusal.function} refused ({refusal.code.value}): "
                         f"{refusal.message}", tx_id=tx_id, step=step, details=details,
                         grpc_code=grpc_code)
        self.function = refusal.function
        self.reason = refusal.message


class RecordNotFoundError(ChaincodeRefusal, LookupError):
    code = ErrorCode.NOT_FOUND


class RecordConflictError(ChaincodeRefusal):
    code = ErrorCode.CONFLICT


class ChaincodeForbiddenError(ChaincodeRefusal, PermissionError):
    code = ErrorCode.FORBIDDEN


class InvalidArgumentError(ChaincodeRefusal, ValueError):
    code = ErrorCode.INVALID


class WrongStateError(ChaincodeRefusal):
    code = ErrorCode.STATE


class ChaincodeInternalError(ChaincodeRefusal):
    code = ErrorCode.INTERNAL


REFUSALS: dict[ErrorCode, type[ChaincodeRefusal]] = {
    cls.code: cls for cls in (RecordNotFoundError, RecordConflictError, ChaincodeForbiddenError,
                              InvalidArgumentError, WrongStateError, ChaincodeInternalError)}


class LedgerError(FabricError):
    """The dev peer's ledger store failed."""


class LedgerTamperedError(LedgerError):
    """Stored blocks or state do not match their hash chain."""


__all__ = [
    "REFUSALS", "ChaincodeError", "ChaincodeForbiddenError", "ChaincodeInternalError",
    "ChaincodeRefusal", "CommitError", "CommitStatusError", "EndorseError", "ErrorDetail",
    "EvaluateError", "FabricError", "IdentityError", "LedgerError", "LedgerTamperedError",
    "InvalidArgumentError", "MSPError", "PermissionDeniedError", "PolicyError",
    "RecordConflictError", "RecordNotFoundError", "SignatureError", "SubmitError",
    "WrongStateError",
]
