"""THE module that builds the project's EIP-712 typed data (never built ad hoc elsewhere).

Structs, as the contracts define them (``contracts/src``):

- AnchorRegistry, domain ``{name: "fedledger AnchorRegistry", version: "1", chainId,
  verifyingContract}``: ``Anchor(uint64 firstRound,uint64 lastRound,bytes32 root)``.
- Staking, domain ``{name: "fedledger Staking", version: "1", ...}``:
  ``Outcome(uint64 round,bytes32 orgsHash,bytes32 deltasHash)`` with
  ``orgsHash = keccak256(abi.encodePacked(address[] orgs))`` and
  ``deltasHash = keccak256(abi.encodePacked(int256[] deltas))`` (each element padded to
  32 bytes, as Solidity packs array elements).
- Both (``ThresholdSigners``): ``KeySetUpdate(bytes32 newKeysHash,uint8 newThreshold,uint64
  updateNonce)`` with ``newKeysHash = keccak256(abi.encodePacked(address[] newKeys))``.

Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28}; a call carries them packed
as 66-byte entries ``keyIndex || r || s || v`` in strictly ascending key index
(:func:`pack_signatures`), next to the full key set sorted ascending (:func:`sorted_keys`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_bytes, to_checksum_address

ANCHOR_REGISTRY_DOMAIN_NAME = "fedledger AnchorRegistry"
STAKING_DOMAIN_NAME = "fedledger Staking"
DOMAIN_VERSION = "1"
SIGNATURE_LENGTH = 65
SIGNATURE_ENTRY_LENGTH = 66
MAX_KEYS = 256

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

ANCHOR_TYPE = [
    {"name": "firstRound", "type": "uint64"},
    {"name": "lastRound", "type": "uint64"},
    {"name": "root", "type": "bytes32"},
]
OUTCOME_TYPE = [
    {"name": "round", "type": "uint64"},
    {"name": "orgsHash", "type": "bytes32"},
    {"name": "deltasHash", "type": "bytes32"},
]
KEY_SET_UPDATE_TYPE = [
    {"name": "newKeysHash", "type": "bytes32"},
    {"name": "newThreshold", "type": "uint8"},
    {"name": "updateNonce", "type": "uint64"},
]

UINT64_MAX = 2**64 - 1
INT256_MIN, INT256_MAX = -(2**255), 2**255 - 1


def _address(value: Any) -> str:
    return to_checksum_address(value if isinstance(value, str) else getattr(value, "address", value))


def _bytes32(value: bytes | str) -> bytes:
    raw = to_bytes(hexstr=value) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def _uint64(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT64_MAX:
        raise ValueError(f"{name} must be a uint64, got {value!r}")
    return value


def domain(name: str, chain_id: int, contract: Any) -> dict[str, Any]:
    return {"name": name, "version": DOMAIN_VERSION, "chainId": int(chain_id),
            "verifyingContract": _address(contract)}


def _typed(primary: str, fields: list[dict[str, str]], dom: dict[str, Any],
           message: dict[str, Any]) -> dict[str, Any]:
    return {"types": {"EIP712Domain": _DOMAIN_TYPE, primary: fields}, "primaryType": primary,
            "domain": dom, "message": message}


# ------------------------------------------------------------------ packed hashes

def keys_hash(keys: Sequence[Any]) -> bytes:
    """keccak256(abi.encodePacked(address[] keys)): each address left-padded to 32 bytes."""
    return keccak(b"".join(bytes(12) + to_bytes(hexstr=_address(k)) for k in keys))


def orgs_hash(orgs: Sequence[Any]) -> bytes:
    """keccak256(abi.encodePacked(address[] orgs))."""
    return keys_hash(orgs)


def deltas_hash(deltas: Sequence[int]) -> bytes:
    """keccak256(abi.encodePacked(int256[] deltas)): each a 32-byte two's complement word."""
    for d in deltas:
        if not INT256_MIN <= int(d) <= INT256_MAX:
            raise ValueError(f"delta {d} does not fit int256")
    return keccak(b"".join(abi_encode(["int256"], [int(d)]) for d in deltas))


# ------------------------------------------------------------------ typed data

def anchor_typed_data(chain_id: int, contract: Any, first_round: int, last_round: int,
                      root: bytes | str) -> dict[str, Any]:
    """``Anchor(uint64 firstRound,uint64 lastRound,bytes32 root)`` for AnchorRegistry at
    ``contract`` (address, or anything with ``.address``) on ``chain_id``."""
    first = _uint64(first_round, "first_round")
    last = _uint64(last_round, "last_round")
    if last < first:
        raise ValueError(f"last_round {last} < first_round {first}")
    return _typed("Anchor", ANCHOR_TYPE, domain(ANCHOR_REGISTRY_DOMAIN_NAME, chain_id, contract),
                  {"firstRound": first, "lastRound": last, "root": _bytes32(root)})


