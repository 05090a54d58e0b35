"""What both channel ledgers share: one contract, and typed calls on it."""

from __future__ import annotations

from typing import Any, TypeVar

from fedledger.fabric.errors import RecordNotFoundError
from fedledger.fabric.gateway import Contract

from .calls import Arg, Call

R = TypeVar("R")


class ContractLedger:
    """A chaincode contract on one channel, called by function name only in here."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract

    def _call(self, function: str, result: Any, *args: Arg) -> Call[Any]:
        return Call.of(self.contract, function, result, *args)

    def _query(self, function: str, result: Any, *args: Arg) -> Any:
        return self._call(function, result, *args).evaluate()

    def _find(self, function: str, result: Any, *args: Arg) -> Any:
        """A ``Get...`` query, or None when the record does not exist."""
        try:
            return self._query(function, result, *args)
        except RecordNotFoundError:
            return None
