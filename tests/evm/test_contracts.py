"""Acceptance tests of AnchorRegistry and Staking through the clients, on both backends."""

from __future__ import annotations

import pytest
from eth_account import Account

from fedledger.evm import RevertError
from fedledger.evm import typed_data as td
from fedledger.evm.contracts import deploy_anchor_registry, deploy_staking

from .conftest import new_funded_accounts

ROOT = bytes.fromhex("11" * 32)


@pytest.fixture
def orgs():
    return [Account.create() for _ in range(5)]


@pytest.fixture
def keys(orgs):
    return td.sorted_keys(o.address for o in orgs)


@pytest.fixture
def registry(chain, funder, keys):
    return deploy_anchor_registry(chain, keys, 3, funder)


def signed(registry, signers, first, last, root=ROOT, keys=None, chain_id=None):
    typed = td.anchor_typed_data(chain_id or registry.chain.chain_id, registry.address, first, last, root)
    sigs = {s.address: td.sign_typed(s, typed) for s in signers}
    return td.pack_signatures(keys, sigs) if keys is not None else sigs


def by_address(orgs, keys):
    index = {o.address: o for o in orgs}
    return [index[k] for k in keys]


def test_anchor_with_threshold_signatures(chain, funder, registry, orgs, keys):
    assert (registry.next_round(), registry.threshold()) == (1, 3)
    typed = registry.typed_data(1, 1, ROOT)
    assert td.typed_data_digest(typed) == registry.anchor_digest(1, 1, ROOT)
    receipt = registry.anchor(1, 1, ROOT, keys, signed(registry, orgs[:3], 1, 1, keys=keys), funder)
    assert receipt["status"] == 1
    print(f"\n[{chain.kind}] anchor gas used (5 keys, 3 signatures): {receipt['gasUsed']}")
    events = chain.events_in(receipt, registry.contract.events.Anchored)
    assert len(events) == 1
    args = events[0]["args"]
    assert (args["firstRound"], args["lastRound"], bytes(args["root"]), args["submitter"]) == (
        1, 1, ROOT, funder.address)
    assert registry.next_round() == 2
    [record] = registry.anchors()
    first, last, root, tx_hash, block = record
    assert (first, last, root, tx_hash, block) == (
        1, 1, ROOT, receipt["transactionHash"].to_0x_hex(), receipt["blockNumber"])
    assert registry.current_keys() == keys


def expect_revert(call, name, reason=None):
    with pytest.raises(RevertError) as info:
        call()
    assert info.value.error_name == name, info.value.reason
    if reason is not None:
        assert info.value.reason == reason
    return info.value


def test_rejections(chain, funder, registry, orgs, keys):
    # m-1 signatures
    expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, signed(registry, orgs[:2], 1, 1, keys=keys),
                                          funder),
                  "NotEnoughSignatures", "NotEnoughSignatures(given=2, threshold=3)")
    ordered = by_address(orgs, keys)
    sigs = signed(registry, ordered, 1, 1)
    # a repeated signer (same entry twice) cannot count twice
    e0, e1 = bytes([0]) + sigs[keys[0]], bytes([1]) + sigs[keys[1]]
    expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, e0 + e1 + e1, funder),
                  "SignersNotAscending", "SignersNotAscending(position=2)")
    # a signer outside the set, claiming a member's index
    outsider = Account.create()
    bad = bytes([2]) + signed(registry, [outsider], 1, 1)[outsider.address]
    expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, e0 + e1 + bad, funder),
                  "InvalidSignature", "InvalidSignature(position=2)")
    with pytest.raises(ValueError):  # the packer refuses outsiders up front
        td.pack_signatures(keys, {outsider.address: bad[1:]})
    # replay from another chain id
    other_chain = signed(registry, orgs[:3], 1, 1, keys=keys, chain_id=chain.chain_id + 1)
    expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, other_chain, funder),
                  "InvalidSignature", "InvalidSignature(position=0)")
    # replay on another contract (same keys, same chain)
    second = deploy_anchor_registry(chain, keys, 3, funder)
    for_second = signed(second, orgs[:3], 1, 1, keys=keys)
    expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, for_second, funder), "InvalidSignature")
    second.anchor(1, 1, ROOT, keys, for_second, funder)  # valid where it was meant to go
    # a different key set than the committed one
    wrong_keys = td.sorted_keys([*keys[:4], outsider.address])
    expect_revert(lambda: registry.anchor(1, 1, ROOT, wrong_keys,
                                          signed(registry, orgs[:3], 1, 1, keys=keys), funder),
                  "WrongKeySet", "WrongKeySet()")
    # nothing above consumed round 1
    assert registry.next_round() == 1
    good = signed(registry, orgs[1:4], 1, 1, keys=keys)
    registry.anchor(1, 1, ROOT, keys, good, funder)
    # a second anchor for the same round: at estimation, and on chain (explicit gas)
    expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, good, funder),
                  "RoundAlreadyAnchored", "RoundAlreadyAnchored(firstRound=1, nextRound=2)")
    err = expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, good, funder, gas=300_000),
                        "RoundAlreadyAnchored")
    assert err.step == "receipt" and err.tx_hash is not None
    assert chain.w3.eth.get_transaction_receipt(err.tx_hash)["status"] == 0
    expect_revert(lambda: registry.anchor(3, 3, ROOT, keys, signed(registry, orgs[:3], 3, 3, keys=keys),
                                          funder),
                  "RoundGap", "RoundGap(firstRound=3, nextRound=2)")


