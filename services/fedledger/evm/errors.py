"""Errors of the EVM layer: one root, each error carrying the tx hash and the step.

``step`` names where it failed (``connect``, ``estimate``, ``prepare``, ``broadcast``,
``receipt``, ``confirm``, ``call``, ``deploy``, ``logs``...), so a caller can log or map it
without parsing messages.

Reverts surface as ONE exception, :class:`RevertError`, whatever the backend:

- the embedded backend (web3's ``EthereumTesterProvider`` over py-evm) raises
  ``eth_tester.exceptions.TransactionFailed`` whose message is
  ``"execution reverted: <reason>"`` for ``require``/``revert("...")`` strings (the raw data
  is already decoded and lost) and ``"execution reverted: b'\\xba\\xc3...'"`` (the *repr* of
  the raw revert bytes) for custom errors; Solidity panics come as ``ContractPanicError``
  from ``eth_call`` but as ``TransactionFailed`` from ``eth_estimateGas``;
- JSON-RPC nodes (anvil, geth) make web3 raise ``ContractCustomError`` /
  ``ContractLogicError`` / ``ContractPanicError`` with the hex revert data in ``.data``.

:func:`revert_from_exception` maps all of these, decoding custom errors with the ABIs the
caller knows (selector -> error ABI).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from fedledger.errors import ContextField, FedLedgerError

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)

PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "bad storage byte array encoding",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to zero-initialized function",
}


class EvmError(FedLedgerError):
    """Root of every error raised by ``fedledger.evm``."""

    tx_hash = ContextField()

    def __init__(self, message: str, *, tx_hash: str | None = None, step: str | None = None) -> None:
        super().__init__(message, step=step, context={"tx_hash": tx_hash})


class RevertError(EvmError):
    """The EVM reverted: in ``eth_estimateGas``, ``eth_call``, or on chain (receipt status 0).

    ``error_name``: the custom error's name, ``"Error"`` for require/revert strings,
    ``"Panic"`` for Solidity panics, ``"Unknown"`` when the data cannot be decoded (selector
    not in any known ABI, or no data at all). ``args``: the decoded arguments (tuple).
    ``arg_names``: their ABI names. ``reason``: readable, e.g.
    ``"RoundAlreadyAnchored(firstRound=1, nextRound=2)"``. ``data``: the raw revert data
    when the backend reported it (``None`` for eth-tester require strings).
    """

    def __init__(self, error_name: str, args: Sequence[Any] = (), *, arg_names: Sequence[str] = (),
                 data: bytes | None = None, tx_hash: str | None = None, step: str | None = None,
                 message: str | None = None) -> None:
        self.error_name = error_name
        self.arg_names = tuple(arg_names)
        self.data = data
        reason = _format_reason(error_name, tuple(args), self.arg_names)
        super().__init__(message or f"execution reverted: {reason}", tx_hash=tx_hash, step=step)
        self.args = tuple(args)  # decoded error arguments (replaces Exception.args)
        self.reason = reason


def _format_value(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) and not value.startswith("0x") else str(value)


def _format_reason(name: str, args: tuple, names: tuple[str, ...]) -> str:
    if name == "Error" and len(args) == 1 and isinstance(args[0], str):
        return args[0]
    if name == "Panic" and len(args) == 1 and isinstance(args[0], int):
        return f"Panic(0x{args[0]:02x}: {PANIC_CODES.get(args[0], 'unknown panic code')})"
    if names and len(names) == len(args) and all(names):
        inner = ", ".join(f"{n}={_format_value(v)}" for n, v in zip(names, args, strict=True))
    else:
        inner = ", ".join(_format_value(v) for v in args)
    return f"{name}({inner})"


class ChainIdMismatchError(EvmError):
    """The node's ``eth_chainId`` is not the configured chain id."""

    def __init__(self, expected: int, actual: int, *, step: str | None = "connect") -> None:
        super().__init__(f"chain id mismatch: configured {expected}, node reports {actual}", step=step)
        self.expected = expected
        self.actual = actual


class FeeCapExceededError(EvmError):
    """The fee a transaction would need (2 * baseFee + tip) is above the configured cap.
    Raised BEFORE anything is signed or sent."""

    def __init__(self, required_wei: int, cap_wei: int, *, step: str | None = "prepare") -> None:
        super().__init__(
            f"max fee per gas {required_wei} wei (2*baseFee + tip) is above the cap {cap_wei} wei",
            step=step)
        self.required_wei = required_wei
        self.cap_wei = cap_wei


class ConfirmationTimeoutError(EvmError):
    """No receipt, or not enough confirmations, within the timeout. The transaction may still
    be mined later: keep its hash and call ``Chain.wait`` again."""

    def __init__(self, message: str, *, tx_hash: str | None = None, step: str | None = "confirm",
                 confirmations: int = 0, required: int = 0) -> None:
        super().__init__(message, tx_hash=tx_hash, step=step)
        self.confirmations = confirmations
        self.required = required


class RpcUnavailableError(EvmError):
    """The JSON-RPC endpoint cannot be reached (connection refused, timeout, bad response)."""


