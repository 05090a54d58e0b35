"""One error root for ``fedledger.incentives``; specific errors also inherit the built-in
they refine (``IncentiveConfigError`` is a ``ValueError``)."""

from __future__ import annotations

from fedledger.errors import FedLedgerError


class IncentivesError(FedLedgerError):
    """Root of every error raised by ``fedledger.incentives``."""


class IncentiveConfigError(IncentivesError, ValueError):
    """A participation or economy setting cannot be used (e.g. unknown action)."""


class NoAllowedAction(IncentivesError, ValueError):
    """An agent was asked to choose among no actions."""
