"""The gateway client against the dev peer over real gRPC + TLS on loopback, with the
real chaincode running as a service: what a Fabric application relies on.

Refusals are asserted by what a Fabric 2.5 gateway answers for them: the gRPC status
code (``grpc_code``), the validation code, the chaincode's error code (the error's type)
and the step, never by message text. Blocks are cut with the deployment's settings
(250 ms, 100 messages, 512 KB)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from fedledger.devnet.ca import write_network_crypto
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.fabric import protos
from fedledger.fabric.errors import (
    ChaincodeForbiddenError,
    CommitError,
    CommitStatusError,
    EndorseError,
    EvaluateError,
    IdentityError,
    RecordConflictError,
    RecordNotFoundError,
    SubmitError,
)
from fedledger.fabric.gateway import Gateway
from fedledger.fabric.identity import load_signing_identity
from fedledger.fabric.protos import MalformedMessageError

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
    except RecordConflictError as exc:  # registered (another key) by an earlier module
        assert exc.step == "endorse"
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


def test_a_chaincode_refusal_at_endorse_is_aborted_with_the_peer_details(consortium1):
    with pytest.raises(ChaincodeForbiddenError) as info:
        consortium1.submit("RegisterOrg", org_record("Org2MSP"))  # Org1 posing as Org2
    error = info.value
    assert (error.step, error.grpc_code) == ("endorse", "ABORTED") and error.tx_id
    assert error.details and error.details[0].msp_id == "Org1MSP"


def test_a_chaincode_refusal_at_evaluate_is_unknown(consortium1):
    with pytest.raises(RecordNotFoundError) as info:
        consortium1.evaluate("GetOrg", "Org9MSP")
    assert (info.value.step, info.value.grpc_code) == ("evaluate", "UNKNOWN")
    assert info.value.details and info.value.details[0].msp_id == "Org1MSP"


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
    from fedledger.devnet.blocks import parse_transaction, transactions_filter

    codes = []
    for number in range(first.block_number, ledger.height):
        block = ledger.block(number)
        for envelope, code in zip(block.data.data, transactions_filter(block), strict=True):
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
    # A committed tx id is the endorser's refusal: ABORTED at endorse, FAILED_PRECONDITION
    # at evaluate, as on Fabric.
    with pytest.raises(EndorseError) as endorse:
        gateway._endorse(request)
    assert endorse.value.grpc_code == "ABORTED" and endorse.value.details
    with pytest.raises(EvaluateError) as evaluate:
        gateway._evaluate(gateway_pb2.EvaluateRequest(
            transaction_id=unsigned.tx_id, channel_id="org1-private", proposed_transaction=signed))
    assert evaluate.value.grpc_code == "FAILED_PRECONDITION"


def test_a_tampered_proposal_signature_is_rejected(private1):
    gateway = private1.network.gateway
    unsigned = protos.build_proposal(creator=gateway.creator, channel_id="org1-private",
                                     chaincode="fedledger", args=[b"private:ListDatasets"])
    signature = bytearray(gateway.identity.sign(unsigned.proposal_bytes))
    signature[-1] ^= 0x01
    signed = unsigned.signed(bytes(signature))
    with pytest.raises(EvaluateError) as evaluate:
        gateway._evaluate(gateway_pb2.EvaluateRequest(
            transaction_id=unsigned.tx_id, channel_id="org1-private", proposed_transaction=signed))
    assert evaluate.value.grpc_code == "FAILED_PRECONDITION"
    with pytest.raises(EndorseError) as endorse:
        gateway._endorse(gateway_pb2.EndorseRequest(
            transaction_id=unsigned.tx_id, channel_id="org1-private", proposed_transaction=signed))
    assert endorse.value.grpc_code == "ABORTED"


def test_a_tampered_envelope_signature_is_rejected_at_submit(private1):
    transaction = private1.endorse("RegisterDataset", dataset_record("ds-tampered"))
    transaction.envelope.signature = transaction.envelope.signature[:-1] + bytes(
        [transaction.envelope.signature[-1] ^ 1])
    with pytest.raises(SubmitError) as info:   # the orderer: FORBIDDEN, not retried
        transaction.submit()
    assert info.value.grpc_code == "ABORTED"
    with pytest.raises(RecordNotFoundError):
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
        assert info.value.grpc_code == "FAILED_PRECONDITION"
        with pytest.raises(CommitStatusError) as status:
            contract.network.gateway._commit_status("0" * 64, "org1-private")
        assert status.value.grpc_code == "PERMISSION_DENIED"


def test_an_org_cannot_use_another_orgs_private_channel(org2, private1):
    contract = org2.network("org1-private").contract("fedledger", "private")
    with pytest.raises(EvaluateError) as read:
        contract.evaluate("ListDatasets")
    assert read.value.grpc_code == "FAILED_PRECONDITION"
    with pytest.raises(EndorseError) as write:
        contract.submit("RegisterDataset", dataset_record("ds-from-org2"))
    assert write.value.grpc_code == "ABORTED" and write.value.details
    with pytest.raises(CommitStatusError) as status:
        org2._commit_status("0" * 64, "org1-private")
    assert status.value.grpc_code == "PERMISSION_DENIED"
    # An org's own envelope for that channel is refused by the orderer's Writers check.
    envelope = private1.endorse("RegisterDataset", dataset_record("ds-resigned"))
    envelope.envelope.signature = org2.identity.sign(envelope.envelope.payload)
    with pytest.raises(SubmitError) as submit:
        org2._submit(gateway_pb2.SubmitRequest(transaction_id=envelope.tx_id,
                                               channel_id="org1-private",
                                               prepared_transaction=envelope.envelope))
    assert submit.value.grpc_code == "ABORTED"


def test_unknown_channels_chaincodes_and_orgs(org1):
    unknown = org1.network("no-such-channel").contract("fedledger", "private")
    with pytest.raises(EvaluateError) as evaluate:   # this peer has not joined it
        unknown.evaluate("ListDatasets")
    assert evaluate.value.grpc_code == "UNAVAILABLE"
    with pytest.raises(EndorseError) as endorse:     # discovery finds no endorsers
        unknown.endorse("ListDatasets")
    assert endorse.value.grpc_code == "FAILED_PRECONDITION"
    with pytest.raises(CommitStatusError) as status:
        org1._commit_status("0" * 64, "no-such-channel")
    assert status.value.grpc_code == "PERMISSION_DENIED"
    missing = org1.network("org1-private").contract("no-such-chaincode")
    with pytest.raises(EvaluateError) as evaluate:
        missing.evaluate("Anything")
    assert evaluate.value.grpc_code == "FAILED_PRECONDITION"
    with pytest.raises(EndorseError) as endorse:
        org1.network("org1-private").contract("fedledger", "private").endorse(
            "ListDatasets", endorsing_orgs=["Org2MSP"])   # Org2 has no peer on the channel
    assert endorse.value.grpc_code == "UNAVAILABLE"


def test_a_request_that_does_not_unpack_is_an_invalid_argument(org1):
    with pytest.raises(EvaluateError) as evaluate:
        org1._evaluate(gateway_pb2.EvaluateRequest(transaction_id="x", channel_id="org1-private"))
    assert evaluate.value.grpc_code == "INVALID_ARGUMENT"
    with pytest.raises(SubmitError) as submit:   # no signature
        org1._submit(gateway_pb2.SubmitRequest(transaction_id="x", channel_id="org1-private"))
    assert submit.value.grpc_code == "INVALID_ARGUMENT"


def test_the_orderer_reads_only_the_headers_of_what_it_orders(private1):
    from fabric_protos.common import common_pb2

    gateway = private1.network.gateway
    transaction = private1.endorse("RegisterDataset", dataset_record("ds-garbled"))
    payload = common_pb2.Payload.FromString(transaction.envelope.payload)
    payload.data = b"\xff not a transaction"
    garbled = common_pb2.Envelope(payload=payload.SerializeToString())
    garbled.signature = gateway.identity.sign(garbled.payload)
    gateway._submit(gateway_pb2.SubmitRequest(transaction_id=transaction.tx_id,
                                              channel_id="org1-private",
                                              prepared_transaction=garbled))
    # Ordered as it is; the committer marks it.
    assert gateway._commit_status(transaction.tx_id, "org1-private").code_name == "BAD_PAYLOAD"
    headless = common_pb2.Envelope(payload=b"\xff\xff")
    headless.signature = gateway.identity.sign(headless.payload)
    with pytest.raises(SubmitError) as info:   # the orderer: BAD_REQUEST, not retried
        gateway._submit(gateway_pb2.SubmitRequest(transaction_id="x", channel_id="org1-private",
                                                  prepared_transaction=headless))
    assert info.value.grpc_code == "ABORTED"


def test_concurrent_submits_within_the_batch_timeout_land_in_one_block(private1):
    endorsed = [private1.endorse("RegisterDataset", dataset_record(f"ds-batch-{i}"))
                for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        submitted = list(pool.map(lambda t: t.submit(), endorsed))
    statuses = [s.status() for s in submitted]
    assert all(s.successful for s in statuses)
    assert len({s.block_number for s in statuses}) == 1


def test_two_hundred_concurrent_transactions_all_commit(private1):
    def register(i: int):  # noqa: ANN202 - gateway.Status
        return private1.submit_async("RegisterDataset", dataset_record(f"ds-load-{i}")).status()

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(register, range(200)))
    assert [s.code for s in statuses] == [Code.VALID] * 200
    # MaxMessageCount: no block holds more than 100 transactions.
    assert max(Counter(s.block_number for s in statuses).values()) <= 100
    ids = {d["dataset_id"] for d in json.loads(private1.evaluate("ListDatasets"))}
    assert {f"ds-load-{i}" for i in range(200)} <= ids


def dataset_with_columns(dataset_id: str, columns: int) -> str:
    """A dataset record whose envelope grows by ~210 bytes per column."""
    return json.dumps({"dataset_id": dataset_id, "name": dataset_id, "source": "test",
                       "num_samples": 1,
                       "columns": {f"c{j:03d}": "x" * 60 for j in range(columns)}})


def envelope_size(transaction) -> int:  # noqa: ANN001 - gateway.Transaction
    return len(transaction.envelope.payload) + len(transaction.envelope.signature)


def test_block_bytes_preferred_max_bytes_splits_and_absolute_max_bytes_refuses(tmp_path):
    small = dataclasses.replace(OrdererSettings.deployment(), preferred_max_bytes=8 * 1024,
                                absolute_max_bytes=16 * 1024)
    with EmbeddedNetwork(tmp_path, ["Org1"], orderer=small) as net, net.connect("Org1") as gw:
        contract = gw.network("org1-private").contract("fedledger", "private")
        contract.submit("Init")
        plain = [contract.endorse("RegisterDataset", dataset_with_columns(f"plain-{i}", 0))
                 for i in range(4)]
        large = contract.endorse("RegisterDataset", dataset_with_columns("large", 30))
        too_large = contract.endorse("RegisterDataset", dataset_with_columns("too-large", 80))
        assert 2 * envelope_size(plain[0]) <= small.preferred_max_bytes < 3 * envelope_size(
            plain[0])
        assert small.preferred_max_bytes < envelope_size(large) <= small.absolute_max_bytes
        assert envelope_size(too_large) > small.absolute_max_bytes

        # Three that together pass PreferredMaxBytes: the third starts the next block.
        # A larger one between two others is a block of its own.
        order = [plain[0], plain[1], plain[2], large, plain[3]]
        blocks = [t.submit() for t in order]   # in order, all within the batch timeout
        numbers = [s.status().block_number for s in blocks]
        first = numbers[0]
        assert numbers == [first, first, first + 1, first + 2, first + 3]

        with pytest.raises(SubmitError) as info:   # the orderer: BAD_REQUEST, not retried
            too_large.submit()
        assert info.value.grpc_code == "ABORTED"
        with pytest.raises(RecordNotFoundError):
            contract.evaluate("GetDataset", "too-large")


def _offline_signer(devnet, org: str = "Org1"):
    """The user's public identity and, apart from it, its key as a plain key object: what
    an HSM or an offline machine holds. It signs a SHA-256 digest (prehashed), low-S."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    from fedledger.fabric.identity import load_private_key, to_low_s

    crypto = devnet.network.crypto.org(org)
    user = next(u for u in crypto.users if u.name.startswith("User1"))
    key = load_private_key(next((user.msp_dir / "keystore").iterdir()))
    identity = load_signing_identity(user.msp_dir, crypto.msp_id).identity

    def sign(digest: bytes) -> bytes:
        return to_low_s(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))

    return identity, sign


