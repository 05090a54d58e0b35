"""Contract API: the layer between the shim and our business logic.

A contract is a :class:`Contract` subclass with a ``name``; its functions are async
methods marked :func:`transaction` (may write: clients *submit* them) or :func:`query`
(read-only: clients *evaluate* them; the API refuses writes from them). The Fabric
function name is the method name in PascalCase (``submit_update`` -> ``SubmitUpdate``)
unless given explicitly.

:class:`ContractChaincode` is the chaincode object the shim calls (``init``/``invoke``).
``args[0]`` is ``"Contract:Function"`` (a bare ``"Function"`` goes to the default
contract); the remaining args are UTF-8 strings converted by the parameter's type
hint: ``str``-based types are taken as-is, anything else (ints, bools, lists, pydantic
records) is parsed as JSON and validated strictly. Parameters with a default may be
omitted. Results (pydantic models, dicts, lists, None) go back as canonical JSON.

Errors: a :class:`ContractError` (one subclass per :class:`ErrorCode`: ``NotFound``,
``Conflict``, ``Forbidden``, ``Invalid``, ``WrongState``) -> status 500 with the
machine-readable message of ``fedledger.protocol.errors`` (code, ``Contract:Function``,
text); bad arguments -> code ``invalid`` naming the argument; any other exception ->
code ``internal``. Clients read the code, never the text.

Validate first, write last. Writes go through :meth:`Context.put_state` /
:meth:`Context.del_state` / :meth:`Context.set_event`, which are *buffered* and handed
to the stub only after the function returned successfully. The peer does discard the
write set of a failed simulation, but we do not want the correctness of a record to
hang on that: a buffered write cannot leak from a function that failed half-way, a
query cannot write at all, and the rule "check everything, then write" holds by
construction. Buffering changes nothing visible: Fabric has no read-your-own-writes
either (a read during simulation sees the committed state).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias, TypeVar

from fabric_protos.peer import proposal_response_pb2
from pydantic import BaseModel, TypeAdapter, ValidationError

from fedledger.canonical import canonical_json
from fedledger.protocol.errors import ErrorCode, FedLedgerError, refusal_message

Response: TypeAlias = proposal_response_pb2.Response
M = TypeVar("M", bound=BaseModel)
#: (object_type, attrs) of a composite key, as built by ``contracts/keys.py``.
KeyParts = tuple[str, tuple[str, ...]]

SYSTEM_CONTRACT = "org.hyperledger.fabric"
_FN_ATTR = "__fedledger_function__"
# Stub methods that change the write set or the event; the read-only view refuses them.
_WRITE_METHODS = frozenset({
    "put_state", "del_state", "set_event", "put_private_data", "del_private_data",
    "purge_private_data", "set_state_validation_parameter",
    "set_private_data_validation_parameter",
})


class ContractError(FedLedgerError):
    """A refusal the caller should see; raise the subclass that names its code."""

    code: ClassVar[ErrorCode] = ErrorCode.INVALID

    def __init__(self, message: str) -> None:
        super().__init__(message)


class NotFound(ContractError):
    """The record asked for does not exist."""

    code = ErrorCode.NOT_FOUND


class Conflict(ContractError):
    """The key already holds different data (records are never replaced)."""

    code = ErrorCode.CONFLICT


class Forbidden(ContractError):
    """The caller may not do this: wrong org, not a member, not on the committee."""

    code = ErrorCode.FORBIDDEN


class Invalid(ContractError):
    """The arguments are malformed or inconsistent with each other or the ledger."""

    code = ErrorCode.INVALID


class WrongState(ContractError):
    """The records are not (or no longer) in a state that allows this call."""

    code = ErrorCode.STATE


# --- declaring functions -------------------------------------------------------------


@dataclass(frozen=True)
class _Marker:
    kind: str            # "transaction" | "query"
    name: str | None     # explicit Fabric name, else derived from the method name


def _mark(kind: str, fn: Callable | None, name: str | None):
    def decorate(method: Callable) -> Callable:
        if not inspect.iscoroutinefunction(method):
            raise TypeError(f"{method.__qualname__}: contract functions must be async")
        setattr(method, _FN_ATTR, _Marker(kind, name))
        return method

    return decorate(fn) if fn is not None else decorate


def transaction(fn: Callable | None = None, *, name: str | None = None):
    """Mark a contract method as a transaction (submitted, may write state and an event)."""
    return _mark("transaction", fn, name)


def query(fn: Callable | None = None, *, name: str | None = None):
    """Mark a contract method as a query: evaluate-only, any write raises."""
    return _mark("query", fn, name)


class Contract:
    """Base class of contracts; subclasses set ``name`` and define marked methods."""

    name: ClassVar[str]

    async def before_transaction(self, ctx: Context, function: str) -> None:
        """Hook run before every function of this contract (e.g. an access check)."""


# --- the per-call context ------------------------------------------------------------


class ReadOnlyStub:
    """The stub as contracts see it: everything but the write methods."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub

    def __getattr__(self, attr: str) -> Any:
        if attr in _WRITE_METHODS:
            raise AttributeError(
                f"stub.{attr} is not available to contracts: write through ctx.put_state / "
                "ctx.del_state / ctx.set_event (buffered until the function succeeds)"
            )
        return getattr(self._stub, attr)