def outcome_typed_data(chain_id: int, contract: Any, round: int, orgs: Sequence[Any],  # noqa: A002
                       deltas: Sequence[int]) -> dict[str, Any]:
    """``Outcome(uint64 round,bytes32 orgsHash,bytes32 deltasHash)`` for Staking."""
    if len(orgs) != len(deltas):
        raise ValueError(f"{len(orgs)} orgs but {len(deltas)} deltas")
    return _typed("Outcome", OUTCOME_TYPE, domain(STAKING_DOMAIN_NAME, chain_id, contract),
                  {"round": _uint64(round, "round"), "orgsHash": orgs_hash(orgs),
                   "deltasHash": deltas_hash(deltas)})


def key_set_update_typed_data(chain_id: int, contract: Any, domain_name: str, new_keys: Sequence[Any],
                              new_threshold: int, update_nonce: int) -> dict[str, Any]:
    """``KeySetUpdate(bytes32 newKeysHash,uint8 newThreshold,uint64 updateNonce)``, for either
    contract (``domain_name``: :data:`ANCHOR_REGISTRY_DOMAIN_NAME` or :data:`STAKING_DOMAIN_NAME`).
    ``new_keys`` must be sorted ascending (see :func:`sorted_keys`)."""
    keys = [_address(k) for k in new_keys]
    if keys != sorted_keys(keys) or len(set(keys)) != len(keys):
        raise ValueError("new_keys must be strictly ascending (use sorted_keys)")
    if not 1 <= int(new_threshold) <= min(len(keys), 255):
        raise ValueError(f"new_threshold {new_threshold} not in 1..{len(keys)}")
    return _typed("KeySetUpdate", KEY_SET_UPDATE_TYPE, domain(domain_name, chain_id, contract),
                  {"newKeysHash": keys_hash(keys), "newThreshold": int(new_threshold),
                   "updateNonce": _uint64(update_nonce, "update_nonce")})


def typed_data_digest(typed: Mapping[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest (what the contract's ``*Digest`` views return)."""
    signable = encode_typed_data(full_message=dict(typed))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_typed(account: LocalAccount, typed: Mapping[str, Any]) -> bytes:
    """65-byte ``r || s || v`` signature (``v`` in {27, 28}, low ``s``)."""
    signed = account.sign_message(encode_typed_data(full_message=dict(typed)))
    sig = bytes(signed.signature)
    if len(sig) != SIGNATURE_LENGTH or sig[64] not in (27, 28):  # pragma: no cover - eth-account contract
        raise ValueError("unexpected signature encoding")
    return sig


def recover_typed(typed: Mapping[str, Any], signature: bytes) -> str:
    """The address that signed ``typed``."""
    return Account.recover_message(encode_typed_data(full_message=dict(typed)), signature=signature)


# ------------------------------------------------------------------ keys and packing

def sorted_keys(addresses: Iterable[Any]) -> list[str]:
    """Checksummed addresses sorted ascending as uint160 (Solidity's order; NOT the string
    order of checksummed addresses, which mixes cases)."""
    return sorted((_address(a) for a in addresses), key=lambda a: int(a, 16))


def pack_signatures(keys: Sequence[Any], signatures_by_address: Mapping[Any, bytes]) -> bytes:
    """66-byte entries ``keyIndex || r || s || v`` in ascending key index. ``keys``: the full
    current key set, sorted ascending; every signer must be in it; at least one signature."""
    key_list = [_address(k) for k in keys]
    if key_list != sorted_keys(key_list) or len(set(key_list)) != len(key_list):
        raise ValueError("keys must be strictly ascending (use sorted_keys)")
    if len(key_list) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} keys")
    if not signatures_by_address:
        raise ValueError("at least one signature is required")
    index = {k: i for i, k in enumerate(key_list)}
    entries = []
    for address, sig in signatures_by_address.items():
        addr = _address(address)
        if addr not in index:
            raise ValueError(f"signer {addr} is not in the key set")
        sig = bytes(sig)
        if len(sig) != SIGNATURE_LENGTH:
            raise ValueError(f"signature of {addr} has {len(sig)} bytes, expected 65")
        entries.append((index[addr], sig))
    entries.sort()
    return b"".join(bytes([i]) + sig for i, sig in entries)
