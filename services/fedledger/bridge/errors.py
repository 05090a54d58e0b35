"""Errors of the bridge: one root, carrying the step and, where there is one, the
anchor's rounds and transaction hash."""

from __future__ import annotations

from typing import Any

from fedledger.errors import ContextField, FedLedgerError


class BridgeError(FedLedgerError):
    rounds = ContextField()
    tx_hash = ContextField()

    def __init__(self, message: str, *, step: str | None = None, tx_hash: str | None = None,
                 rounds: tuple[int, int] | None = None) -> None:
        super().__init__(message, step=step, context={"rounds": rounds, "tx_hash": tx_hash})

    def _show(self, key: str, value: Any) -> str:
        if key == "rounds":
            return f"rounds={value[0]}..{value[1]}"
        return super()._show(key, value)