def _offline_gateway(devnet, identity):
    endpoints = devnet.endpoints
    return Gateway.connect(endpoints.gateway, identity, tls_root_cert=endpoints.tls_ca_cert.read_bytes(),
                           server_name=endpoints.server_name)


def test_a_transaction_signed_offline_at_each_step_commits(devnet, private1):
    identity, sign = _offline_signer(devnet)
    with _offline_gateway(devnet, identity) as gateway:   # no key: it cannot sign anything
        contract = gateway.network("org1-private").contract("fedledger", "private")
        unsigned = contract.new_proposal("RegisterDataset", dataset_record("ds-offline"))
        assert unsigned.signature == b""
        assert unsigned.digest() == hashlib.sha256(
            gateway_pb2.ProposedTransaction.FromString(unsigned.bytes()).proposal.proposal_bytes).digest()
        with pytest.raises(IdentityError):
            unsigned.endorse()

        proposal = gateway.new_signed_proposal(unsigned.bytes(), sign(unsigned.digest()))
        assert proposal.tx_id == unsigned.tx_id and proposal.digest() == unsigned.digest()
        endorsed = proposal.endorse()
        assert endorsed.tx_id == unsigned.tx_id and endorsed.envelope.signature == b""
        with pytest.raises(IdentityError):
            endorsed.submit()
        transaction = gateway.new_signed_transaction(endorsed.bytes(), sign(endorsed.digest()))
        submitted = transaction.submit()
        commit = gateway.new_signed_commit(submitted.bytes(), sign(submitted.digest()))
        status = commit.committed()
        assert status.successful and status.tx_id == unsigned.tx_id

        query = contract.new_proposal("GetDataset", "ds-offline")
        signed_query = gateway.new_signed_proposal(query.bytes(), sign(query.digest()))
        assert json.loads(signed_query.evaluate())["dataset_id"] == "ds-offline"
    # The gateway's own identity sees the same committed record.
    assert json.loads(private1.evaluate("GetDataset", "ds-offline"))["dataset_id"] == "ds-offline"


