// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ThresholdSigners} from "./ThresholdSigners.sol";

/**
 * @title Staking
 * @notice Native-ETH stakes of the fedledger organisations, rewarded and slashed per round from
 * a vote outcome signed m-of-n by the organisations' keys (EIP-712, domain name
 * "fedledger Staking", version "1").
 *
 * @dev A stake belongs to the address that sent it. Only that address can request a withdrawal
 * of it or withdraw it; the only other way a stake moves is {settle}, authorised m-of-n.
 *
 * An outcome is signed over `Outcome(uint64 round,bytes32 orgsHash,bytes32 deltasHash)` with
 * `orgsHash = keccak256(abi.encodePacked(orgs))` (each address padded to 32 bytes) and
 * `deltasHash = keccak256(abi.encodePacked(deltas))` (each int256 as a 32-byte two's complement
 * word). Rounds start at 1 and are settled exactly once, in order. Entries are applied in order:
 * a positive delta moves that amount from the reward pool into the org's stake, a negative delta
 * slashes the org's stake first and then its pending withdrawal, capped at what the org has, and
 * moves the slashed amount into the reward pool.
 */
contract Staking is ThresholdSigners, ReentrancyGuard {
    /// @notice EIP-712 type hash of `Outcome(uint64 round,bytes32 orgsHash,bytes32 deltasHash)`.
    bytes32 public constant OUTCOME_TYPEHASH = keccak256("Outcome(uint64 round,bytes32 orgsHash,bytes32 deltasHash)");

    /// @notice Seconds between {requestWithdrawal} and the earliest {withdraw}.
    uint256 public immutable withdrawalDelay;

    /// @dev A pending withdrawal: amount and the timestamp from which it can be withdrawn.
    struct PendingWithdrawal {
        uint256 amount;
        uint256 unlockAt;
    }

    mapping(address org => uint256) private _stakes;
    mapping(address org => PendingWithdrawal) private _pending;
    uint256 private _rewardPool;

    /// @notice `org` added `amount` wei to its stake.
    event Staked(address indexed org, uint256 amount);

    /// @notice `funder` added `amount` wei to the reward pool.
    event RewardsFunded(address indexed funder, uint256 amount);

    /// @notice `amount` wei moved from the reward pool into `org`'s stake for `round`.
    event Rewarded(uint64 indexed round, address indexed org, uint256 amount);

    /// @notice `amount` wei (the amount actually taken) moved from `org`'s stake/pending withdrawal into the reward pool.
    event Slashed(uint64 indexed round, address indexed org, uint256 amount);

    /// @notice `org` moved `amount` wei from its stake to its pending withdrawal, all of which unlocks at `unlockAt`.
    event WithdrawalRequested(address indexed org, uint256 amount, uint256 unlockAt);

    /// @notice `org` withdrew its pending `amount` wei.
    event Withdrawn(address indexed org, uint256 amount);

    /// @notice The outcome of `round` (orgsHash, deltasHash as signed) was applied.
    event Settled(uint64 indexed round, bytes32 orgsHash, bytes32 deltasHash, address indexed submitter);

    /// @notice A zero amount was staked, funded or requested.
    error ZeroAmount();

    /// @notice `round` is below {nextRound}: it is already settled.
    error RoundAlreadySettled(uint64 round, uint64 nextRound);

    /// @notice `round` is above {nextRound}: rounds would be skipped.
    error RoundGap(uint64 round, uint64 nextRound);

    /// @notice `orgs` and `deltas` differ in length.
    error LengthMismatch(uint256 orgs, uint256 deltas);

    /// @notice A reward exceeds what is left in the reward pool.
    error InsufficientRewardPool(uint256 requested, uint256 available);

    /// @notice A withdrawal request exceeds the caller's stake.
    error InsufficientStake(uint256 requested, uint256 available);

    /// @notice The caller has no pending withdrawal.
    error NothingToWithdraw();

    /// @notice The pending withdrawal unlocks at `unlockAt`.
    error WithdrawalLocked(uint256 unlockAt);

    /// @notice Sending ETH to the caller failed.
    error TransferFailed();

    /**
     * @param keys Initial signer keys, strictly ascending.
     * @param threshold_ Initial number of signatures required (a majority is expected).
     * @param withdrawalDelay_ Seconds a requested withdrawal stays locked (and slashable).
     */
    constructor(
        address[] memory keys,
        uint8 threshold_,
        uint256 withdrawalDelay_
    ) ThresholdSigners("fedledger Staking", "1", keys, threshold_, 1) {
        withdrawalDelay = withdrawalDelay_;
    }

    // -------------------------------------------------------------- mutators

    /// @notice Add `msg.value` to the caller's stake.
    function stake() external payable nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        _stakes[msg.sender] += msg.value;
        emit Staked(msg.sender, msg.value);
    }

    /// @notice Add `msg.value` to the reward pool.
    function fundRewards() external payable nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        _rewardPool += msg.value;
        emit RewardsFunded(msg.sender, msg.value);
    }

    /**
     * @notice Move `amount` of the caller's stake to its pending withdrawal.
     * @dev The whole pending amount (earlier requests included) unlocks at
     * `block.timestamp + withdrawalDelay`. Pending amounts remain slashable.
     */
    function requestWithdrawal(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 staked = _stakes[msg.sender];
        if (amount > staked) revert InsufficientStake(amount, staked);
        uint256 unlockAt = block.timestamp + withdrawalDelay;
        _stakes[msg.sender] = staked - amount;
        PendingWithdrawal storage pending = _pending[msg.sender];
        pending.amount += amount;
        pending.unlockAt = unlockAt;
        emit WithdrawalRequested(msg.sender, amount, unlockAt);
    }

    /// @notice Pay the caller's whole pending withdrawal once it is unlocked.
    function withdraw() external nonReentrant {
        PendingWithdrawal memory pending = _pending[msg.sender];
        if (pending.amount == 0) revert NothingToWithdraw();
        if (block.timestamp < pending.unlockAt) revert WithdrawalLocked(pending.unlockAt);

        delete _pending[msg.sender];
        emit Withdrawn(msg.sender, pending.amount);

        (bool ok, ) = payable(msg.sender).call{value: pending.amount}("");
        if (!ok) revert TransferFailed();
    }

    /**
     * @notice Apply the signed outcome of `round`.
     * @param round Must equal {nextRound}.
     * @param orgs Organisations (stake owners), same length as `deltas`.
     * @param deltas Wei per org: > 0 reward from the pool, < 0 slash (capped), 0 nothing.
     * @param keys Current key set (checked against the commitment).
     * @param signatures Signature entries over {outcomeDigest}(round, orgs, deltas).
     */
    function settle(
        uint64 round,
        address[] calldata orgs,
        int256[] calldata deltas,
        address[] calldata keys,
        bytes calldata signatures
    ) external nonReentrant {
        (bytes32 orgsHash, bytes32 deltasHash) = _authorizeOutcome(round, orgs, deltas, keys, signatures);
        _applyOutcome(round, orgs, deltas);
        emit Settled(round, orgsHash, deltasHash, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @notice Active stake of `org`, in wei.
    function stakeOf(address org) external view returns (uint256) {
        return _stakes[org];
    }

    /// @notice Pending withdrawal of `org`: amount in wei and the unlock timestamp.
    function pendingOf(address org) external view returns (uint256 amount, uint256 unlockAt) {
        PendingWithdrawal memory pending = _pending[org];
        return (pending.amount, pending.unlockAt);
    }

    /// @notice Wei available for rewards.
    function rewardPool() external view returns (uint256) {
        return _rewardPool;
    }

    /// @notice The next round to settle (1 before the first settlement).
    function nextRound() external view returns (uint64) {
        return _loadSignerState().counter;
    }

    /// @notice EIP-712 digest the signers sign to authorise {settle}.
    function outcomeDigest(
        uint64 round,
        address[] calldata orgs,
        int256[] calldata deltas
    ) external view returns (bytes32) {
        return _outcomeDigest(round, keccak256(abi.encodePacked(orgs)), keccak256(abi.encodePacked(deltas)));
    }

    // -------------------------------------------------------------- internal

    function _outcomeDigest(uint64 round, bytes32 orgsHash, bytes32 deltasHash) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(OUTCOME_TYPEHASH, round, orgsHash, deltasHash)));
    }

    /**
     * @dev Check the round and the signatures over the outcome, then consume the round.
     * Returns the signed orgsHash and deltasHash.
     */
    function _authorizeOutcome(
        uint64 round,
        address[] calldata orgs,
        int256[] calldata deltas,
        address[] calldata keys,
        bytes calldata signatures
    ) private returns (bytes32 orgsHash, bytes32 deltasHash) {
        SignerState memory state = _loadSignerState();
        uint64 next = state.counter;
        if (round != next) {
            if (round < next) revert RoundAlreadySettled(round, next);
            revert RoundGap(round, next);
        }
        if (orgs.length != deltas.length) revert LengthMismatch(orgs.length, deltas.length);

        orgsHash = keccak256(abi.encodePacked(orgs));
        deltasHash = keccak256(abi.encodePacked(deltas));
        _checkSignatures(state, _outcomeDigest(round, orgsHash, deltasHash), keys, signatures);
        _storeCounter(state, round + 1);
    }

    /// @dev Apply rewards and slashes in order; the reward pool is read and written once.
    function _applyOutcome(uint64 round, address[] calldata orgs, int256[] calldata deltas) private {
        uint256 pool = _rewardPool;
        for (uint256 i = 0; i < orgs.length; ++i) {
            address org = orgs[i];
            int256 delta = deltas[i];
            if (delta > 0) {
                uint256 amount = uint256(delta);
                if (amount > pool) revert InsufficientRewardPool(amount, pool);
                pool -= amount;
                _stakes[org] += amount;
                emit Rewarded(round, org, amount);
            } else if (delta < 0) {
                // |delta| without overflowing on type(int256).min
                uint256 taken = _slash(org, uint256(-(delta + 1)) + 1);
                pool += taken;
                emit Slashed(round, org, taken);
            }
        }
        _rewardPool = pool;
    }

    /// @dev Take up to `amount` from `org`'s stake, then from its pending withdrawal; return what was taken.
    function _slash(address org, uint256 amount) private returns (uint256 taken) {
        uint256 staked = _stakes[org];
        if (amount <= staked) {
            _stakes[org] = staked - amount;
            return amount;
        }
        taken = staked;
        if (staked != 0) _stakes[org] = 0;
        uint256 rest = amount - staked;
        PendingWithdrawal storage pending = _pending[org];
        uint256 pendingAmount = pending.amount;
        uint256 fromPending = rest < pendingAmount ? rest : pendingAmount;
        if (fromPending != 0) {
            pending.amount = pendingAmount - fromPending;
            taken += fromPending;
        }
    }
}
