"""Building and reading Fabric blocks (``common.Block``) and endorser transactions.

The hashes are Fabric's, byte for byte, so a block written here chains like one cut by a
Fabric orderer:

* header hash: sha256 of the ASN.1 DER ``SEQUENCE{INTEGER number, OCTET STRING
  previous_hash, OCTET STRING data_hash}`` (``protoutil.BlockHeaderBytes``);
* data hash: sha256 of the block's envelopes concatenated (``protoutil.BlockDataHash``).

``parse_envelope_header`` reads only what an orderer reads of an envelope (its channel
and signature headers); ``parse_transaction`` walks an endorser transaction envelope down
to its read-write set. Anything that does not parse is a
:class:`MalformedTransactionError`, which the validator maps to ``BAD_PAYLOAD``.
Block 0 of a channel is its config block (``is_config_block``; built by
:mod:`fedledger.devnet.configblock`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TypeVar

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from fedledger.fabric.errors import LedgerError

__all__ = [
    "METADATA_SLOTS", "EnvelopeHeader", "MalformedTransactionError", "NamespaceRWSet",
    "ParsedTransaction", "block_data_hash", "block_header_hash", "der_header_bytes",
    "is_config_block", "new_block", "parse_envelope_header", "parse_transaction",
    "set_transactions_filter", "transactions_filter",
]

_M = TypeVar("_M", bound=Message)

# Fabric always allocates every metadata slot, even the unused ones (protoutil.NewBlock).
METADATA_SLOTS = len(common_pb2.BlockMetadataIndex.keys())


class MalformedTransactionError(LedgerError):
    """An envelope does not decode to a well-formed transaction; ``reason`` says where."""

    def __init__(self, reason: str, *, tx_id: str | None = None) -> None:
        super().__init__(f"malformed transaction: {reason}", tx_id=tx_id, step="validate")
        self.reason = reason


# -- ASN.1 DER, just the three types a block header needs -------------------------------

def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_integer(value: int) -> bytes:
    # Minimal two's complement: one extra bit for the sign, so 128 needs two bytes (00 80).
    magnitude = value if value >= 0 else ~value
    size = magnitude.bit_length() // 8 + 1
    body = value.to_bytes(size, "big", signed=True)
    return b"\x02" + _der_length(len(body)) + body


def _der_octet_string(value: bytes) -> bytes:
    return b"\x04" + _der_length(len(value)) + value


def _der_sequence(*items: bytes) -> bytes:
    body = b"".join(items)
    return b"\x30" + _der_length(len(body)) + body


def der_header_bytes(header: common_pb2.BlockHeader) -> bytes:
    """The DER encoding Fabric hashes for a block header (``protoutil.BlockHeaderBytes``)."""
    return _der_sequence(_der_integer(header.number), _der_octet_string(header.previous_hash),
                         _der_octet_string(header.data_hash))


def block_header_hash(header: common_pb2.BlockHeader) -> bytes:
    """sha256 of the header's DER encoding: the value the next block's previous_hash holds."""
    return hashlib.sha256(der_header_bytes(header)).digest()


def block_data_hash(data: common_pb2.BlockData | Sequence[bytes]) -> bytes:
    """sha256 of the concatenated data entries (envelopes)."""
    entries = data.data if isinstance(data, common_pb2.BlockData) else data
    h = hashlib.sha256()
    for entry in entries:
        h.update(entry)
    return h.digest()


# -- blocks ------------------------------------------------------------------------------

def new_block(number: int, previous_hash: bytes, envelopes: Sequence[bytes]) -> common_pb2.Block:
    """A block holding ``envelopes`` with its data hash set and every metadata slot empty."""
    block = common_pb2.Block()
    block.header.number = number
    block.header.previous_hash = previous_hash
    block.data.data.extend(envelopes)
    block.header.data_hash = block_data_hash(block.data)
    block.metadata.metadata.extend([b""] * METADATA_SLOTS)
    return block


def set_transactions_filter(block: common_pb2.Block, codes: Sequence[int]) -> None:
    """Store one TxValidationCode byte per envelope, as Fabric's committer does."""
    if len(codes) != len(block.data.data):
        raise LedgerError(f"{len(codes)} validation codes for {len(block.data.data)} transactions",
                          step="commit")
    while len(block.metadata.metadata) < METADATA_SLOTS:
        block.metadata.metadata.append(b"")
    block.metadata.metadata[common_pb2.BlockMetadataIndex.TRANSACTIONS_FILTER] = bytes(codes)


