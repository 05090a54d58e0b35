"""The errors of every fedledger HTTP client (:mod:`fedledger.clients`).

One tree, whichever service answered: each error carries the ``service`` ("coordinator",
"orgnode", "host"), the request (``method``, ``path``), the HTTP ``status`` and the
service's own error ``code`` and ``details`` (the ``{"error", "message", "details"}``
body every fedledger service answers a failure with; :mod:`fedledger.web.errors`).

- :class:`ServiceUnavailable`: not reachable, or a 5xx: try again later.
- :class:`RequestRefused`: a 4xx: retrying the same request will not help. Its
  subclasses name the usual statuses (401, 403, 404, 409, 413, 422).
- :class:`UnexpectedResponse`: a 2xx whose body is not what the API contract says.
- :class:`UntrustedServer`: the service's TLS certificate does not verify against the
  CA the client was given (a configuration error, not worth retrying).
- :class:`InsecureTransport`: not sent at all: a bearer token to a plain ``http://``
  address off this machine, where anyone on the path could read it.

All are :class:`fedledger.errors.FedLedgerError`.
"""

from __future__ import annotations

from typing import Any

import httpx

from fedledger.errors import FedLedgerError


class ClientError(FedLedgerError):
    """Root of the clients' errors. ``str(error)`` tells the service, the request, the
    status and the code; ``reason`` is the service's own message (or why it was not
    reachable)."""

    def __init__(self, message: str, *, service: str, method: str, path: str,
                 status: int | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.details = details or {}
        self.reason = message if reason is None else reason


class ServiceUnavailable(ClientError, ConnectionError):
    """The service is not reachable, timed out, or answered a 5xx."""


class RequestRefused(ClientError):
    """The service refused the request (a 4xx)."""


class Unauthorized(RequestRefused, PermissionError):
    """401: no credentials, or wrong ones (bearer token, request signature)."""


class Forbidden(RequestRefused, PermissionError):
    """403: the caller may not do this (role, org)."""


class NotFound(RequestRefused, LookupError):
    """404: the resource does not exist (yet)."""


class Conflict(RequestRefused):
    """409: the resource's state does not allow it, or it holds different data."""


class PayloadTooLarge(RequestRefused):
    """413: the request's or the answer's body is over a limit."""


class InvalidRequest(RequestRefused, ValueError):
    """400 / 422: the request is malformed (``details["problems"]`` tells where)."""


class UnexpectedResponse(ClientError, ValueError):
    """A success whose body does not parse as the API contract's model."""


class UntrustedServer(ClientError, ConnectionError):
    """The TLS handshake failed: the service's certificate does not verify against the
    client's CA bundle (or names another host). Nothing was sent."""


class InsecureTransport(ClientError, ValueError):
    """The request was not sent: it carries a bearer token and its URL is plain
    ``http://`` to a host that is not loopback (use ``https://``)."""


_BY_STATUS: dict[int, type[RequestRefused]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 422: InvalidRequest,
}


def error_for(response: httpx.Response, *, service: str, method: str, path: str) -> ClientError:
    """The error of a failed response (status >= 400), read from the service's body."""
    status = response.status_code
    code, message, details = _parse_body(response)
    text = f"{service} {method} {path}: {status}" + (f" {code}" if code else "") + \
        (f": {message}" if message else "")
    kind: type[ClientError]
    if status >= 500:
        kind = ServiceUnavailable
    else:
        kind = _BY_STATUS.get(status, RequestRefused)
    return kind(text, service=service, method=method, path=path, status=status, code=code,
                details=details, reason=message)


def _parse_body(response: httpx.Response) -> tuple[str | None, str, dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:300], {}
    if not isinstance(body, dict):
        return None, str(body)[:300], {}
    code = body.get("error")
    message = body.get("message") or body.get("detail") or ""
    details = body.get("details")
    return (str(code) if code is not None else None, str(message)[:500],
            details if isinstance(details, dict) else {})


__all__ = ["ClientError", "Conflict", "Forbidden", "InsecureTransport", "InvalidRequest", "NotFound",
           "PayloadTooLarge", "RequestRefused", "ServiceUnavailable", "Unauthorized",
           "UnexpectedResponse", "UntrustedServer", "error_for"]
