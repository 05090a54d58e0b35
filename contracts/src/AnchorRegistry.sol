// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ThresholdSigners} from "./ThresholdSigners.sol";

/**
 * @title AnchorRegistry
 * @notice Anchors fedledger's per-round Merkle roots on a public EVM chain, signed m-of-n by
 * the organisations' keys (EIP-712, domain name "fedledger AnchorRegistry", version "1").
 *
 * @dev One call anchors a contiguous range of rounds `[firstRound, lastRound]` (rounds start at 1)
 * under one Merkle root, signed over `Anchor(uint64 firstRound,uint64 lastRound,bytes32 root)`.
 * Every round is anchored exactly once, in order: `firstRound` must equal {nextRound}.
 *
 * GAS DESIGN: the roots live in the {Anchored} event logs, NOT in storage. Contract storage only
 * advances {nextRound}, which is packed with the key-set commitment and the threshold into a
 * single slot (see {ThresholdSigners}). A fresh storage slot per anchor would cost 22,100 gas
 * (cold SSTORE zero -> non-zero), which alone breaks the anchoring gas budget; a LOG4 with one
 * data word costs ~2,100 gas. Logs are part of the receipt trie that the block header commits
 * to, so an anchor remains provable against the chain (receipt proof), and anyone can
 * re-derive the full history with `eth_getLogs`. The trade-off: other contracts cannot read a
 * root on-chain.
 */
contract AnchorRegistry is ThresholdSigners {
    /// @notice EIP-712 type hash of `Anchor(uint64 firstRound,uint64 lastRound,bytes32 root)`.
    bytes32 public constant ANCHOR_TYPEHASH = keccak256("Anchor(uint64 firstRound,uint64 lastRound,bytes32 root)");

    /**
     * @notice Rounds `firstRound..lastRound` (inclusive) were anchored under `root`.
     * @param firstRound First round of the range.
     * @param lastRound Last round of the range.
     * @param root Merkle root over the range's records.
     * @param submitter The account that sent the transaction (not a signer).
     */
    event Anchored(uint64 indexed firstRound, uint64 indexed lastRound, bytes32 root, address indexed submitter);

    /// @notice `firstRound` is below {nextRound}: (part of) this range is already anchored.
    error RoundAlreadyAnchored(uint64 firstRound, uint64 nextRound);

    /// @notice `firstRound` is above {nextRound}: rounds would be skipped.
    error RoundGap(uint64 firstRound, uint64 nextRound);

    /// @notice `lastRound` is below `firstRound`.
    error EmptyRange(uint64 firstRound, uint64 lastRound);

    /// @notice The root is zero.
    error ZeroRoot();

    /**
     * @param keys Initial signer keys, strictly ascending.
     * @param threshold_ Initial number of signatures required (a majority is expected).
     */
    constructor(
        address[] memory keys,
        uint8 threshold_
    ) ThresholdSigners("fedledger AnchorRegistry", "1", keys, threshold_, 1) {}

    /**
     * @notice Anchor rounds `firstRound..lastRound` under `root`.
     * @dev Anyone may submit; authority comes from the signatures. Costs one cold SLOAD,
     * one SSTORE (non-zero -> non-zero), one ecrecover per entry and one LOG4.
     * @param firstRound Must equal {nextRound}.
     * @param lastRound Last round covered, >= firstRound.
     * @param root Non-zero Merkle root.
     * @param keys Current key set (checked against the commitment).
     * @param signatures Signature entries over {anchorDigest}(firstRound, lastRound, root).
     */
    function anchor(
        uint64 firstRound,
        uint64 lastRound,
        bytes32 root,
        address[] calldata keys,
        bytes calldata signatures
    ) external {
        SignerState memory state = _loadSignerState();
        uint64 next = state.counter;
        if (firstRound != next) {
            if (firstRound < next) revert RoundAlreadyAnchored(firstRound, next);
            revert RoundGap(firstRound, next);
        }
        if (lastRound < firstRound) revert EmptyRange(firstRound, lastRound);
        if (root == bytes32(0)) revert ZeroRoot();

        _checkSignatures(state, anchorDigest(firstRound, lastRound, root), keys, signatures);

        _storeCounter(state, lastRound + 1);
        emit Anchored(firstRound, lastRound, root, msg.sender);
    }

    /// @notice The next round to anchor (1 before the first anchor).
    function nextRound() external view returns (uint64) {
        return _loadSignerState().counter;
    }

    /// @notice EIP-712 digest the signers sign to authorise {anchor}.
    function anchorDigest(uint64 firstRound, uint64 lastRound, bytes32 root) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ANCHOR_TYPEHASH, firstRound, lastRound, root)));
    }
}