def test_a_proposal_signed_offline_with_a_bad_signature_is_refused(devnet, private1):
    identity, sign = _offline_signer(devnet)
    _, other_org_sign = _offline_signer(devnet, "Org2")   # a valid signature, by another key
    with _offline_gateway(devnet, identity) as gateway:
        contract = gateway.network("org1-private").contract("fedledger", "private")
        unsigned = contract.new_proposal("RegisterDataset", dataset_record("ds-offline-bad"))
        wrong_key = gateway.new_signed_proposal(unsigned.bytes(), other_org_sign(unsigned.digest()))
        with pytest.raises(EndorseError) as endorse:
            wrong_key.endorse()
        assert endorse.value.grpc_code == "ABORTED"
        wrong_digest = gateway.new_signed_proposal(unsigned.bytes(), sign(hashlib.sha256(b"other").digest()))
        with pytest.raises(EvaluateError) as evaluate:
            wrong_digest.evaluate()
        assert evaluate.value.grpc_code == "FAILED_PRECONDITION"

        # A good proposal, but its transaction signed by the wrong key: the orderer refuses.
        endorsed = gateway.new_signed_proposal(unsigned.bytes(), sign(unsigned.digest())).endorse()
        transaction = gateway.new_signed_transaction(endorsed.bytes(), other_org_sign(endorsed.digest()))
        with pytest.raises(SubmitError) as submit:
            transaction.submit()
        assert submit.value.grpc_code == "ABORTED"
    with pytest.raises(RecordNotFoundError):
        private1.evaluate("GetDataset", "ds-offline-bad")


def test_new_signed_proposal_refuses_bytes_that_are_not_a_proposal(org1):
    with pytest.raises(MalformedMessageError):
        org1.new_signed_proposal(b"\xff\xff not a proposal", b"sig")
