"""The root of every fedledger error.

Each package keeps its own root (``FabricError``, ``EvmError``, ``BridgeError``,
``ServiceError``, ``LearningError``...), and every one of them is a
:class:`FedLedgerError`, so a caller that only wants "anything fedledger raised" catches
one class. An error carries the ``step`` it failed at (``endorse``, ``broadcast``...)
and a ``context`` of identifiers worth logging (``tx_id``, ``tx_hash``...); ``str()``
shows them after the message::

    >>> str(FedLedgerError("no receipt", step="confirm", context={"tx_hash": "0xab"}))
    'no receipt step=confirm tx_hash=0xab'

Context entries that are ``None`` or empty are left out. A package exposes its entries as
attributes with :class:`ContextField` (``exc.tx_id`` reads and writes
``exc.context["tx_id"]``), so a value set after the error was raised still shows.

This module imports nothing from fedledger: every layer (learning, protocol, the
chaincode) may use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, overload


class FedLedgerError(Exception):
    """Root of every error raised by fedledger."""

    def __init__(self, message: str = "", *, step: str | None = None,
                 context: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.context: dict[str, Any] = dict(context or {})

    def _show(self, key: str, value: Any) -> str:
        """How one context entry reads in ``str()``; a package may override it."""
        return f"{key}={value}"

    def _notes(self) -> Iterable[str]:
        """Further words for ``str()``, after the context (e.g. the peers' details)."""
        return ()

    def _str_parts(self) -> list[str]:
        parts = [f"step={self.step}"] if self.step else []
        parts += [self._show(k, v) for k, v in self.context.items() if not _blank(v)]
        parts += self._notes()
        return parts

    def __str__(self) -> str:
        parts = self._str_parts()
        if not parts and self.args == (self.message,):
            return super().__str__()  # what the built-in base shows (a KeyError: its repr)
        return " ".join([self.message, *parts])

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses have keyword-only (and required) arguments that Exception's own
        # reduce would not pass back: rebuild from the state, not the constructor.
        state = self.__dict__.copy()
        return (_rebuild, (type(self), self.args, state))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, (str, bytes, tuple, list, dict)) and not value)


def _rebuild(cls: type[FedLedgerError], args: tuple[Any, ...], state: dict[str, Any]
             ) -> FedLedgerError:
    obj = cls.__new__(cls)
    obj.args = args
    obj.__dict__.update(state)
    return obj


class ContextField:
    """An error attribute kept in ``context`` under its own name (so ``str()`` shows it)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> ContextField: ...
    @overload
    def __get__(self, obj: FedLedgerError, owner: type | None = None) -> Any: ...

    def __get__(self, obj: FedLedgerError | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.context.get(self.name)

    def __set__(self, obj: FedLedgerError, value: Any) -> None:
        obj.context[self.name] = value


__all__ = ["ContextField", "FedLedgerError"]