def transactions_filter(block: common_pb2.Block) -> list[int]:
    """The validation codes of a committed block (empty list if not set)."""
    index = common_pb2.BlockMetadataIndex.TRANSACTIONS_FILTER
    if len(block.metadata.metadata) <= index:
        return []
    return list(block.metadata.metadata[index])


# -- transactions ------------------------------------------------------------------------

@dataclass(frozen=True)
class NamespaceRWSet:
    """One namespace of a read-write set, decoded (the wire form nests serialized bytes)."""

    namespace: str
    kv: kv_rwset_pb2.KVRWSet
    collections: tuple[tuple[str, kv_rwset_pb2.HashedRWSet], ...]


@dataclass(frozen=True)
class EnvelopeHeader:
    """What an orderer reads of an envelope before ordering it: the headers, and the
    bytes its creator signed. ``size`` is Fabric's measure of an envelope
    (``len(payload) + len(signature)``), the one block cutting and ``AbsoluteMaxBytes``
    apply to."""

    tx_id: str
    channel_id: str
    header_type: int
    timestamp: Timestamp
    creator: bytes
    nonce: bytes
    signature: bytes
    payload: bytes

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.signature)


@dataclass(frozen=True)
class ParsedTransaction(EnvelopeHeader):
    """What the validator and the ledger need from one envelope.

    ``payload`` is the envelope's payload bytes (what ``signature`` signs);
    ``endorsements`` are ``(endorser, signature)`` pairs, each signature over
    ``proposal_response_payload ‖ endorser``. For a transaction that is not an endorser
    transaction only the header fields (those of :class:`EnvelopeHeader`) are set.
    """

    chaincode_name: str = ""
    rwset: rwset_pb2.TxReadWriteSet | None = None
    namespaces: tuple[NamespaceRWSet, ...] = ()
    proposal_response_payload: bytes = b""
    proposal_hash: bytes = b""
    # sha256(channel header ‖ signature header ‖ proposal payload as carried in the tx,
    # i.e. without the transient map): equals proposal_hash when the endorsements were
    # made for this very proposal.
    computed_proposal_hash: bytes = b""
    endorsements: list[tuple[bytes, bytes]] = field(default_factory=list)
    chaincode_event: bytes = b""
    response: proposal_response_pb2.Response | None = None


def _parse(message_type: type[_M], data: bytes, what: str, tx_id: str | None = None) -> _M:
    msg = message_type()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, TypeError) as exc:
        raise MalformedTransactionError(f"{what} does not decode: {exc}", tx_id=tx_id) from exc
    return msg


def _envelope_header(envelope_bytes: bytes
                     ) -> tuple[EnvelopeHeader, common_pb2.Payload, common_pb2.ChannelHeader]:
    if not envelope_bytes:
        raise MalformedTransactionError("empty envelope")
    env = _parse(common_pb2.Envelope, envelope_bytes, "envelope")
    if not env.payload:
        raise MalformedTransactionError("envelope has no payload")
    payload = _parse(common_pb2.Payload, env.payload, "payload")
    if not payload.HasField("header") or not payload.header.channel_header:
        raise MalformedTransactionError("payload has no channel header")
    chdr = _parse(common_pb2.ChannelHeader, payload.header.channel_header, "channel header")
    shdr = _parse(common_pb2.SignatureHeader, payload.header.signature_header, "signature header",
                  chdr.tx_id or None)
    header = EnvelopeHeader(tx_id=chdr.tx_id, channel_id=chdr.channel_id, header_type=chdr.type,
                            timestamp=chdr.timestamp, creator=shdr.creator, nonce=shdr.nonce,
                            signature=env.signature, payload=env.payload)
    return header, payload, chdr