def test_batch_anchor(chain, funder, registry, orgs, keys):
    registry.anchor(1, 1, ROOT, keys, signed(registry, orgs[:3], 1, 1, keys=keys), funder)
    batch_root = bytes.fromhex("22" * 32)
    registry.anchor(2, 11, batch_root, keys, signed(registry, orgs[2:], 2, 11, batch_root, keys=keys),
                    funder)
    assert registry.next_round() == 12
    assert [(a.first_round, a.last_round, a.root) for a in registry.anchors()] == [
        (1, 1, ROOT), (2, 11, batch_root)]


def test_prepared_anchor_exactly_once(chain, funder, registry, orgs, keys):
    call = registry.anchor_call(1, 1, ROOT, keys, signed(registry, orgs[:3], 1, 1, keys=keys))
    prepared = chain.prepare(call, funder)
    chain.broadcast(prepared)
    chain.broadcast(prepared)
    assert chain.wait(prepared.tx_hash)["status"] == 1
    chain.broadcast(prepared)
    assert len(registry.anchors()) == 1


def test_key_set_update(chain, funder, registry, orgs, keys):
    newcomer = Account.create()
    new_keys = td.sorted_keys([*keys[1:], newcomer.address])
    typed = registry.key_set_update_typed_data(new_keys, 4)
    sigs = td.pack_signatures(keys, {o.address: td.sign_typed(o, typed) for o in orgs[:3]})
    registry.update_keys(new_keys, 4, keys, sigs, funder)
    assert registry.threshold() == 4 and registry.current_keys() == new_keys
    expect_revert(lambda: registry.update_keys(new_keys, 4, keys, sigs, funder), "WrongKeySet")
    # the old key set no longer anchors
    expect_revert(lambda: registry.anchor(1, 1, ROOT, keys, signed(registry, orgs, 1, 1, keys=keys),
                                          funder), "WrongKeySet")


# ------------------------------------------------------------------ staking

DELAY = 3600


@pytest.fixture
def staking(chain, funder, keys):
    return deploy_staking(chain, keys, 3, funder, withdrawal_delay_s=DELAY)


def test_stake_and_locked_withdrawal(chain, funder, staking):
    alice, bob = new_funded_accounts(chain, funder, 2, 10**18)
    staking.stake(alice, 10**17)
    assert staking.stake_of(alice.address) == 10**17
    staking.request_withdrawal(alice, 4 * 10**16)
    amount, unlock_at = staking.pending_of(alice.address)
    assert amount == 4 * 10**16 and unlock_at >= chain.timestamp() + DELAY - 5
    assert staking.stake_of(alice.address) == 6 * 10**16
    expect_revert(lambda: staking.withdraw(alice), "WithdrawalLocked",
                  f"WithdrawalLocked(unlockAt={unlock_at})")
    # another org cannot take alice's stake or pending withdrawal
    expect_revert(lambda: staking.withdraw(bob), "NothingToWithdraw")
    expect_revert(lambda: staking.request_withdrawal(bob, 1), "InsufficientStake",
                  "InsufficientStake(requested=1, available=0)")
    chain.increase_time(DELAY + 1)
    before = chain.balance(alice.address)
    receipt = staking.withdraw(alice)
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert chain.balance(alice.address) == before + 4 * 10**16 - fee
    assert staking.pending_of(alice.address)[0] == 0
    expect_revert(lambda: staking.withdraw(alice), "NothingToWithdraw")


def test_settle_moves_rewards_and_slashes(chain, funder, staking, orgs, keys):
    good, bad = new_funded_accounts(chain, funder, 2, 10**18)
    staking.stake(good, 10**17)
    staking.stake(bad, 10**17)
    staking.fund_rewards(funder, 10**16)
    participants, deltas = [good.address, bad.address], [5 * 10**15, -3 * 10**16]
    typed = staking.typed_data(1, participants, deltas)
    assert td.typed_data_digest(typed) == staking.outcome_digest(1, participants, deltas)
    sigs = td.pack_signatures(keys, {o.address: td.sign_typed(o, typed) for o in orgs[:3]})
    # m-1 signatures are not enough
    expect_revert(lambda: staking.settle(1, participants, deltas, keys, sigs[:132], funder),
                  "NotEnoughSignatures")
    receipt = staking.settle(1, participants, deltas, keys, sigs, funder)
    assert receipt["status"] == 1
    assert staking.stake_of(good.address) == 10**17 + 5 * 10**15
    assert staking.stake_of(bad.address) == 10**17 - 3 * 10**16
    assert staking.reward_pool() == 10**16 - 5 * 10**15 + 3 * 10**16
    assert staking.next_round() == 2
    expect_revert(lambda: staking.settle(1, participants, deltas, keys, sigs, funder),
                  "RoundAlreadySettled", "RoundAlreadySettled(round=1, nextRound=2)")
    # round 2 signed for another contract (the registry's domain) is refused
    anchor_typed = td.anchor_typed_data(chain.chain_id, staking.address, 2, 2, ROOT)
    wrong = td.pack_signatures(keys, {o.address: td.sign_typed(o, anchor_typed) for o in orgs[:3]})
    expect_revert(lambda: staking.settle(2, participants, deltas, keys, wrong, funder),
                  "InvalidSignature")
