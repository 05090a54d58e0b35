"""One error root for the services and the JSON shape every failure is reported in:
``{"error": code, "message": text, "details": {...}}`` with a 4xx/5xx status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fedledger.errors import FedLedgerError
from fedledger.fabric.errors import ChaincodeRefusal, FabricError


class ServiceError(FedLedgerError):
    """A request that cannot be served; ``status`` is the HTTP status to answer with."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status or self.status
        self.code = code or self.code
        self.details = details or {}


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class Unavailable(ServiceError):
    status, code = 503, "unavailable"


class LedgerRefused(ServiceError):
    """The chaincode refused the call: the HTTP status and ``code`` are the refusal's
    (``not_found`` 404, ``conflict`` 409, ``forbidden`` 403, ``invalid`` 422, ``state``
    409, ``internal`` 500)."""


def ledger_failure(action: str, exc: FabricError, *, unavailable: type[ServiceError]
                   ) -> ServiceError:
    """The HTTP answer to a failed ledger call: a chaincode refusal keeps its own code
    and status; anything else (peer down, timeout, commit failure) is ``unavailable``."""
    details = {"tx_id": exc.tx_id, "step": exc.step, "grpc_code": exc.grpc_code}
    if isinstance(exc, ChaincodeRefusal):
        return LedgerRefused(f"{action}: {exc.reason}", status=exc.code.http_status,
                             code=exc.code.value, details={**details, "function": exc.function})
    return unavailable(f"{action} failed on the ledger: {exc.message}", details=details)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "details": details or {}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
                    for e in exc.errors()]
        summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
        return JSONResponse(error_body("invalid_request", f"invalid request: {summary}",
                                       {"problems": problems}), status_code=422)
