"""Machine-readable chaincode error codes, and their encoding on the wire.

A refusal by the chaincode travels to the client inside the chaincode response's
``message``: the only part of a failed response that a Fabric gateway passes on (the
peer drops the payload of a response with status >= 400, and wraps the message in its
own words: ``chaincode response 500, ...`` in an endorse ErrorDetail, ``evaluate call to
endorser returned error: ...`` in an evaluate status). So the message carries, after a
fixed marker, a canonical-JSON object ``{"code", "function", "message"}``; the client
finds the marker wherever Fabric put it and never reads Fabric's own wording.

    refusal_message(ErrorCode.NOT_FOUND, "consortium:GetRound", "round 3 not found")
    parse_refusal(any_text_fabric_wrapped_around_it)  # -> Refusal | None

``FedLedgerError`` (the root of every fedledger error) is re-exported here for the
chaincode, which depends on ``fedledger.protocol`` and nothing else of fedledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from fedledger.canonical import canonical_json
from fedledger.errors import FedLedgerError

#: Precedes the JSON object in a refusal message; chosen to occur nowhere else.
MARKER = "fedledger-error "


class ErrorCode(StrEnum):
    """Why the chaincode refused. Each maps to one HTTP status (``http_status``)."""

    NOT_FOUND = "not_found"        # the record asked for does not exist
    CONFLICT = "conflict"          # the key holds different data; writes never replace it
    FORBIDDEN = "forbidden"        # the caller may not do this (wrong org, not a member)
    INVALID = "invalid"            # the arguments are malformed or inconsistent
    STATE = "state"                # the records are not in a state that allows it (yet)
    INTERNAL = "internal"          # a bug in the chaincode, not the caller's fault

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.INVALID: 422,
    ErrorCode.STATE: 409,
    ErrorCode.INTERNAL: 500,
}


@dataclass(frozen=True)
class Refusal:
    """A decoded chaincode refusal."""

    code: ErrorCode
    function: str      # "Contract:Function"
    message: str       # for people; never parsed


def refusal_message(code: ErrorCode, function: str, message: str) -> str:
    """The chaincode response message that carries this refusal."""
    body = canonical_json({"code": code.value, "function": function, "message": message})
    return MARKER + body.decode("utf-8")


def parse_refusal(*texts: str) -> Refusal | None:
    """The first refusal carried by any of ``texts`` (gRPC status message, ErrorDetail
    messages), or None when none carries one (a transport or peer failure)."""
    decoder = json.JSONDecoder()
    for text in texts:
        at = text.find(MARKER)
        while at >= 0:
            try:
                body, _ = decoder.raw_decode(text, at + len(MARKER))
                return Refusal(ErrorCode(body["code"]), str(body["function"]),
                               str(body["message"]))
            except (ValueError, KeyError, TypeError):
                at = text.find(MARKER, at + 1)
    return None


__all__ = ["MARKER", "ErrorCode", "FedLedgerError", "Refusal", "parse_refusal", "refusal_message"]
