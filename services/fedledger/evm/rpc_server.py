"""The embedded EVM served as JSON-RPC 2.0 over HTTP, so other processes (the bridge's
org nodes, ``fedledger verify --rpc-url``, web3's ``HTTPProvider``, foundry's ``cast``)
can use the chain the host process runs (in memory, or journaled to disk and replayed at
start: :mod:`fedledger.evm.journal`; every state change that arrives here is journaled).

    backend = EmbeddedBackend()
    server = ThreadedServer(create_rpc_app(backend)).start()   # fedledger.web.server
    chain = connect(EvmConfig(backend="rpc", rpc_url=server.url, chain_id=...))

``POST /`` takes one request or a batch (JSON-RPC 2.0). Each request goes through the
same formatting web3 applies to ``EthereumTesterProvider`` (hex-string params accepted,
camelCase results), and the result is written in the wire format: integers as hex
quantities, bytes as ``0x`` data, ``logsBloom`` as 256 bytes. A revert is answered as
geth does: ``{"code": 3, "message": "execution reverted: ...", "data": "0x<revert data>"}``
(``Error(string)`` re-encoded when eth-tester only kept the reason text), which web3 turns
into ``ContractLogicError``/``ContractCustomError``/``ContractPanicError`` and
:mod:`fedledger.evm.errors` into :class:`~fedledger.evm.errors.RevertError`.

Dev-only methods (anvil-compatible): ``evm_mine`` (optional block count),
``evm_increaseTime`` (seconds; mines one block at the new time, returns the seconds),
``evm_snapshot``/``evm_revert`` (eth-tester's; snapshot ids do not survive a restart, the
reverts made with them do). Do not expose this server beyond loopback:
it is a development chain whose dev account keys are public.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Mapping
from typing import Any

from eth_abi import encode as abi_encode
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from fedledger.evm.backends import EmbeddedBackend
from fedledger.evm.errors import ERROR_STRING_SELECTOR

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
REVERT = 3

MAX_BATCH = 1000
_REVERT_PREFIX = "execution reverted"


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


# ---------------------------------------------------------------------- wire format

def to_wire(value: Any, key: str | None = None) -> Any:
    """web3/eth-tester Python values -> JSON-RPC wire values."""
    if value is None or isinstance(value, bool):
        return value
    if key == "logsBloom" and isinstance(value, int):
        return "0x" + value.to_bytes(256, "big").hex()
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_wire(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, float):
        return value  # eth_feeHistory gasUsedRatio
    return value


def _revert_data(exc: BaseException) -> tuple[str, str | None]:
    """(message, hex revert data or None) of a revert raised by eth-tester or web3."""
    data = getattr(exc, "data", None)
    if isinstance(data, (bytes, bytearray)):
        data = "0x" + bytes(data).hex()
    if isinstance(data, str) and data.startswith("0x"):
        message = getattr(exc, "message", None) or str(exc)
        if not message.startswith(_REVERT_PREFIX):
            message = f"{_REVERT_PREFIX}: {message}"
        return message, data
    first: Any = exc.args[0] if exc.args else ""
    if isinstance(first, Exception):
        first = first.args[0] if first.args else ""
    if isinstance(first, (bytes, bytearray)):
        raw = bytes(first)
        return _REVERT_PREFIX, "0x" + raw.hex() if raw else None
    text = str(first)
    rest = text[len(_REVERT_PREFIX):] if text.startswith(_REVERT_PREFIX) else text
    rest = rest.removeprefix(":").strip()
    if rest[:2] in ("b'", 'b"'):
        try:
            literal: object = ast.literal_eval(rest)
        except (ValueError, SyntaxError):
            literal = None
        if isinstance(literal, bytes):
            return f"{_REVERT_PREFIX}: 0x{literal.hex()}", "0x" + literal.hex() if literal else None
    if rest.startswith("0x"):
        try:
            bytes.fromhex(rest[2:])
            return f"{_REVERT_PREFIX}: {rest}", rest
        except ValueError:
            pass
    if rest:
        data = "0x" + (ERROR_STRING_SELECTOR + abi_encode(["string"], [rest])).hex()
        return f"{_REVERT_PREFIX}: {rest}", data
    return _REVERT_PREFIX, None


def _is_revert(exc: BaseException) -> bool:
    from web3.exceptions import ContractLogicError

    if isinstance(exc, ContractLogicError):
        return True
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, TransactionFailed)


# ---------------------------------------------------------------------- dispatch

class RpcDispatcher:
    """JSON-RPC requests (already parsed) -> responses, against one embedded backend."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        from web3.middleware import combine_middleware

        self.backend = backend
        provider = backend.provider
        # Only the tester's own formatting (hex params in, camelCase results out), not
        # web3's client-side middleware (attrdict, validation, ENS).
        self._request = combine_middleware(middleware=tuple(provider._middleware), w3=backend.w3,
                                           provider_request_fn=provider.make_request)

    def handle(self, payload: Any) -> dict[str, Any] | list[dict[str, Any]] | None:
        """A single request or a batch; ``None`` when nothing is to be answered
        (notifications only)."""
        if isinstance(payload, list):
            if not payload:
                return _error(None, RpcError(INVALID_REQUEST, "empty batch"))
            if len(payload) > MAX_BATCH:
                return _error(None, RpcError(INVALID_REQUEST, f"batch over {MAX_BATCH} requests"))
            answers = [self.handle_one(item) for item in payload]
            answered = [a for a in answers if a is not None]
            return answered or None
        return self.handle_one(payload)

    def handle_one(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error(None, RpcError(INVALID_REQUEST, "a request must be a JSON object"))
        request_id = request.get("id")
        if not isinstance(request_id, (str, int, type(None))) or isinstance(request_id, bool):
            return _error(None, RpcError(INVALID_REQUEST, "id must be a string, number or null"))
        method = request.get("method")
        params = request.get("params", [])
        notification = "id" not in request
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str) or not method:
            return _error(request_id, RpcError(INVALID_REQUEST,
                                               "not a JSON-RPC 2.0 request (jsonrpc, method)"))
        if params is None:
            params = []
        if not isinstance(params, (list, dict)):
            return _error(request_id, RpcError(INVALID_PARAMS, "params must be an array"))
        try:
            result = self.call(method, params)
        except RpcError as exc:
            return None if notification else _error(request_id, exc)
        return None if notification else {"jsonrpc": "2.0", "id": request_id, "result": result}

    def call(self, method: str, params: list[Any] | dict[str, Any]) -> Any:
        """One method -> its wire-format result; raises :class:`RpcError`."""
        if isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "named params are not supported; use an array")
        try:
            if method == "evm_mine":
                blocks = int(params[0], 0) if params and isinstance(params[0], str) else (
                    int(params[0]) if params and isinstance(params[0], int) else 1)
                self.backend.mine(max(1, blocks))
                return "0x0"
            if method == "evm_increaseTime":
                if not params:
                    raise RpcError(INVALID_PARAMS, "evm_increaseTime needs the seconds")
                seconds = int(params[0], 0) if isinstance(params[0], str) else int(params[0])
                self.backend.increase_time(seconds)
                return hex(seconds)
            if method in ("web3_clientVersion",):
                return "fedledger-embedded-evm/py-evm"
            if method == "eth_syncing":
                return False
            if method == "eth_accounts":
                return []  # no node-held keys: sign locally, send raw
            if method in ("eth_sendTransaction", "eth_sign", "eth_signTransaction",
                          "eth_signTypedData_v4", "personal_sign"):
                raise RpcError(METHOD_NOT_FOUND, f"{method} is not served: this node holds no "
                               "keys; sign locally and use eth_sendRawTransaction")
            response = self._request(method, _normalize_params(method, list(params)))
        except RpcError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON-RPC error
            raise _map_exception(method, exc) from None
        if response.get("error"):
            error = response["error"]
            if isinstance(error, dict):
                raise RpcError(int(error.get("code", SERVER_ERROR)), str(error.get("message", "")),
                               error.get("data"))
            raise RpcError(SERVER_ERROR, str(error))
        return to_wire(response.get("result"))


