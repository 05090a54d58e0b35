// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/**
 * @title ThresholdSigners
 * @notice m-of-n EIP-712 signer set shared by the fedledger contracts.
 *
 * @dev The key set is NOT stored as a list. Storage holds one slot that packs
 *
 *     bytes23 keysHash   -- the first 23 bytes of keccak256(abi.encodePacked(keys))
 *     uint8   threshold  -- m, 1 <= m <= n
 *     uint64  counter    -- a monotonic counter owned by the subcontract
 *                          (AnchorRegistry: next round to anchor; Staking: next round to settle)
 *
 * so an authorised call costs one cold SLOAD and one SSTORE on an already non-zero slot.
 * Callers pass the full key list in calldata (`address[] keys`, strictly ascending, no
 * duplicates, no zero address); it is checked against the commitment. The list can always
 * be rebuilt from the {KeySetUpdated} events (the constructor emits one too).
 *
 * `abi.encodePacked(address[])` pads every address to 32 bytes, so the commitment is
 * keccak256 over `n * 32` bytes: each address left-padded with 12 zero bytes.
 *
 * Signatures are passed as one `bytes` value: the concatenation of 66-byte entries
 *
 *     uint8 keyIndex || bytes32 r || bytes32 s || uint8 v
 *
 * where `keyIndex` is the signer's position in `keys`, `v` is 27 or 28 and `s` is in the lower
 * half of the curve order (malleable signatures are rejected). Entries must be sorted by
 * strictly ascending `keyIndex` (a signer cannot count twice); every entry must be valid and
 * there must be at least `threshold` of them.
 *
 * Recovery applies exactly the checks of OpenZeppelin's `ECDSA.tryRecover(hash, v, r, s)`
 * (`s <= secp256k1n / 2`, `v` in {27, 28}, a non-zero recovered address) but is written as one
 * inline-assembly loop over calldata: calling the library per entry costs ~445 gas more per
 * signature (measured), which matters for the anchoring gas budget. Domain separation and
 * typed-data hashing are OpenZeppelin's {EIP712}.
 *
 * The key set is rotated with {updateKeys}, signed by the CURRENT threshold over the EIP-712
 * struct `KeySetUpdate(bytes32 newKeysHash,uint8 newThreshold,uint64 updateNonce)`, where
 * `newKeysHash` is the full (32-byte) keccak256 of the new packed key list and `updateNonce` is
 * {keyUpdateNonce}, a separate counter, so an update cannot be replayed.
 */
