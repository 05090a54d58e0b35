"""Ordering for the dev peer: one channel's block cutter, with Fabric's batch settings.

A Fabric orderer cuts blocks by the channel's ``Orderer`` settings (``configtx.yaml``:
``BatchTimeout`` and ``BatchSize``), and so does this one, rule for rule
(``orderer/common/blockcutter`` and the etcdraft chain's batch timer):

* a block is cut when ``MaxMessageCount`` envelopes are pending;
* an envelope that would take the pending batch past ``PreferredMaxBytes`` first cuts
  the pending batch; an envelope larger than ``PreferredMaxBytes`` on its own goes in a
  block of its own;
* otherwise the pending batch is cut ``BatchTimeout`` after its first envelope arrived;
* an envelope over ``AbsoluteMaxBytes`` is refused at broadcast (``BAD_REQUEST``), never
  ordered.

Sizes are Fabric's: ``len(payload) + len(signature)`` of the envelope. Cut blocks are
handed to the committer one at a time, in order; the cutter goes on cutting meanwhile.

:class:`OrdererSettings` holds the four values. :meth:`OrdererSettings.deployment` is what
``deploy/fabric/configtx.yaml`` sets (a test keeps the two equal), the default of every
dev network; :meth:`OrdererSettings.fast` cuts after 2 ms, for unit tests;
:meth:`OrdererSettings.from_configtx` reads any ``configtx.yaml``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from pydantic.dataclasses import dataclass

from fedledger.fabric.errors import SubmitError

__all__ = ["BlockCutter", "OrdererRefusal", "OrdererSettings", "format_duration",
           "parse_byte_size", "parse_duration"]

log = logging.getLogger(__name__)
CommitBatch = Callable[[list[bytes]], Awaitable[None]]
MAX_UINT32 = 2**32 - 1

# -- configtx.yaml syntax -----------------------------------------------------------------

# Go's time.ParseDuration: a sequence of decimal numbers, each with a unit ("1m30s", "250ms").
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
# Fabric's viperutil byteSizeDecodeHook: "<digits>[ ]<k|m|g>[b]", case-insensitive, powers of 1024.
_BYTE_SIZE = re.compile(r"^([0-9]+)\s*([kmg])b?$", re.IGNORECASE)
_BYTE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string, as configtxgen reads ``BatchTimeout`` ("250ms",
    "2s", "1m30s"); ``ValueError`` for anything Go would refuse."""
    raw = text.strip()
    sign, body = (-1.0, raw[1:]) if raw.startswith("-") else (1.0, raw.removeprefix("+"))
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def format_duration(seconds: float) -> str:
    """A Go duration string for ``seconds`` (what a config block's ``BatchTimeout`` holds):
    whole seconds as "2s", else milliseconds, microseconds or nanoseconds."""
    nanos = round(seconds * 1e9)
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanos % size == 0:
            return f"{nanos // size}{unit}"
    return f"{nanos}ns"