_TX_KEYS = {"accessList", "authorizationList", "chainId", "data", "from", "gas", "gasPrice",
            "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "to", "type", "value"}


def _normalize_params(method: str, params: list[Any]) -> list[Any]:
    """Call objects as clients send them (``input`` for the calldata, extra fields such as
    ``blobVersionedHashes``) -> what eth-tester accepts."""
    if method in ("eth_call", "eth_estimateGas", "eth_createAccessList") and params \
            and isinstance(params[0], dict):
        tx = dict(params[0])
        if "input" in tx:
            tx["data"] = tx.pop("input")
        if str(tx.get("from", "")).lower() in ("0x" + "00" * 20, "0x0"):
            # cast sends the zero address; eth-tester would charge it for the call's gas
            # (geth does not), so let the tester pick its funded default sender instead.
            tx.pop("from")
        params = [{k: v for k, v in tx.items() if k in _TX_KEYS and v is not None}, *params[1:]]
    if method == "eth_call" and len(params) > 2:
        params = params[:2]  # state overrides are not supported
    return params


def _map_exception(method: str, exc: Exception) -> RpcError:
    if _is_revert(exc):
        message, data = _revert_data(exc)
        return RpcError(REVERT, message, data)
    name = type(exc).__name__
    text = str(exc) or name
    if isinstance(exc, (TypeError, IndexError, KeyError)) or name in (
            "ValidationError", "Web3ValidationError", "Web3TypeError", "Web3ValueError"):
        lowered = text.lower()
        if "nonce" in lowered or "insufficient" in lowered or "intrinsic" in lowered:
            return RpcError(SERVER_ERROR, text)
        if isinstance(exc, (TypeError, IndexError, KeyError)):
            return RpcError(INVALID_PARAMS, f"invalid params for {method}: {text}")
    log.debug("JSON-RPC %s failed", method, exc_info=True)
    return RpcError(SERVER_ERROR, text)


def _error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


# ---------------------------------------------------------------------- the app

def create_rpc_app(backend: EmbeddedBackend) -> FastAPI:
    """FastAPI app: ``POST /`` is the JSON-RPC endpoint; ``GET /health`` reports the chain."""
    dispatcher = RpcDispatcher(backend)
    app = FastAPI(title="fedledger embedded EVM (JSON-RPC)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.dispatcher = dispatcher

    @app.post("/")
    async def rpc(request: Request) -> Response:
        body = await request.body()
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse(_error(None, RpcError(PARSE_ERROR, f"parse error: {exc}")))
        answer = await run_in_threadpool(dispatcher.handle, payload)
        if answer is None:
            return Response(status_code=204)
        return JSONResponse(answer)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        chain_id = await run_in_threadpool(lambda: int(backend.w3.eth.chain_id))
        block = await run_in_threadpool(lambda: int(backend.w3.eth.block_number))
        return {"status": "ok", "service": "evm-rpc", "chain_id": chain_id, "block": block}

    return app
