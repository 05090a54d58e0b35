"""Fields added to ledger records after records of their kind were stored: a record
without one keeps the exact bytes it had, so anchors and proofs over it keep verifying."""

from __future__ import annotations

from fedledger.protocol.leaves import consortium_leaf, leaf_bytes
from fedledger.protocol.records import Attestation, RoundFinality

A, S = "a" * 64, "b" * 64


def test_a_record_without_a_server_state_keeps_its_bytes() -> None:
    old = Attestation(round_id=3, org="Org1MSP", aggregate_digest=A)
    assert leaf_bytes(consortium_leaf("attestation", 3, old)) == (
        b'{"kind":"attestation","record":{"aggregate_digest":"' + A.encode()
        + b'","org":"Org1MSP","round_id":3},"round_id":3}')
    # and what the ledger stored before the field existed parses back to the same record
    assert Attestation.model_validate_json(old.model_dump_json()) == old


def test_a_server_state_is_part_of_the_record_when_present() -> None:
    new = Attestation(round_id=3, org="Org1MSP", aggregate_digest=A, server_state_digest=S)
    assert new.model_dump(mode="json")["server_state_digest"] == S
    assert Attestation.model_validate_json(new.model_dump_json()) == new
    final = RoundFinality(round_id=3, aggregate_digest=A, attesters=["Org1MSP"])
    assert "server_state_digest" not in final.model_dump(mode="json")