def _to_datetime(stamp: Any) -> datetime:
    """The tx timestamp as an aware UTC datetime (protobuf Timestamp or datetime)."""
    if isinstance(stamp, datetime):
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    # google.protobuf.Timestamp: nanos are truncated to microseconds.
    return datetime.fromtimestamp(stamp.seconds, tz=UTC).replace(
        microsecond=stamp.nanos // 1000
    )


class Context:
    """One function call: the caller, the tx, read access, and the buffered writes."""

    def __init__(self, stub: Any, function: str, *, read_only: bool) -> None:
        self.stub = ReadOnlyStub(stub)
        self.function = function
        self.read_only = read_only
        self.client_msp_id: str = stub.get_creator_msp_id()
        self.tx_id: str = stub.tx_id
        self.timestamp: datetime = _to_datetime(stub.get_tx_timestamp())
        self._writes: list[tuple[str, bytes | None]] = []
        self._event: tuple[str, bytes] | None = None

    # reads ---------------------------------------------------------------------------

    def key(self, parts: KeyParts) -> str:
        """The composite key of ``(object_type, attrs)`` (see ``contracts/keys.py``)."""
        object_type, attrs = parts
        return self.stub.create_composite_key(object_type, list(attrs))

    async def get_record(self, parts: KeyParts, model: type[M]) -> M | None:
        """The record stored under the composite key (committed state), or None."""
        raw = await self.stub.get_state(self.key(parts))
        return model.model_validate_json(raw) if raw else None

    async def scan(self, parts: KeyParts, model: type[M]) -> list[M]:
        """All records whose composite key starts with ``(object_type, *attrs)``, in key order."""
        object_type, attrs = parts
        found = self.stub.get_state_by_partial_composite_key(object_type, list(attrs))
        return [model.model_validate_json(value) async for _, value in _key_values(found)]

    async def require(self, parts: KeyParts, model: type[M], what: str) -> M:
        """The stored record, or NotFound("<what> not found")."""
        record = await self.get_record(parts, model)
        if record is None:
            raise NotFound(f"{what} not found")
        return record

    async def stored_once(self, parts: KeyParts, record: M,
                          conflict: str | Callable[[M], str], *,
                          as_given: Callable[[M], M] | None = None) -> M | None:
        """The write-once rule of records that are never replaced: the record stored
        under the key when it is the same as ``record`` (a retry: return it as the
        result), None when the key is empty (go on and write), and :class:`Conflict`
        (``conflict``, or ``conflict(stored)``) when the key holds different data.
        ``as_given`` maps the stored record back to what the caller gave (the fields the
        ledger stamps cleared) before comparing."""
        stored = await self.get_record(parts, type(record))
        if stored is None:
            return None
        if (as_given(stored) if as_given is not None else stored) == record:
            return stored
        raise Conflict(conflict(stored) if callable(conflict) else conflict)

    # writes (buffered) ---------------------------------------------------------------

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise RuntimeError(f"{self.function} is a query and cannot {what}")

    def put_state(self, key: str, value: bytes) -> None:
        self._check_writable("write state")
        self._writes.append((key, value))

    def put_record(self, parts: KeyParts, record: BaseModel) -> None:
        """Store ``record`` as canonical JSON under the composite key (buffered)."""
        self.put_state(self.key(parts), canonical_json(record.model_dump(mode="json")))

    def del_state(self, key: str) -> None:
        self._check_writable("delete state")
        self._writes.append((key, None))

    def set_event(self, name: str, payload: Any) -> None:
        """Set the tx's chaincode event; ``payload`` is encoded as canonical JSON.

        Fabric keeps one event per transaction, so a second call is a bug, not a choice.
        """
        self._check_writable("set an event")
        if self._event is not None:
            raise RuntimeError(f"{self.function} set a second event ({name!r} after "
                               f"{self._event[0]!r}); Fabric keeps one per transaction")
        self._event = (name, canonical_json(payload))

    async def _flush(self, stub: Any) -> None:
        for key, value in self._writes:
            if value is None:
                await stub.del_state(key)
            else:
                await stub.put_state(key, value)
        if self._event is not None:
            stub.set_event(*self._event)