def parse_envelope_header(envelope_bytes: bytes) -> EnvelopeHeader:
    """The headers of an envelope, without looking at what it carries;
    ``MalformedTransactionError`` if they do not decode."""
    return _envelope_header(envelope_bytes)[0]


def is_config_block(block: common_pb2.Block, channel_id: str | None = None) -> bool:
    """Whether ``block`` is a config block (one envelope, a ``CONFIG`` transaction) of
    ``channel_id`` (any channel when None)."""
    if len(block.data.data) != 1:
        return False
    try:
        header = parse_envelope_header(block.data.data[0])
    except MalformedTransactionError:
        return False
    return (header.header_type == common_pb2.HeaderType.CONFIG
            and (channel_id is None or header.channel_id == channel_id))


def parse_transaction(envelope_bytes: bytes) -> ParsedTransaction:
    """Decode an envelope down to its read-write set; ``MalformedTransactionError`` if it
    is not a well-formed (endorser) transaction."""
    header, payload, chdr = _envelope_header(envelope_bytes)
    tx_id = chdr.tx_id or None
    base = {f.name: getattr(header, f.name) for f in fields(EnvelopeHeader)}
    if chdr.type != common_pb2.HeaderType.ENDORSER_TRANSACTION:
        return ParsedTransaction(**base)
    if not chdr.tx_id:
        raise MalformedTransactionError("endorser transaction without a tx id")

    ext = _parse(proposal_pb2.ChaincodeHeaderExtension, chdr.extension,
                 "chaincode header extension", tx_id)
    tx = _parse(transaction_pb2.Transaction, payload.data, "transaction", tx_id)
    if len(tx.actions) != 1:
        # Fabric's validator accepts exactly one action per endorser transaction.
        raise MalformedTransactionError(f"{len(tx.actions)} transaction actions, expected 1",
                                        tx_id=tx_id)
    cap = _parse(transaction_pb2.ChaincodeActionPayload, tx.actions[0].payload,
                 "chaincode action payload", tx_id)
    if not cap.HasField("action") or not cap.action.proposal_response_payload:
        raise MalformedTransactionError("no endorsed action", tx_id=tx_id)
    prp_bytes = cap.action.proposal_response_payload
    prp = _parse(proposal_response_pb2.ProposalResponsePayload, prp_bytes,
                 "proposal response payload", tx_id)
    action = _parse(proposal_pb2.ChaincodeAction, prp.extension, "chaincode action", tx_id)
    rwset = _parse(rwset_pb2.TxReadWriteSet, action.results, "read-write set", tx_id)
    # Namespaces hold serialized KVRWSets; decode them now so a bad one is BAD_PAYLOAD here
    # rather than a crash at commit.
    namespaces = tuple(
        NamespaceRWSet(
            namespace=ns.namespace,
            kv=_parse(kv_rwset_pb2.KVRWSet, ns.rwset, f"rwset of namespace {ns.namespace!r}",
                      tx_id),
            collections=tuple(
                (coll.collection_name,
                 _parse(kv_rwset_pb2.HashedRWSet, coll.hashed_rwset,
                        f"hashed rwset of {ns.namespace}/{coll.collection_name}", tx_id))
                for coll in ns.collection_hashed_rwset),
        )
        for ns in rwset.ns_rwset)
    return ParsedTransaction(
        **base,
        chaincode_name=ext.chaincode_id.name,
        rwset=rwset,
        namespaces=namespaces,
        proposal_response_payload=prp_bytes,
        proposal_hash=prp.proposal_hash,
        computed_proposal_hash=hashlib.sha256(
            payload.header.channel_header + payload.header.signature_header
            + cap.chaincode_proposal_payload).digest(),
        endorsements=[(e.endorser, e.signature) for e in cap.action.endorsements],
        chaincode_event=action.events,
        response=action.response,
    )
