"""The embedded chain made durable: a journal of every block it mined, replayed at start.

``EmbeddedBackend(journal=path)`` opens (or creates) a JSON-lines file and replays it, so
a restarted process has the same chain: the same block hashes, contract addresses, logs
and balances. Each line is one operation that changed the chain, appended and fsynced
AFTER py-evm applied it and BEFORE its caller gets the answer (a crash in between loses
an answer nobody received: the sender retries, as it would after a lost response)::

    {"format": "fedledger-evm-journal", "version": 1, "chain_id": 131277322940537,
     "genesis": {"params": {"timestamp": 1796283923, "coinbase": "0x00..", ...},
                 "hash": "0xb081.."}}
    {"op": "eth_sendRawTransaction", "effects": [{"kind": "block", "number": 1,
     "hash": "0x..", "timestamp": 1796283925, "mix_hash": "0x..", "coinbase": "0x00..",
     "txs": ["0x02f8.."]}]}
    {"op": "evm_mine", "effects": [{"kind": "block", "number": 2, ...}, ...]}
    {"op": "evm_revert", "effects": [{"kind": "revert", "to": "0x..", "number": 1}]}

Why blocks and not requests: what changes the chain is one of a few things (a signed
transaction from ``eth_sendRawTransaction`` in process or over
:mod:`fedledger.evm.rpc_server`, eth-tester's ``eth_sendTransaction``, ``evm_mine`` /
:meth:`~fedledger.evm.backends.EmbeddedBackend.mine`, ``increase_time`` /
``testing_timeTravel``, ``evm_revert``), and every one of them but the revert ends in
py-evm mining a block. So the journal records each MINED block with the raw signed
transactions in it (re-encoded by py-evm: the bytes that were sent) and the three inputs
that are not derived from the chain: the header timestamp (eth-tester takes the wall
clock), the ``mix_hash`` (eth-tester draws ``prevrandao`` at random) and the coinbase.
Replay sets the pending header's timestamp before the transactions are applied (they see
the same ``block.timestamp``), applies them and mines with the recorded ``mix_hash``;
py-evm then derives everything else (state, receipts, logs, hash) as before, and each
replayed block hash is compared with the recorded one (:class:`JournalMismatchError`).
The genesis is the one input outside any block: its parameters (eth-tester's defaults
stamp the wall clock) are the journal's first line, and its hash is checked too. This
needs no knowledge of eth-tester's request formatting and covers transactions that
reverted on chain (they are mined too) as well as any future way to mine.

Not journaled, because they are not chain state: eth-tester's filters, its snapshot ids
(``evm_snapshot`` ids do not survive a restart; the reverts made with them do) and
accounts added to the tester. Withdrawals (``apply_withdrawals``) are not served.

Reading: a last line without its newline is a write torn by a crash; it is dropped with a
warning and cut off the file (the next append starts on a clean line). Any other line
that is not a journal entry is :class:`JournalCorruptError` naming the line. A failed
append raises :class:`JournalWriteError`, and the backend refuses every later request
(the chain in memory would be ahead of the file).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from eth.vm.forks.cancun import get_total_blob_gas
from eth_tester import PyEVMBackend
from eth_tester.backends.pyevm.main import ZERO_ADDRESS
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fedledger.errors import ContextField
from fedledger.evm.errors import EvmError

log = logging.getLogger(__name__)

FORMAT: Literal["fedledger-evm-journal"] = "fedledger-evm-journal"
VERSION: Literal[1] = 1

_HEX = r"^0x[0-9a-f]*$"
_HASH = r"^0x[0-9a-f]{64}$"
_ADDRESS = r"^0x[0-9a-f]{40}$"


class JournalError(EvmError):
    """The chain journal cannot be read, replayed or written. ``path`` and ``line``
    (1-based, where one line is at fault) say where."""

    path = ContextField()
    line = ContextField()

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None,
                 step: str = "journal") -> None:
        super().__init__(message, step=step)
        self.path = str(path) if path is not None else None
        self.line = line


class JournalCorruptError(JournalError):
    """A complete line of the journal (not a torn last line) is not a journal entry."""


class JournalMismatchError(JournalError):
    """Replaying the journal did not give the chain it recorded (a block hash, a block
    number or the genesis differs): the file was edited, or py-evm/eth-tester changed."""


class JournalWriteError(JournalError):
    """An entry could not be appended (disk full, permissions): the chain in memory is
    ahead of the file; the backend refuses further requests."""


# ---------------------------------------------------------------------- the lines

class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Genesis(_Line):
    params: dict[str, int | str] = Field(description="PyEVMBackend genesis parameters; bytes "
                                         "as 0x-hex")
    hash: str = Field(pattern=_HASH)


class JournalHeader(_Line):
    format: Literal["fedledger-evm-journal"] = FORMAT
    version: Literal[1] = VERSION
    chain_id: int
    genesis: Genesis


class BlockEffect(_Line):
    """One mined block: what replay needs to mine it again, and its hash to check."""

    kind: Literal["block"] = "block"
    number: int = Field(ge=1)
    hash: str = Field(pattern=_HASH)
    timestamp: int = Field(ge=0)
    mix_hash: str = Field(pattern=_HASH)
    coinbase: str = Field(pattern=_ADDRESS)
    txs: list[Annotated[str, Field(pattern=_HEX)]] = Field(description="raw signed transactions, in order")


class RevertEffect(_Line):
    """``evm_revert``: the canonical head went back to block ``to``."""

    kind: Literal["revert"] = "revert"
    to: str = Field(pattern=_HASH)
    number: int = Field(ge=0)


Effect = Annotated[BlockEffect | RevertEffect, Field(discriminator="kind")]


class JournalEntry(_Line):
    op: str = Field(min_length=1, description="what the caller asked (an RPC method name)")
    effects: list[Effect] = Field(min_length=1)


def _hex(value: bytes | bytearray) -> str:
    return "0x" + bytes(value).hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def genesis_params_to_json(params: dict[str, Any]) -> dict[str, int | str]:
    return {k: _hex(v) if isinstance(v, (bytes, bytearray)) else int(v) for k, v in params.items()}


def genesis_params_from_json(params: dict[str, int | str]) -> dict[str, Any]:
    return {k: _unhex(v) if isinstance(v, str) else v for k, v in params.items()}


# ---------------------------------------------------------------------- the file

class ChainJournal:
    """The JSON-lines file: read once at open (torn tail cut off), then appended to."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.header: JournalHeader | None = None
        #: (line number, entry) of every entry read at open, for the replay.
        self.entries: list[tuple[int, JournalEntry]] = []
        self.lines = 0
        self.broken: JournalWriteError | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Kept open for the appends, and locked: a second process on the same journal
        # (a host started twice on one root) would interleave its blocks with ours.
        self._file: Any = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise JournalError("the chain journal is in use by another process",
                               path=self.path) from None
        try:
            self._read()
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        data = self.path.read_bytes()
        complete, _, torn = data.rpartition(b"\n")
        if torn:
            log.warning("%s: dropping a torn last line (%d bytes, a write cut by a crash)",
                        self.path, len(torn))
            self._file.truncate(len(data) - len(torn))
            os.fsync(self._file.fileno())
        if not complete and not data.startswith(b"\n"):
            return  # empty, or only a torn header: a new journal
        for number, raw in enumerate(complete.split(b"\n"), start=1):
            self.lines = number
            try:
                if number == 1:
                    self.header = JournalHeader.model_validate_json(raw)
                else:
                    self.entries.append((number, JournalEntry.model_validate_json(raw)))
            except ValidationError as exc:
                what = "the journal header" if number == 1 else "a journal entry"
                raise JournalCorruptError(f"line {number} is not {what}: "
                                          f"{exc.errors()[0]['msg']}", path=self.path,
                                          line=number) from None

    def create(self, header: JournalHeader) -> None:
        """Start a new journal with its header line (the file must be empty)."""
        assert self.header is None and not self.entries and self._file is not None
        self._file.write(header.model_dump_json().encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        _fsync_dir(self.path.parent)  # the new name itself must survive a crash
        self.header = header
        self.lines = 1

    def append(self, entry: JournalEntry) -> None:
        """Write one entry and fsync it; raises :class:`JournalWriteError`."""
        if self.broken is not None:
            raise self.broken
        line = entry.model_dump_json().encode() + b"\n"
        if self._file is None:
            raise JournalError("the chain journal is closed", path=self.path)
        try:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self.broken = JournalWriteError(f"cannot append to the chain journal: {exc}; the "
                                            "chain in memory is ahead of it, restart the process",
                                            path=self.path, line=self.lines + 1)
            raise self.broken from exc
        self.lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- py-evm side

class RecordingPyEVM(PyEVMBackend):
    """eth-tester's ``PyEVMBackend`` that notes every block it mines and every revert as an
    effect (see the module docs), and mines again what a journal recorded."""

    def __init__(self, genesis_parameters: dict[str, Any] | None = None) -> None:
        self.effects: list[BlockEffect | RevertEffect] = []
        super().__init__(genesis_parameters=genesis_parameters)

    def take_effects(self) -> list[BlockEffect | RevertEffect]:
        effects, self.effects = self.effects, []
        return effects

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = ZERO_ADDRESS) -> tuple[bytes, ...]:
        hashes = []
        for _ in range(num_blocks):
            # eth-tester draws prevrandao at random: it is recorded, it cannot be derived
            block = self.mine_one(coinbase, os.urandom(32))
            self.effects.append(BlockEffect(
                number=block.number, hash=_hex(block.hash), timestamp=block.header.timestamp,
                mix_hash=_hex(block.header.mix_hash), coinbase=_hex(block.header.coinbase),
                txs=[_hex(tx.encode()) for tx in block.transactions]))
            hashes.append(block.hash)
        return tuple(hashes)

    def mine_one(self, coinbase: bytes, mix_hash: bytes) -> Any:
        # What PyEVMBackend.mine_blocks does for one block on Prague (the only VM here).
        pending = self.chain.get_block().transactions
        return self.chain.mine_block(coinbase=coinbase, mix_hash=mix_hash,
                                     blob_gas_used=sum(get_total_blob_gas(tx) for tx in pending))

    def revert_to_snapshot(self, snapshot: bytes) -> None:
        super().revert_to_snapshot(snapshot)
        head = self.chain.get_canonical_head()
        self.effects.append(RevertEffect(to=_hex(snapshot), number=head.block_number))

    def replay_revert(self, snapshot: bytes) -> None:
        super().revert_to_snapshot(snapshot)

    def apply_withdrawals(self, withdrawals_list: Any) -> None:
        raise NotImplementedError("withdrawals are not served by the embedded chain")