class NonceError(EvmError):
    """The node refused a transaction's nonce (too low and not ours, or a gap) after resync."""


class ArtifactError(EvmError):
    """A compiled contract artifact is missing or malformed."""


# ---------------------------------------------------------------------- decoding

def error_selectors(abis: Iterable[Sequence[Mapping[str, Any]]]) -> dict[bytes, Mapping[str, Any]]:
    """selector (4 bytes) -> error ABI entry, over every ``type == "error"`` entry of ``abis``."""
    table: dict[bytes, Mapping[str, Any]] = {}
    for abi in abis:
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = ",".join(_abi_type(i) for i in entry.get("inputs", []))
            table[function_signature_to_4byte_selector(f"{entry['name']}({types})")] = entry
    return table


def _abi_type(param: Mapping[str, Any]) -> str:
    t = param["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param.get("components", [])) + ")" + t[5:]
    return t


def _normalize(value: Any, abi_type: str) -> Any:
    if abi_type == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if isinstance(value, tuple):
        return tuple(value)
    return value


def decode_revert_data(data: bytes | None, selectors: Mapping[bytes, Mapping[str, Any]], *,
                       tx_hash: str | None = None, step: str | None = None) -> RevertError:
    """Raw revert data -> :class:`RevertError` (custom error, Error(string), Panic, Unknown)."""
    if not data:
        return RevertError("Unknown", (), data=data, tx_hash=tx_hash, step=step,
                           message="execution reverted (no revert data)")
    sel, body = bytes(data[:4]), bytes(data[4:])
    try:
        if sel == ERROR_STRING_SELECTOR:
            return RevertError("Error", abi_decode(["string"], body), arg_names=("reason",),
                               data=bytes(data), tx_hash=tx_hash, step=step)
        if sel == PANIC_SELECTOR:
            return RevertError("Panic", abi_decode(["uint256"], body), arg_names=("code",),
                               data=bytes(data), tx_hash=tx_hash, step=step)
        entry = selectors.get(sel)
        if entry is not None:
            types = [_abi_type(i) for i in entry.get("inputs", [])]
            values = abi_decode(types, body)
            return RevertError(entry["name"], tuple(_normalize(v, t) for v, t in zip(values, types, strict=True)),
                               arg_names=[i.get("name", "") for i in entry.get("inputs", [])],
                               data=bytes(data), tx_hash=tx_hash, step=step)
    except Exception:  # noqa: BLE001 - undecodable data stays visible as Unknown
        pass
    return RevertError("Unknown", (bytes(data),), arg_names=("data",), data=bytes(data),
                       tx_hash=tx_hash, step=step)


_REVERT_PREFIX = "execution reverted"


def _bytes_from_text(text: str) -> bytes | None:
    """``"b'\\xba...'"`` (eth-tester) or ``"0x..."`` -> bytes; otherwise None."""
    text = text.strip()
    if text[:2] in ("b'", 'b"'):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return None
    return None


def is_revert_exception(exc: BaseException) -> bool:
    from web3.exceptions import ContractLogicError

    if isinstance(exc, ContractLogicError):
        return True
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # pragma: no cover - eth-tester is only needed for the embedded backend
        return False
    return isinstance(exc, TransactionFailed)


def revert_from_exception(exc: BaseException, selectors: Mapping[bytes, Mapping[str, Any]], *,
                          tx_hash: str | None = None, step: str | None = None) -> RevertError:
    """Map a backend's revert exception (see module docs) to :class:`RevertError`."""
    from web3.exceptions import ContractLogicError

    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):  # some nodes: {"data": "0x..", ...}
            data = data.get("data") or data.get("result")
        if isinstance(data, str):
            raw = _bytes_from_text(data.removeprefix("Reverted "))
            if raw is not None:
                return decode_revert_data(raw, selectors, tx_hash=tx_hash, step=step)
        message = exc.message or str(exc)
        reason = message.removeprefix(_REVERT_PREFIX).removeprefix(":").strip()
        if reason:
            return RevertError("Error", (reason,), arg_names=("reason",), tx_hash=tx_hash, step=step)
        return decode_revert_data(None, selectors, tx_hash=tx_hash, step=step)
    # eth_tester.exceptions.TransactionFailed
    first = exc.args[0] if exc.args else None
    if isinstance(first, Exception):
        first = first.args[0] if first.args else None
    if isinstance(first, (bytes, bytearray)):
        return decode_revert_data(bytes(first), selectors, tx_hash=tx_hash, step=step)
    text = str(first or "")
    rest = text[len(_REVERT_PREFIX):] if text.startswith(_REVERT_PREFIX) else text
    rest = rest.removeprefix(":").strip()
    raw = _bytes_from_text(rest)
    if raw is not None:
        return decode_revert_data(raw, selectors, tx_hash=tx_hash, step=step)
    if rest:
        return RevertError("Error", (rest,), arg_names=("reason",), tx_hash=tx_hash, step=step)
    return decode_revert_data(None, selectors, tx_hash=tx_hash, step=step)
