"""Block building, Fabric's header/data hashes and transaction parsing."""

from __future__ import annotations

import hashlib

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from fedledger.devnet.blocks import (
    MalformedTransactionError,
    block_data_hash,
    block_header_hash,
    der_header_bytes,
    new_block,
    parse_transaction,
    set_transactions_filter,
    transactions_filter,
)
from fedledger.fabric.errors import FabricError, LedgerError

from .envelopes import CHAINCODE, CHANNEL, CREATOR, chaincode_event, make_envelope, new_tx_id


def _header(number: int, prev: bytes = b"", data: bytes = b"") -> common_pb2.BlockHeader:
    return common_pb2.BlockHeader(number=number, previous_hash=prev, data_hash=data)


def test_header_hash_matches_hand_computed_der() -> None:
    header = _header(1, b"\x01\x02", b"\x03")
    # SEQUENCE(10) { INTEGER 1, OCTET STRING 01 02, OCTET STRING 03 }
    expected = bytes.fromhex("300a" "020101" "04020102" "040103")
    assert der_header_bytes(header) == expected
    assert block_header_hash(header) == hashlib.sha256(expected).digest()


@pytest.mark.parametrize(("number", "integer"), [
    (0, "020100"), (127, "02017f"), (128, "02020080"), (255, "020200ff"), (256, "02020100"),
    (2**32, "02050100000000"),
])
def test_integer_minimal_twos_complement(number: int, integer: str) -> None:
    der = der_header_bytes(_header(number))
    body = bytes.fromhex(integer) + b"\x04\x00\x04\x00"
    assert der == b"\x30" + bytes([len(body)]) + body


def test_long_form_lengths() -> None:
    prev = b"\xaa" * 200
    der = der_header_bytes(_header(5, prev, b"\xbb" * 32))
    # 3 (integer) + 3+200 (81 c8 ...) + 2+32 = 240 > 127: long-form sequence length.
    assert der[:3] == b"\x30\x81\xf0"
    assert der[6:9] == b"\x04\x81\xc8"


def test_new_block_data_hash_and_metadata_slots() -> None:
    envs = [b"one", b"two", b"three"]
    block = new_block(7, b"\x11" * 32, envs)
    assert block.header.number == 7
    assert block.header.data_hash == hashlib.sha256(b"onetwothree").digest()
    assert block_data_hash(envs) == block_data_hash(block.data) == block.header.data_hash
    assert len(block.metadata.metadata) == 5
    set_transactions_filter(block, [0, 11, 9])
    slot = common_pb2.BlockMetadataIndex.TRANSACTIONS_FILTER
    assert block.metadata.metadata[slot] == bytes([0, 11, 9])
    assert transactions_filter(common_pb2.Block.FromString(block.SerializeToString())) == [0, 11, 9]
    with pytest.raises(LedgerError):
        set_transactions_filter(block, [0])


def test_parse_transaction_walks_to_rwset() -> None:
    kv = kv_rwset_pb2.KVRWSet(writes=[kv_rwset_pb2.KVWrite(key="k", value=b"v")])
    rw = rwset_pb2.TxReadWriteSet(
        ns_rwset=[rwset_pb2.NsReadWriteSet(namespace=CHAINCODE, rwset=kv.SerializeToString())])
    tx_id = new_tx_id()
    event = chaincode_event("Created", b"{}", tx_id)
    env = make_envelope(tx_id, rw, event=event, endorsers=(b"e1", b"e2"))
    parsed = parse_transaction(env)
    assert parsed.tx_id == tx_id
    assert parsed.channel_id == CHANNEL
    assert parsed.header_type == common_pb2.HeaderType.ENDORSER_TRANSACTION
    assert parsed.creator == CREATOR
    assert parsed.signature == b"client-sig"
    assert parsed.payload == common_pb2.Envelope.FromString(env).payload
    assert parsed.chaincode_name == CHAINCODE
    assert parsed.rwset == rw
    assert parsed.namespaces[0].kv == kv
    assert parsed.endorsements == [(b"e1", b"sig:e1"), (b"e2", b"sig:e2")]
    assert parsed.chaincode_event == event
    assert parsed.response is not None and parsed.response.status == 200
    assert parsed.timestamp.seconds > 0
    assert parsed.proposal_response_payload
    assert parsed.proposal_hash == parsed.computed_proposal_hash != b""


@pytest.mark.parametrize("bad", [
    b"", b"\xff\xff\xff", common_pb2.Envelope(payload=b"\x0a\x03abc").SerializeToString(),
    common_pb2.Envelope().SerializeToString(),
])
def test_malformed_envelopes(bad: bytes) -> None:
    with pytest.raises(MalformedTransactionError) as info:
        parse_transaction(bad)
    assert isinstance(info.value, LedgerError) and isinstance(info.value, FabricError)
    assert info.value.reason


def test_malformed_inner_rwset_is_reported() -> None:
    rw = rwset_pb2.TxReadWriteSet(
        ns_rwset=[rwset_pb2.NsReadWriteSet(namespace="cc", rwset=b"\xff\x01")])
    with pytest.raises(MalformedTransactionError, match="namespace 'cc'"):
        parse_transaction(make_envelope(new_tx_id(), rw))