async def _key_values(found: Any) -> AsyncIterator[tuple[str, bytes]]:
    """(key, value) pairs of a stub range result: an async iterator (or an awaitable of
    one) of ``queryresult.KV`` messages or ``(key, value)`` tuples."""
    if not hasattr(found, "__aiter__"):
        found = await found
    async for item in found:
        if isinstance(item, tuple):
            yield item[0], item[1]
        else:
            yield item.key, item.value


# --- functions and their parameters ---------------------------------------------------


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _is_text(annotation: Any) -> bool:
    """True when the argument string is the value itself (str, constrained str, str|None)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_text(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(members) == 1 and _is_text(members[0])
    if typing.get_origin(annotation) is typing.Literal:
        return all(isinstance(v, str) for v in typing.get_args(annotation))
    return annotation is str


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: Any
    adapter: TypeAdapter
    text: bool           # taken as-is, not parsed as JSON
    required: bool
    default: Any

    def parse(self, raw: bytes) -> Any:
        text = raw.decode("utf-8")
        if self.text:
            return self.adapter.validate_python(text, strict=True)
        return self.adapter.validate_json(text, strict=True)


@dataclass(frozen=True)
class Function:
    contract: Contract
    name: str                    # Fabric name, e.g. "SubmitUpdate"
    kind: str                    # "transaction" | "query"
    method: Callable[..., Awaitable[Any]]
    parameters: tuple[Parameter, ...]

    @property
    def qualified(self) -> str:
        return f"{self.contract.name}:{self.name}"

    @classmethod
    def of(cls, contract: Contract, attr: str, marker: _Marker) -> Function:
        method = getattr(contract, attr)
        hints = typing.get_type_hints(method, include_extras=True)
        params = list(inspect.signature(method).parameters.values())
        if not params or params[0].name != "ctx":
            raise TypeError(f"{contract.name}.{attr}: first parameter must be ctx")
        parameters = []
        for p in params[1:]:
            if p.name not in hints:
                raise TypeError(f"{contract.name}.{attr}: parameter {p.name} needs a type hint")
            required = p.default is inspect.Parameter.empty
            parameters.append(Parameter(
                name=p.name, annotation=hints[p.name], adapter=TypeAdapter(hints[p.name]),
                text=_is_text(hints[p.name]), required=required,
                default=None if required else p.default,
            ))
        return cls(contract, marker.name or _pascal(attr), marker.kind, method, tuple(parameters))

    def bind(self, args: list[bytes]) -> list[Any]:
        """Arguments converted per type hint; ContractError naming what was wrong."""
        low = sum(p.required for p in self.parameters)
        high = len(self.parameters)
        if not low <= len(args) <= high:
            expected = str(high) if low == high else f"{low} to {high}"
            names = ", ".join(p.name if p.required else f"[{p.name}]" for p in self.parameters)
            raise Invalid(
                f"expects {expected} argument{'s' if high != 1 else ''} ({names}), got {len(args)}"
            )
        values = []
        for param, raw in zip(self.parameters, args, strict=False):
            try:
                values.append(param.parse(raw))
            except UnicodeDecodeError:
                raise Invalid(f"argument {param.name!r} is not UTF-8") from None
            except ValidationError as exc:
                raise Invalid(_describe(param.name, exc)) from None
        values.extend(p.default for p in self.parameters[len(args):])
        return values

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": ["submit"] if self.kind == "transaction" else ["evaluate"],
            "parameters": [
                {"name": p.name, "required": p.required,
                 "schema": p.adapter.json_schema()} for p in self.parameters
            ],
        }


def _describe(param: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        return f"argument {param!r} is not valid JSON: {errors[0]['msg']}"
    problems = "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or '(value)'}: {e['msg']}" for e in errors[:5]
    )
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"argument {param!r} is invalid: {problems}{more}"


# --- the chaincode object the shim calls -----------------------------------------------


def _ok(payload: bytes) -> Response:
    return Response(status=200, payload=payload)


def _error(code: ErrorCode, function: str, message: str) -> Response:
    return Response(status=500, message=refusal_message(code, function, message))


def _encode(result: Any) -> bytes:
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    elif isinstance(result, list):
        result = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result]
    return canonical_json(result)


class ContractChaincode:
    """Routes ``Contract:Function`` invocations to contract methods (see module doc)."""

    def __init__(self, contracts: list[Contract], default: str) -> None:
        self.contracts = {c.name: c for c in contracts}
        if len(self.contracts) != len(contracts):
            raise ValueError("contract names must be unique")
        if default not in self.contracts:
            raise ValueError(f"default contract {default!r} is not among the contracts")
        self.default = default
        self.functions: dict[str, dict[str, Function]] = {}
        for contract in contracts:
            table: dict[str, Function] = {}
            for attr in dir(type(contract)):
                marker = getattr(getattr(type(contract), attr), _FN_ATTR, None)
                if isinstance(marker, _Marker):
                    fn = Function.of(contract, attr, marker)
                    if fn.name in table:
                        raise ValueError(f"{fn.qualified} is defined twice")
                    table[fn.name] = fn
            self.functions[contract.name] = table

    async def init(self, stub: Any) -> Response:
        """Fabric 2.x routes init like invoke (contract API); no args is a no-op."""
        if not stub.get_args():
            return _ok(b"")
        return await self.invoke(stub)

    async def invoke(self, stub: Any) -> Response:
        args = list(stub.get_args())
        if not args:
            return _error(ErrorCode.INVALID, "", "no function name given (args[0] must be "
                          "'Contract:Function')")
        try:
            requested = args[0].decode("utf-8")
        except UnicodeDecodeError:
            return _error(ErrorCode.INVALID, "", "function name (args[0]) is not UTF-8")
        contract_name, _, fn_name = requested.rpartition(":")
        contract_name = contract_name or self.default
        if contract_name == SYSTEM_CONTRACT and fn_name == "GetMetadata":
            return _ok(canonical_json(self.metadata()))
        if contract_name not in self.contracts:
            return _error(ErrorCode.INVALID, requested,
                          f"unknown contract {contract_name!r} "
                          f"(known: {', '.join(sorted(self.contracts))})")
        fn = self.functions[contract_name].get(fn_name)
        if fn is None:
            return _error(ErrorCode.INVALID, requested,
                          f"unknown function {fn_name!r} in contract {contract_name!r} "
                          f"(known: {', '.join(sorted(self.functions[contract_name]))})")
        return await self._call(fn, stub, args[1:])

    async def _call(self, fn: Function, stub: Any, args: list[bytes]) -> Response:
        try:
            values = fn.bind(args)
            ctx = Context(stub, fn.qualified, read_only=fn.kind == "query")
            await fn.contract.before_transaction(ctx, fn.name)
            result = await fn.method(ctx, *values)
            payload = _encode(result)
            # Only now, with the function done and its result encodable, do writes leave.
            await ctx._flush(stub)
        except ContractError as exc:
            return _error(exc.code, fn.qualified, exc.message)
        except Exception as exc:  # noqa: BLE001 -- reported to the client, never swallowed
            return _error(ErrorCode.INTERNAL, fn.qualified, f"{type(exc).__name__}: {exc}")
        return _ok(payload)

    def metadata(self) -> dict[str, Any]:
        """Shape of Fabric's ``org.hyperledger.fabric:GetMetadata`` (info + contracts)."""
        return {
            "info": {"title": "fedledger", "version": "1"},
            "default_contract": self.default,
            "contracts": {
                name: {
                    "name": name,
                    "transactions": [fn.metadata() for _, fn in sorted(table.items())],
                }
                for name, table in self.functions.items()
            },
        }
