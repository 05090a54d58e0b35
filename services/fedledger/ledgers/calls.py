"""One chaincode call, typed: the function, its encoded arguments and the record type
its result parses into.

A query is evaluated on one peer (``evaluate``); a write is endorsed, ordered and
committed (``submit``), or handed to the orderer without waiting (``submit_async``) so
that several writes land in the same block (:func:`submit_together`). Arguments are
records as canonical JSON (the chaincode re-validates and stores its own canonical
form, so the encoding here never changes a digest) or plain strings (ids, round ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

from fedledger.canonical import canonical_json
from fedledger.fabric.gateway import Contract, SubmittedTransaction
from fedledger.web.metrics import clock, observe_ledger_call

R = TypeVar("R")

Arg = BaseModel | str | int


def encode_arg(value: Arg) -> bytes:
    """A record as the canonical JSON of its JSON-mode dump; an id or number as text."""
    if isinstance(value, BaseModel):
        return canonical_json(value.model_dump(mode="json"))
    return str(value).encode()


@dataclass(frozen=True)
class Written(Generic[R]):
    """A committed write: what the chaincode returned, and the transaction's id."""

    result: R
    tx_id: str


@dataclass(frozen=True)
class Pending(Generic[R]):
    """A write handed to the orderer; :meth:`committed` waits for its block."""

    call: Call[R]
    transaction: SubmittedTransaction
    #: When the call was begun (endorsement included), for its latency metric.
    started: float = field(default_factory=clock, compare=False)

    @property
    def tx_id(self) -> str:
        return self.transaction.tx_id

    def committed(self) -> Written[R]:
        """Wait for the commit; raises ``CommitError`` unless it committed VALID."""
        try:
            self.transaction.committed()
        except Exception as exc:
            observe_ledger_call(self.call.function, "submit", self.started, exc)
            raise
        observe_ledger_call(self.call.function, "submit", self.started)
        return Written(self.call.parse(self.transaction.result), self.transaction.tx_id)


@dataclass(frozen=True)
class Call(Generic[R]):
    """``function(*args)`` on ``contract``, whose result is a ``result`` (a type or a
    pydantic ``TypeAdapter`` for lists)."""

    contract: Contract
    function: str
    args: tuple[bytes, ...]
    result: TypeAdapter[R]

    @classmethod
    def of(cls, contract: Contract, function: str, result: Any, *args: Arg) -> Call[Any]:
        return cls(contract, function, tuple(encode_arg(a) for a in args), _adapter(result))

    def parse(self, payload: bytes) -> R:
        return self.result.validate_json(payload or b"null")

    def evaluate(self) -> R:
        """Run on one peer; nothing is ordered."""
        started = clock()
        try:
            payload = self.contract.evaluate(self.function, *self.args)
        except Exception as exc:
            observe_ledger_call(self.function, "evaluate", started, exc)
            raise
        observe_ledger_call(self.function, "evaluate", started)
        return self.parse(payload)

    def submit(self) -> Written[R]:
        """Endorse, order and wait for the commit."""
        return self.submit_async().committed()

    def submit_async(self) -> Pending[R]:
        """Endorse and hand to the orderer; returns before the commit (whose latency
        :meth:`Pending.committed` records, counted from here)."""
        started = clock()
        try:
            transaction = self.contract.submit_async(self.function, *self.args)
        except Exception as exc:
            observe_ledger_call(self.function, "submit", started, exc)
            raise
        return Pending(self, transaction, started)


def submit_together(calls: Sequence[Call[Any]]) -> list[Written[Any]]:
    """Hand every call to the orderer before awaiting any commit, so they land in the same
    block (one per channel) instead of one block after another. Each call must write keys
    of its own. Waits for all, then raises the first failure."""
    pending = [call.submit_async() for call in calls]
    results: list[Written[Any]] = []
    failure: Exception | None = None
    for item in pending:
        try:
            results.append(item.committed())
        except Exception as exc:  # noqa: BLE001 - re-raised below, after every commit
            failure = failure or exc
    if failure is not None:
        raise failure
    return results


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(result: Any) -> TypeAdapter[Any]:
    if result not in _ADAPTERS:
        _ADAPTERS[result] = TypeAdapter(result)
    return _ADAPTERS[result]