abstract contract ThresholdSigners is EIP712 {
    /// @notice EIP-712 type hash of `KeySetUpdate(bytes32 newKeysHash,uint8 newThreshold,uint64 updateNonce)`.
    bytes32 public constant KEY_SET_UPDATE_TYPEHASH =
        keccak256("KeySetUpdate(bytes32 newKeysHash,uint8 newThreshold,uint64 updateNonce)");

    /// @notice Largest key set: the key index in a signature entry is one byte.
    uint256 public constant MAX_KEYS = 256;

    /// @notice Length in bytes of one signature entry: 1-byte key index + 65-byte (r, s, v).
    uint256 public constant SIGNATURE_ENTRY_LENGTH = 66;

    /// @dev secp256k1n / 2: larger `s` values are malleable (same bound as OpenZeppelin's ECDSA).
    uint256 private constant _HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /**
     * @dev The single hot storage slot (see contract docs).
     */
    struct SignerState {
        bytes23 keysHash;
        uint8 threshold;
        uint64 counter;
    }

    SignerState private _signerState;

    /// @dev Separate nonce for key-set updates (rare, so it gets its own slot).
    uint64 private _keyUpdateNonce;

    /**
     * @notice The key set changed (also emitted by the constructor).
     * @param keysHash Full keccak256(abi.encodePacked(keys)); storage keeps its first 23 bytes.
     * @param threshold Number of signatures required from now on.
     * @param keys The new key list, strictly ascending.
     */
    event KeySetUpdated(bytes32 keysHash, uint8 threshold, address[] keys);

    /// @notice The `keys` passed in calldata do not match the stored commitment.
    error WrongKeySet();

    /// @notice Fewer signature entries than the threshold.
    error NotEnoughSignatures(uint256 given, uint256 threshold);

    /// @notice The signature entry at `position` does not have a key index above the previous entry's.
    error SignersNotAscending(uint256 position);

    /// @notice A signature entry names a key index that is not in `keys`.
    error KeyIndexOutOfRange(uint256 index);

    /// @notice The signature entry at `position` is malformed, malleable or not signed by `keys[index]`.
    error InvalidSignature(uint256 position);

    /// @notice `signatures.length` is not a multiple of {SIGNATURE_ENTRY_LENGTH}.
    error MalformedSignatures(uint256 length);

    /// @notice A new key set is empty.
    error EmptyKeySet();

    /// @notice A new key set has more than {MAX_KEYS} keys.
    error TooManyKeys(uint256 count, uint256 max);

    /// @notice A new key set is not strictly ascending at `position` (or holds the zero address).
    error KeysNotAscending(uint256 position);

    /// @notice A new threshold is 0 or larger than the number of keys.
    error InvalidThreshold(uint8 threshold, uint256 keyCount);

    /**
     * @param name EIP-712 domain name.
     * @param version EIP-712 domain version.
     * @param keys Initial key set, strictly ascending.
     * @param threshold_ Initial threshold.
     * @param initialCounter Initial value of the subcontract's counter.
     */
    constructor(
        string memory name,
        string memory version,
        address[] memory keys,
        uint8 threshold_,
        uint64 initialCounter
    ) EIP712(name, version) {
        bytes32 keysHash_ = _validateKeySet(keys, threshold_);
        _signerState = SignerState({keysHash: bytes23(keysHash_), threshold: threshold_, counter: initialCounter});
        emit KeySetUpdated(keysHash_, threshold_, keys);
    }

    // ------------------------------------------------------------------ views

    /// @notice First 23 bytes of keccak256(abi.encodePacked(keys)) of the current key set.
    function keysHash() external view returns (bytes23) {
        return _signerState.keysHash;
    }

    /// @notice Number of valid signature entries an authorised call needs.
    function threshold() external view returns (uint8) {
        return _signerState.threshold;
    }

    /// @notice Nonce the next {updateKeys} must be signed over.
    function keyUpdateNonce() external view returns (uint64) {
        return _keyUpdateNonce;
    }

    /// @notice The EIP-712 domain separator (name, version, chainId, verifyingContract).
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice keccak256(abi.encodePacked(keys)): each address left-padded to 32 bytes.
    function hashKeys(address[] calldata keys) public pure returns (bytes32) {
        return _hashKeysCalldata(keys);
    }

    /**
     * @notice EIP-712 digest the current signers sign to authorise {updateKeys}.
     * @param newKeysHash Full keccak256(abi.encodePacked(newKeys)).
     * @param newThreshold The new threshold.
     * @param updateNonce Must equal {keyUpdateNonce} at execution.
     */
    function keySetUpdateDigest(
        bytes32 newKeysHash,
        uint8 newThreshold,
        uint64 updateNonce
    ) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(KEY_SET_UPDATE_TYPEHASH, newKeysHash, newThreshold, updateNonce)));
    }

    // -------------------------------------------------------------- mutators

    /**
     * @notice Replace the key set and threshold, authorised by the current threshold of current keys.
     * @dev Keeps the subcontract counter. Consumes {keyUpdateNonce}.
     * @param newKeys New key set, strictly ascending, 1..{MAX_KEYS} keys, no zero address.
     * @param newThreshold New threshold, 1..newKeys.length.
     * @param currentKeys The current key set (checked against the commitment).
     * @param signatures Signature entries over {keySetUpdateDigest}.
     */
    function updateKeys(
        address[] calldata newKeys,
        uint8 newThreshold,
        address[] calldata currentKeys,
        bytes calldata signatures
    ) external {
        SignerState memory state = _signerState;
        uint64 nonce = _keyUpdateNonce;
        bytes32 newKeysHash = _validateKeySet(newKeys, newThreshold);
        _checkSignatures(state, keySetUpdateDigest(newKeysHash, newThreshold, nonce), currentKeys, signatures);

        _keyUpdateNonce = nonce + 1;
        _signerState = SignerState({keysHash: bytes23(newKeysHash), threshold: newThreshold, counter: state.counter});
        emit KeySetUpdated(newKeysHash, newThreshold, newKeys);
    }

    // -------------------------------------------------------------- internal

    /// @dev The packed signer slot (one SLOAD).
    function _loadSignerState() internal view returns (SignerState memory) {
        return _signerState;
    }

    /// @dev Overwrite the subcontract counter, keeping keys and threshold (one SSTORE).
    function _storeCounter(SignerState memory state, uint64 counter) internal {
        bytes23 keysHash_ = state.keysHash;
        uint8 threshold_ = state.threshold;
        // Same layout Solidity uses for the struct (first member in the low-order bytes), written
        // without re-reading the slot.
        assembly ("memory-safe") {
            sstore(_signerState.slot, or(shr(72, keysHash_), or(shl(184, threshold_), shl(192, counter))))
        }
    }

    /**
     * @dev Revert unless `signatures` holds at least `state.threshold` valid entries over `digest`
     * by distinct members of `keys`, and `keys` matches `state.keysHash`.
     */
    function _checkSignatures(
        SignerState memory state,
        bytes32 digest,
        address[] calldata keys,
        bytes calldata signatures
    ) internal view {
        if (bytes23(_hashKeysCalldata(keys)) != state.keysHash) revert WrongKeySet();

        uint256 length = signatures.length;
        if (length % SIGNATURE_ENTRY_LENGTH != 0) revert MalformedSignatures(length);
        uint256 count = length / SIGNATURE_ENTRY_LENGTH;
        if (count < state.threshold) revert NotEnoughSignatures(count, state.threshold);

        // One pass over the entries; on the first failure remember what failed and where, and
        // revert with the matching custom error below. Per entry: index > previous index,
        // index < keys.length, s not malleable, ecrecover(digest, v, r, s) == keys[index]
        // (ecrecover returns no data when v is not 27/28 or recovery fails).
        uint256 failure;
        uint256 position;
        uint256 failedIndex;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, digest)
            let keyCount := keys.length
            let minIndex := 0
            let end := add(signatures.offset, length)
            for { let p := signatures.offset } lt(p, end) { p := add(p, SIGNATURE_ENTRY_LENGTH) } {
                let index := byte(0, calldataload(p))
                if lt(index, minIndex) { failure := 1 position := p break }
                if iszero(lt(index, keyCount)) { failure := 2 position := p failedIndex := index break }
                let s := calldataload(add(p, 33))
                if gt(s, _HALF_ORDER) { failure := 3 position := p break }
                mstore(add(ptr, 0x20), byte(0, calldataload(add(p, 65))))
                mstore(add(ptr, 0x40), calldataload(add(p, 1)))
                mstore(add(ptr, 0x60), s)
                pop(staticcall(gas(), 1, ptr, 0x80, 0x00, 0x20))
                if or(iszero(returndatasize()), iszero(eq(mload(0x00), calldataload(add(keys.offset, shl(5, index)))))) {
                    failure := 3 position := p break
                }
                minIndex := add(index, 1)
            }
            position := div(sub(position, signatures.offset), SIGNATURE_ENTRY_LENGTH)
        }
        if (failure != 0) {
            if (failure == 1) revert SignersNotAscending(position);
            if (failure == 2) revert KeyIndexOutOfRange(failedIndex);
            revert InvalidSignature(position);
        }
    }

    /// @dev keccak256 over the raw calldata words of `keys` (== keccak256(abi.encodePacked(keys))).
    function _hashKeysCalldata(address[] calldata keys) private pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := shl(5, keys.length)
            calldatacopy(ptr, keys.offset, size)
            result := keccak256(ptr, size)
        }
    }

    /// @dev Check a key set and threshold; return the full keccak256(abi.encodePacked(keys)).
    function _validateKeySet(address[] memory keys, uint8 threshold_) private pure returns (bytes32) {
        uint256 n = keys.length;
        if (n == 0) revert EmptyKeySet();
        if (n > MAX_KEYS) revert TooManyKeys(n, MAX_KEYS);
        if (threshold_ == 0 || threshold_ > n) revert InvalidThreshold(threshold_, n);
        address previous = address(0);
        for (uint256 i = 0; i < n; ++i) {
            address key = keys[i];
            if (key <= previous) revert KeysNotAscending(i);
            previous = key;
        }
        return keccak256(abi.encodePacked(keys));
    }
}
