"""A round's Staking outcome from ledger records, worked out by hand."""

from __future__ import annotations

from fedledger.incentives.outcome import round_outcome, verdict_of
from fedledger.protocol.records import Round, Submission, Vote

ADDRESSES = {"Org1MSP": "0x" + "11" * 20, "Org2MSP": "0x" + "22" * 20,
             "Org3MSP": "0x" + "33" * 20, "Org4MSP": "0x" + "44" * 20}
ROUND = Round(round_id=7, config_digest="c" * 64, opened_by="Org1MSP",
              deadline="2026-01-01T00:00:00Z", quorum=1, shard=0, status="final",
              committee=["Org1MSP", "Org2MSP", "Org3MSP", "Org4MSP"],
              validators=["Org1MSP", "Org2MSP", "Org4MSP"],
              vote_deadline="2026-01-01T00:05:00Z", reward_wei=10, slash_wei=100)
SUBMISSIONS = [Submission(round_id=7, org=o, shard=0, update_hash="a" * 64, num_samples=10,
                          update_spec_digest="b" * 64, signature="00")
               for o in ("Org1MSP", "Org2MSP", "Org3MSP")]


def vote(validator: str, target: str, accept: bool) -> Vote:
    return Vote(round_id=7, validator=validator, target_org=target, accept=accept, score=0.0)


def test_outcome_rewards_and_slashes_by_the_verdict():
    votes = [vote("Org1MSP", "Org2MSP", True), vote("Org1MSP", "Org3MSP", False),
             vote("Org2MSP", "Org1MSP", True), vote("Org2MSP", "Org3MSP", False),
             vote("Org4MSP", "Org3MSP", True),   # against the verdict on Org3
             vote("Org3MSP", "Org1MSP", False)]  # not a validator: ignored
    outcome = round_outcome(ROUND, SUBMISSIONS, votes, ADDRESSES)
    assert outcome.verdict == {"Org1MSP": True, "Org2MSP": True, "Org3MSP": False}
    # Org1: proposer +10, validator agreeing +10; Org2 the same; Org3 proposer -100;
    # Org4 validator disagreeing -100
    assert outcome.entries() == {ADDRESSES["Org1MSP"]: 20, ADDRESSES["Org2MSP"]: 20,
                                 ADDRESSES["Org3MSP"]: -100, ADDRESSES["Org4MSP"]: -100}
    assert list(outcome.orgs) == sorted(outcome.orgs)


def test_no_committee_moves_nothing():
    plain = ROUND.model_copy(update={"validators": [], "vote_deadline": None})
    assert round_outcome(plain, SUBMISSIONS, [], ADDRESSES).entries() == {}
    assert verdict_of(plain, SUBMISSIONS, []) == {s.org: True for s in SUBMISSIONS}


def test_failed_round_slashes_but_pays_no_reward():
    """A round that never became final: the attacker that sank it is still slashed, and
    so is a validator that voted for it; nobody is paid for a round without a model."""
    failed = ROUND.model_copy(update={"status": "closed"})
    votes = [vote("Org1MSP", "Org3MSP", False), vote("Org2MSP", "Org3MSP", False),
             vote("Org4MSP", "Org3MSP", True), vote("Org1MSP", "Org2MSP", True)]
    outcome = round_outcome(failed, SUBMISSIONS, votes, ADDRESSES)
    assert outcome.verdict == {"Org1MSP": True, "Org2MSP": True, "Org3MSP": False}
    assert outcome.entries() == {ADDRESSES["Org3MSP"]: -100, ADDRESSES["Org4MSP"]: -100}
    # failed before any vote: nobody rejected, nothing moves
    assert round_outcome(failed, SUBMISSIONS, [], ADDRESSES).entries() == {}