def parse_byte_size(value: str | int) -> int:
    """Bytes in a configtx.yaml size ("512 KB", "99 MB", "10m", or a plain number), as
    Fabric reads ``AbsoluteMaxBytes`` / ``PreferredMaxBytes`` (units are powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        raw = str(value).strip()
        match = _BYTE_SIZE.match(raw)
        if match is not None:
            size = int(match.group(1)) * _BYTE_UNITS[match.group(2).lower()]
        elif raw.isdigit():
            size = int(raw)
        else:
            raise ValueError(f"invalid byte size {value!r}")
    if not 0 <= size <= MAX_UINT32:
        raise ValueError(f"byte size {value!r} does not fit in 32 bits")
    return size


# -- settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrdererSettings:
    """A channel's block-cutting settings: the ``Orderer`` section of ``configtx.yaml``."""

    batch_timeout_s: float = Field(
        gt=0, description="BatchTimeout: seconds after a batch's first envelope until it is cut")
    max_message_count: int = Field(
        gt=0, le=MAX_UINT32, description="BatchSize.MaxMessageCount: envelopes per block at most")
    preferred_max_bytes: int = Field(
        gt=0, le=MAX_UINT32,
        description="BatchSize.PreferredMaxBytes: a block is cut before it would grow past "
                    "this; a larger envelope gets a block of its own")
    absolute_max_bytes: int = Field(
        gt=0, le=MAX_UINT32,
        description="BatchSize.AbsoluteMaxBytes: a larger envelope is refused at submit")

    def __post_init__(self) -> None:
        # Fabric's channelconfig refuses the same (validateBatchSize).
        if self.preferred_max_bytes > self.absolute_max_bytes:
            raise ValueError(f"PreferredMaxBytes ({self.preferred_max_bytes}) is greater than "
                             f"AbsoluteMaxBytes ({self.absolute_max_bytes})")

    @classmethod
    def deployment(cls) -> OrdererSettings:
        """What ``deploy/fabric/configtx.yaml`` sets for every channel of the deployment
        (``tests/devnet/test_orderer.py`` checks the two agree)."""
        return cls(batch_timeout_s=0.25, max_message_count=100,
                   preferred_max_bytes=512 * 1024, absolute_max_bytes=99 * 1024 * 1024)

    @classmethod
    def fast(cls) -> OrdererSettings:
        """Blocks cut 2 ms after their first envelope (at most 500 each), sizes as
        deployed: for unit tests, where waiting 250 ms per block only costs time."""
        return dataclasses.replace(cls.deployment(), batch_timeout_s=0.002,
                                   max_message_count=500)

    @classmethod
    def from_configtx(cls, path: str | Path, profile: str | None = None) -> OrdererSettings:
        """The ``Orderer`` settings of a ``configtx.yaml``: its top-level ``Orderer``
        section, or that of ``Profiles.<profile>`` when a profile is named."""
        path = Path(path)
        try:
            document: Any = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        section = document
        where = "Orderer"
        if profile is not None:
            section = (document or {}).get("Profiles", {}).get(profile)
            where = f"Profiles.{profile}.Orderer"
            if section is None:
                raise ValueError(f"{path} has no profile {profile!r}")
        orderer = (section or {}).get("Orderer")
        if not isinstance(orderer, dict):
            raise ValueError(f"{path} has no {where} section")
        try:
            batch = orderer["BatchSize"]
            return cls(batch_timeout_s=parse_duration(str(orderer["BatchTimeout"])),
                       max_message_count=int(batch["MaxMessageCount"]),
                       preferred_max_bytes=parse_byte_size(batch["PreferredMaxBytes"]),
                       absolute_max_bytes=parse_byte_size(batch["AbsoluteMaxBytes"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: {where} lacks BatchTimeout or BatchSize "
                             f"({exc})") from exc


# -- the cutter ----------------------------------------------------------------------------

class OrdererRefusal(SubmitError):
    """The ordering service did not accept an envelope. ``status`` is the
    ``common.Status`` name a Fabric orderer answers a broadcast with: ``BAD_REQUEST``
    (malformed, too large), ``FORBIDDEN`` (not a channel writer) or
    ``SERVICE_UNAVAILABLE`` (not running, backlog full)."""

    def __init__(self, message: str, *, status: str, tx_id: str | None = None) -> None:
        super().__init__(message, tx_id=tx_id, step="submit")
        self.status = status


class BlockCutter:
    """Cuts one channel's envelopes into blocks by :class:`OrdererSettings` and hands
    each block, in order, to ``commit``. ``max_pending`` bounds the envelopes accepted
    but not yet committed."""

    def __init__(self, commit: CommitBatch, settings: OrdererSettings, *,
                 max_pending: int = 100_000) -> None:
        self._commit = commit
        self.settings = settings
        self.max_pending = max_pending
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._blocks: asyncio.Queue[list[bytes]] = asyncio.Queue()
        self._backlog = 0  # envelopes accepted and not yet committed
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="block-cutter")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - already logged by _run
                pass
            self._task = None

    def check_size(self, size: int, tx_id: str | None = None) -> None:
        """Refuse (``BAD_REQUEST``) an envelope of ``size`` bytes over ``AbsoluteMaxBytes``,
        as the orderer's size filter does before any signature check."""
        if size > self.settings.absolute_max_bytes:
            raise OrdererRefusal(
                f"message payload is {size} bytes and exceeds maximum allowed "
                f"{self.settings.absolute_max_bytes} bytes", status="BAD_REQUEST", tx_id=tx_id)

    def order(self, envelope: bytes, tx_id: str, *, size: int | None = None) -> None:
        """Accept ``envelope`` for ordering (``size``: its payload plus signature bytes,
        Fabric's measure; the serialized length when not given). Raises
        :class:`OrdererRefusal` as a Fabric orderer's broadcast would refuse it."""
        if self._task is None or self._task.done():
            raise OrdererRefusal("the ordering service is not running",
                                 status="SERVICE_UNAVAILABLE", tx_id=tx_id)
        size = len(envelope) if size is None else size
        self.check_size(size, tx_id)
        if self._backlog >= self.max_pending:
            raise OrdererRefusal("orderer backlog is full; retry later",
                                 status="SERVICE_UNAVAILABLE", tx_id=tx_id)
        self._backlog += 1
        settings = self.settings
        if size > settings.preferred_max_bytes:
            # Isolated: the pending batch first, then this envelope alone.
            self._cut()
            self._blocks.put_nowait([envelope])
            return
        if self._pending_bytes + size > settings.preferred_max_bytes:
            self._cut()
        self._pending.append(envelope)
        self._pending_bytes += size
        if len(self._pending) >= settings.max_message_count:
            self._cut()
        elif self._timer is None:
            assert self._loop is not None
            self._timer = self._loop.call_later(settings.batch_timeout_s, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._cut()

    def _cut(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._blocks.put_nowait(self._pending)
            self._pending, self._pending_bytes = [], 0

    async def _run(self) -> None:
        while True:
            batch = await self._blocks.get()
            try:
                await self._commit(batch)
            except Exception:
                log.exception("the committer failed; this channel orders nothing more")
                raise
            finally:
                self._backlog -= len(batch)
