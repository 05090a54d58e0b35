"""Errors of the bridge: one root, carrying the step and, where there is one, the
anchor's rounds and transaction hash."""

from __future__ import annotations


class BridgeError(Exception):
    def __init__(self, message: str, *, step: str | None = None, tx_hash: str | None = None,
                 rounds: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.tx_hash = tx_hash
        self.rounds = rounds

    def __str__(self) -> str:
        parts = [self.message]
        if self.step:
            parts.append(f"step={self.step}")
        if self.rounds:
            parts.append(f"rounds={self.rounds[0]}..{self.rounds[1]}")
        if self.tx_hash:
            parts.append(f"tx_hash={self.tx_hash}")
        return " ".join(parts)