def new_header(chain_id: int, genesis_params: dict[str, Any], genesis_hash: bytes) -> JournalHeader:
    return JournalHeader(chain_id=chain_id, genesis=Genesis(
        params=genesis_params_to_json(genesis_params), hash=_hex(genesis_hash)))


def replay(pyevm: RecordingPyEVM, journal: ChainJournal) -> int:
    """Mine the journal's blocks again on a fresh ``RecordingPyEVM`` built from its genesis;
    returns the number of blocks replayed. Raises :class:`JournalMismatchError`."""
    replayed = 0
    for number, entry in journal.entries:
        for effect in entry.effects:
            if isinstance(effect, RevertEffect):
                _replay_revert(pyevm, journal, number, effect)
            else:
                _replay_block(pyevm, journal, number, effect)
                replayed += 1
    pyevm.take_effects()  # nothing of the replay is new
    return replayed


def _replay_block(pyevm: RecordingPyEVM, journal: ChainJournal, line: int, effect: BlockEffect) -> None:
    chain = pyevm.chain
    pending = chain.header.block_number
    if pending != effect.number:
        raise JournalMismatchError(f"line {line} records block {effect.number} but the chain's "
                                   f"next block is {pending}", path=journal.path, line=line)
    # The recorded timestamp, set before the transactions run: they see the same
    # block.timestamp as the first time (eth-tester's own time_travel does the same).
    chain.header = chain.header.copy(timestamp=effect.timestamp)
    try:
        for raw in effect.txs:
            pyevm.send_raw_transaction(_unhex(raw))
        block = pyevm.mine_one(_unhex(effect.coinbase), _unhex(effect.mix_hash))
    except Exception as exc:  # noqa: BLE001 - py-evm validation of any kind
        raise JournalMismatchError(f"line {line}: block {effect.number} cannot be mined again: "
                                   f"{type(exc).__name__}: {exc}", path=journal.path,
                                   line=line) from exc
    if _hex(block.hash) != effect.hash:
        raise JournalMismatchError(f"line {line}: block {effect.number} replayed as "
                                   f"{_hex(block.hash)}, the journal recorded {effect.hash}",
                                   path=journal.path, line=line)


def _replay_revert(pyevm: RecordingPyEVM, journal: ChainJournal, line: int, effect: RevertEffect) -> None:
    try:
        pyevm.replay_revert(_unhex(effect.to))
    except Exception as exc:  # noqa: BLE001 - an unknown block of any kind
        raise JournalMismatchError(f"line {line}: cannot revert to {effect.to}: {exc}",
                                   path=journal.path, line=line) from exc
    head = pyevm.chain.get_canonical_head()
    if head.block_number != effect.number:
        raise JournalMismatchError(f"line {line}: revert to {effect.to} gave head "
                                   f"{head.block_number}, the journal recorded {effect.number}",
                                   path=journal.path, line=line)


def iter_blocks(journal: ChainJournal) -> Iterator[tuple[int, BlockEffect]]:
    """(line number, block) of every block the journal holds, in order."""
    for number, entry in journal.entries:
        for effect in entry.effects:
            if isinstance(effect, BlockEffect):
                yield number, effect
