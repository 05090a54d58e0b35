"""How every service logs: ``configure_logging(level)`` at the start of each ``__main__``.

One line per record, ``2026-01-01 12:00:00,123 INFO fedledger.coordinator.rounds: ...``.
The level is the ``--log-level`` argument, else ``FEDLEDGER_LOG_LEVEL``, else INFO. The
HTTP clients and uvicorn's access log are held at WARNING whatever the level: the round
workers poll every second or so, and one line per request would bury the state changes
(the services log one INFO line per round or job state change; polls log at DEBUG).
"""

from __future__ import annotations

import argparse
import logging
import os

from fedledger.errors import FedLedgerError

LEVEL_ENV = "FEDLEDGER_LOG_LEVEL"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers that log once per request or poll at INFO.
QUIET = ("httpx", "httpx2", "httpcore", "uvicorn.access")
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class LogLevelError(FedLedgerError, ValueError):
    """A log level that is not one of :data:`LEVELS`."""


def resolve_level(level: str | None = None) -> int:
    """The level to log at: ``level``, else ``FEDLEDGER_LOG_LEVEL``, else INFO."""
    name = (level or os.environ.get(LEVEL_ENV) or "INFO").strip().upper()
    if name not in LEVELS:
        raise LogLevelError(f"log level {name!r} is not one of {', '.join(LEVELS)}",
                            step="logging")
    return logging.getLevelNamesMapping()[name]


def configure_logging(level: str | None = None) -> int:
    """Log to stderr at the resolved level (see :func:`resolve_level`), with time, level
    and logger name; ``httpx``, ``httpcore`` and ``uvicorn.access`` at WARNING. Replaces
    any handlers the root logger had, so calling it twice does not double the lines.
    Returns the level."""
    resolved = resolve_level(level)
    logging.basicConfig(level=resolved, format=FORMAT, force=True)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(resolved, logging.WARNING))
    return resolved


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` on an argparse parser (default: ``FEDLEDGER_LOG_LEVEL`` or INFO)."""
    parser.add_argument(
        "--log-level", default=None, type=str.upper, choices=LEVELS,
        help=f"log level (default: ${LEVEL_ENV}, else INFO)")


__all__ = ["FORMAT", "LEVELS", "LEVEL_ENV", "QUIET", "LogLevelError", "add_log_level_argument",
           "configure_logging", "resolve_level"]
