"""Commit-time validation with real identities and signatures: endorsement policies
(chaincode-level MAJORITY and key-level state-based policies), forged endorsements,
tampered creator signatures and endorsements replayed onto another proposal."""

from __future__ import annotations

from pathlib import Path

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.peer import proposal_response_pb2, transaction_pb2

from fedledger.devnet.ca import write_network_crypto
from fedledger.devnet.channel import ChannelDefinition, ChannelPolicies
from fedledger.devnet.policy import parse_policy, signature_policy_envelope
from fedledger.devnet.validator import VALIDATION_PARAMETER, Validator
from fedledger.fabric import protos
from fedledger.fabric.identity import load_signing_identity
from fedledger.fabric.msp import MSP, MSPManager

from .envelopes import joined_ledger

Code = transaction_pb2.TxValidationCode
NS = "fedledger"


@pytest.fixture(scope="module")
def crypto(tmp_path_factory):
    return write_network_crypto(tmp_path_factory.mktemp("crypto"), ["Org1", "Org2"])


@pytest.fixture()
def setup(crypto, tmp_path: Path):
    msps = MSPManager([MSP.from_dir(o.msp_dir, o.msp_id) for o in crypto.all_orgs()])
    channel = ChannelPolicies.of(ChannelDefinition(name="consortium",
                                                   members=("Org1MSP", "Org2MSP")))
    ledger = joined_ledger(tmp_path / "consortium.sqlite", "consortium")
    validator = Validator(msps, channel, lambda ns, key: ledger.get_state_metadata(ns, key)
                          .get(VALIDATION_PARAMETER))
    peers = {o.msp_id: load_signing_identity(o.peer.msp_dir, o.msp_id) for o in
             (crypto.org("Org1"), crypto.org("Org2"))}
    client = load_signing_identity(crypto.org("Org1").users[0].msp_dir, "Org1MSP")
    yield ledger, validator, peers, client
    ledger.close()


def transaction(ledger, client, endorsers, write, *, metadata: bytes | None = None) -> bytes:
    """A signed endorser transaction writing ``write`` (key -> value)."""
    unsigned = protos.build_proposal(creator=client.identity.serialize(), channel_id="consortium",
                                     chaincode=NS, args=[b"consortium:Anything"])
    proposal = protos.parse_signed_proposal(unsigned.signed(client.sign(unsigned.proposal_bytes)))
    simulator = ledger.new_simulator()
    for key, value in write.items():
        simulator.put_state(NS, key, value)
        if metadata is not None:
            simulator.set_state_metadata(NS, key, VALIDATION_PARAMETER, metadata)
    payload = protos.build_proposal_response_payload(
        proposal=proposal, results=simulator.results().public_rwset.SerializeToString(),
        event=None, response=proposal_response_pb2.Response(status=200))
    endorsements = [protos.endorse(payload, p.identity.serialize(), p.sign) for p in endorsers]
    tx_payload = protos.build_transaction_payload(proposal, payload, endorsements)
    return common_pb2.Envelope(payload=tx_payload, signature=client.sign(tx_payload)).SerializeToString()


def test_majority_of_two_orgs_needs_both_endorsements(setup):
    ledger, validator, peers, client = setup
    one = transaction(ledger, client, [peers["Org1MSP"]], {"k": b"1"})
    both = transaction(ledger, client, [peers["Org1MSP"], peers["Org2MSP"]], {"k": b"2"})
    same_twice = transaction(ledger, client, [peers["Org1MSP"], peers["Org1MSP"]], {"k": b"3"})
    assert validator.validate(one).code == Code.ENDORSEMENT_POLICY_FAILURE
    assert validator.validate(same_twice).code == Code.ENDORSEMENT_POLICY_FAILURE
    assert validator.validate(both).code == Code.VALID


def test_a_key_level_policy_replaces_the_chaincode_policy_for_its_key(setup):
    ledger, validator, peers, client = setup
    org2_only = signature_policy_envelope(parse_policy("OR('Org2MSP.peer')")).SerializeToString()
    setup_tx = transaction(ledger, client, list(peers.values()), {"guarded": b"v0"},
                           metadata=org2_only)
    result = validator.validate(setup_tx)
    ledger.commit_block([setup_tx], [result.code], parsed=[result.parsed])
    assert ledger.get_state_metadata(NS, "guarded")[VALIDATION_PARAMETER] == org2_only

    by_org2 = transaction(ledger, client, [peers["Org2MSP"]], {"guarded": b"v1"})
    by_org1 = transaction(ledger, client, [peers["Org1MSP"]], {"guarded": b"v1"})
    # A key without its own policy in the same tx brings the chaincode's MAJORITY back.
    mixed = transaction(ledger, client, [peers["Org2MSP"]], {"guarded": b"v1", "plain": b"x"})
    assert validator.validate(by_org2).code == Code.VALID
    failed = validator.validate(by_org1)
    assert failed.code == Code.ENDORSEMENT_POLICY_FAILURE and "guarded" in failed.reason
    assert validator.validate(mixed).code == Code.ENDORSEMENT_POLICY_FAILURE


def test_forged_endorsements_do_not_count(setup):
    ledger, validator, peers, client = setup
    envelope = common_pb2.Envelope.FromString(
        transaction(ledger, client, list(peers.values()), {"k": b"1"}))
    payload = common_pb2.Payload.FromString(envelope.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    action = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    forged = bytearray(action.action.endorsements[1].signature)
    forged[-3] ^= 0x55
    action.action.endorsements[1].signature = bytes(forged)
    tx.actions[0].payload = action.SerializeToString()
    payload.data = tx.SerializeToString()
    resigned = payload.SerializeToString()
    envelope = common_pb2.Envelope(payload=resigned, signature=client.sign(resigned))
    assert validator.validate(envelope.SerializeToString()).code == Code.ENDORSEMENT_POLICY_FAILURE


def test_a_tampered_creator_signature_or_payload_is_refused(setup):
    ledger, validator, peers, client = setup
    envelope = common_pb2.Envelope.FromString(
        transaction(ledger, client, list(peers.values()), {"k": b"1"}))
    bad_sig = common_pb2.Envelope(payload=envelope.payload,
                                  signature=envelope.signature[:-1] + bytes([envelope.signature[-1] ^ 1]))
    assert validator.validate(bad_sig.SerializeToString()).code == Code.BAD_CREATOR_SIGNATURE
    assert validator.validate(b"\x0a\x03abc").code == Code.BAD_PAYLOAD


def test_endorsements_moved_to_another_proposal_are_refused(setup):
    ledger, validator, peers, client = setup
    honest = common_pb2.Envelope.FromString(
        transaction(ledger, client, list(peers.values()), {"k": b"1"}))
    other = common_pb2.Envelope.FromString(
        transaction(ledger, client, list(peers.values()), {"k": b"2"}))
    # Keep the header and proposal of one tx, graft the endorsed action of the other.
    payload = common_pb2.Payload.FromString(honest.payload)
    grafted_tx = transaction_pb2.Transaction.FromString(common_pb2.Payload.FromString(other.payload).data)
    grafted_tx.actions[0].header = transaction_pb2.Transaction.FromString(payload.data).actions[0].header
    payload.data = grafted_tx.SerializeToString()
    data = payload.SerializeToString()
    envelope = common_pb2.Envelope(payload=data, signature=client.sign(data))
    assert validator.validate(envelope.SerializeToString()).code == Code.BAD_RESPONSE_PAYLOAD
