"""The gateway client against the dev peer over real gRPC + TLS on loopback, with the
real chaincode running as a service: what a Fabric application relies on."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from fedledger.fabric import protos
from fedledger.fabric.devca import write_network_crypto
from fedledger.fabric.errors import CommitError, EndorseError, EvaluateError, SubmitError
from fedledger.fabric.gateway import Gateway
from fedledger.fabric.identity import load_signing_identity

from .conftest import dataset_record, org_record

Code = transaction_pb2.TxValidationCode


@pytest.fixture(scope="module")
def org1(devnet):
    with devnet.connect("Org1") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def org2(devnet):
    with devnet.connect("Org2") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def consortium1(org1):
    contract = org1.network("consortium").contract("fedledger", "consortium")
    try:
        contract.submit("RegisterOrg", org_record("Org1MSP"))
    except EndorseError as exc:  # already registered by an earlier module of the package
        assert "already registered" in str(exc)
    return contract


@pytest.fixture(scope="module")
def private1(org1):
    contract = org1.network("org1-private").contract("fedledger", "private")
    contract.submit("Init")
    return contract


def test_submit_then_evaluate_on_the_consortium_channel(consortium1):
    org = json.loads(consortium1.evaluate("GetOrg", "Org1MSP"))
    assert org["msp_id"] == "Org1MSP"
    assert "Org1MSP" in [o["msp_id"] for o in json.loads(consortium1.evaluate("ListOrgs"))]


def test_submit_then_evaluate_on_a_private_channel(private1):
    result = json.loads(private1.submit("RegisterDataset", dataset_record("ds-gateway")))
    assert result["dataset_id"] == "ds-gateway"
    assert json.loads(private1.evaluate("GetDataset", "ds-gateway"))["num_samples"] == 10


def test_chaincode_error_is_an_endorse_error_with_the_peer_details(consortium1):
    with pytest.raises(EndorseError) as info:
        consortium1.submit("RegisterOrg", org_record("Org2MSP"))  # Org1 posing as Org2
    error = info.value
    assert error.step == "endorse" and error.tx_id
    assert error.details and error.details[0].msp_id == "Org1MSP"
    assert "Org2MSP" in error.details[0].message


def test_endorsement_by_one_of_three_orgs_fails_majority(consortium1, devnet):
    contract = consortium1
    with pytest.raises(CommitError) as info:
        contract.submit("UpdateOrg", org_record("Org1MSP", name="one endorser only"),
                        endorsing_orgs=["Org1MSP"])
    assert info.value.code == "ENDORSEMENT_POLICY_FAILURE"
    assert json.loads(contract.evaluate("GetOrg", "Org1MSP"))["name"] != "one endorser only"


def test_of_two_conflicting_writes_the_second_gets_mvcc_read_conflict(consortium1):
    # Both read Org1's record at the same version before either commits.
    first = consortium1.endorse("UpdateOrg", org_record("Org1MSP", name="first writer"))
    second = consortium1.endorse("UpdateOrg", org_record("Org1MSP", name="second writer"))
    assert first.submit().status().code == Code.VALID
    status = second.submit().status()
    assert status.code_name == "MVCC_READ_CONFLICT"
    assert json.loads(consortium1.evaluate("GetOrg", "Org1MSP"))["name"] == "first writer"


def test_a_duplicate_transaction_id_is_rejected(private1, devnet):
    transaction = private1.endorse("RegisterDataset", dataset_record("ds-dup"))
    first = transaction.submit().status()
    assert first.successful
    # The same envelope again is ordered, but the committer marks it DUPLICATE_TXID.
    transaction.submit()
    ledger = devnet.network.peer.channels["org1-private"].ledger
    private1.submit("RegisterDataset", dataset_record("ds-after-dup"))  # a later block
    from fedledger.fabric.devpeer.blocks import parse_transaction, transactions_filter

    codes = []
    for number in range(first.block_number, ledger.height):
        block = ledger.block(number)
        for envelope, code in zip(block.data.data, transactions_filter(block)):
            if parse_transaction(envelope).tx_id == transaction.tx_id:
                codes.append(code)
    assert codes == [Code.VALID, Code.DUPLICATE_TXID]
    # And the endorser refuses to simulate a proposal whose tx id is already committed.
    gateway = private1.network.gateway
    unsigned = protos.build_proposal(creator=gateway.creator, channel_id="org1-private",
                                     chaincode="fedledger", args=[b"private:ListDatasets"],
                                     nonce=b"n" * 24)
    signed = unsigned.signed(gateway.identity.sign(unsigned.proposal_bytes))
    request = gateway_pb2.EndorseRequest(transaction_id=unsigned.tx_id, channel_id="org1-private",
                                         proposed_transaction=signed)
    envelope = gateway._endorse(request).prepared_transaction
    envelope.signature = gateway.identity.sign(envelope.payload)
    gateway._submit(gateway_pb2.SubmitRequest(transaction_id=unsigned.tx_id,
                                              channel_id="org1-private", prepared_transaction=envelope))
    assert gateway._commit_status(unsigned.tx_id, "org1-private").successful
    with pytest.raises(EndorseError, match="duplicate transaction"):
        gateway._endorse(request)


def test_a_tampered_proposal_signature_is_rejected(private1):
    gateway = private1.network.gateway
    unsigned = protos.build_proposal(creator=gateway.creator, channel_id="org1-private",
                                     chaincode="fedledger", args=[b"private:ListDatasets"])
    signature = bytearray(gateway.identity.sign(unsigned.proposal_bytes))
    signature[-1] ^= 0x01
    request = gateway_pb2.EvaluateRequest(transaction_id=unsigned.tx_id, channel_id="org1-private",
                                          proposed_transaction=unsigned.signed(bytes(signature)))
    with pytest.raises(EvaluateError) as info:
        gateway._evaluate(request)
    assert "PERMISSION_DENIED" in str(info.value)


def test_a_tampered_envelope_signature_is_rejected_at_submit(private1):
    transaction = private1.endorse("RegisterDataset", dataset_record("ds-tampered"))
    transaction.envelope.signature = transaction.envelope.signature[:-1] + bytes(
        [transaction.envelope.signature[-1] ^ 1])
    with pytest.raises(SubmitError):
        transaction.submit()
    with pytest.raises(EvaluateError):
        private1.evaluate("GetDataset", "ds-tampered")


def test_a_certificate_from_an_unknown_ca_is_rejected(devnet, tmp_path):
    foreign = write_network_crypto(tmp_path / "foreign", ["Org1"])
    org = foreign.org("Org1")
    impostor = load_signing_identity(org.users[0].msp_dir, "Org1MSP")  # right MSP id, wrong CA
    endpoints = devnet.endpoints
    with Gateway.connect(endpoints.gateway, impostor, tls_root_cert=endpoints.tls_ca_cert.read_bytes(),
                         server_name=endpoints.server_name) as gateway:
        contract = gateway.network("org1-private").contract("fedledger", "private")
        with pytest.raises(EvaluateError) as info:
            contract.evaluate("ListDatasets")
    assert "not issued by a trusted CA" in str(info.value) or "trusted" in str(info.value)


def test_an_org_cannot_use_another_orgs_private_channel(org2, private1):
    contract = org2.network("org1-private").contract("fedledger", "private")
    with pytest.raises(EvaluateError) as read:
        contract.evaluate("ListDatasets")
    assert "Org2MSP is not a member of channel 'org1-private'" in str(read.value)
    with pytest.raises(EndorseError) as write:
        contract.submit("RegisterDataset", dataset_record("ds-from-org2"))
    assert "not a member" in str(write.value)


def test_two_hundred_concurrent_transactions_all_commit(private1):
    def register(i: int) -> int:
        return private1.submit_async("RegisterDataset", dataset_record(f"ds-load-{i}")).status().code

    with ThreadPoolExecutor(max_workers=32) as pool:
        codes = list(pool.map(register, range(200)))
    assert codes == [Code.VALID] * 200
    ids = {d["dataset_id"] for d in json.loads(private1.evaluate("ListDatasets"))}
    assert {f"ds-load-{i}" for i in range(200)} <= ids
