"""Test helper: endorser transaction envelopes built with the real Fabric protos.

Signatures are placeholders: the ledger does not check them (the validator's precheck
does), so these envelopes exercise only the ledger's own rules. ``config_block`` is the
least a ledger accepts as block 0 (one CONFIG transaction); the dev peer's real config
blocks are tested in ``test_configblock.py``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

CHANNEL = "mychannel"
CHAINCODE = "fedledger"
CREATOR = identities_pb2.SerializedIdentity(
    mspid="Org1MSP", id_bytes=b"-----CERT-----").SerializeToString()


def config_block(channel_id: str = CHANNEL) -> common_pb2.Block:
    """Block 0 holding one CONFIG transaction with an empty config."""
    from fedledger.devnet.blocks import new_block

    nonce = os.urandom(24)
    chdr = common_pb2.ChannelHeader(type=common_pb2.HeaderType.CONFIG, channel_id=channel_id,
                                    tx_id=hashlib.sha256(nonce).hexdigest())
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=chdr.SerializeToString(),
            signature_header=common_pb2.SignatureHeader(nonce=nonce).SerializeToString()),
        data=configtx_pb2.ConfigEnvelope(config=configtx_pb2.Config()).SerializeToString())
    envelope = common_pb2.Envelope(payload=payload.SerializeToString())
    return new_block(0, b"", [envelope.SerializeToString()])


def joined_ledger(path: Path, channel_id: str = CHANNEL):  # noqa: ANN201 - Ledger
    """A new ledger at ``path`` holding ``config_block(channel_id)`` as block 0."""
    from fedledger.devnet.ledger import Ledger

    ledger = Ledger(path, channel_id)
    ledger.join(config_block(channel_id))
    return ledger


def new_tx_id() -> str:
    return hashlib.sha256(os.urandom(24) + CREATOR).hexdigest()


def make_envelope(tx_id: str, rwset: rwset_pb2.TxReadWriteSet, *, channel_id: str = CHANNEL,
                  chaincode: str = CHAINCODE, event: bytes = b"",
                  endorsers: tuple[bytes, ...] = (b"endorser-1",)) -> bytes:
    """A signed-looking ENDORSER_TRANSACTION envelope carrying ``rwset``."""
    chdr = common_pb2.ChannelHeader(
        type=common_pb2.HeaderType.ENDORSER_TRANSACTION, tx_id=tx_id, channel_id=channel_id,
        extension=proposal_pb2.ChaincodeHeaderExtension(
            chaincode_id={"name": chaincode}).SerializeToString())
    chdr.timestamp.GetCurrentTime()
    shdr = common_pb2.SignatureHeader(creator=CREATOR, nonce=b"n" * 24)
    action = proposal_pb2.ChaincodeAction(results=rwset.SerializeToString(), events=event,
                                          response={"status": 200, "payload": b"ok"})
    chdr_bytes, shdr_bytes = chdr.SerializeToString(), shdr.SerializeToString()
    proposal_payload = b"proposal payload of " + tx_id.encode()  # opaque to the ledger
    prp = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=hashlib.sha256(chdr_bytes + shdr_bytes + proposal_payload).digest(),
        extension=action.SerializeToString())
    prp_bytes = prp.SerializeToString()
    cap = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=proposal_payload,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=prp_bytes,
            endorsements=[proposal_response_pb2.Endorsement(endorser=e, signature=b"sig:" + e)
                          for e in endorsers]))
    tx = transaction_pb2.Transaction(actions=[transaction_pb2.TransactionAction(
        header=shdr_bytes, payload=cap.SerializeToString())])
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=chdr_bytes, signature_header=shdr_bytes),
        data=tx.SerializeToString())
    envelope = common_pb2.Envelope(payload=payload.SerializeToString(), signature=b"client-sig")
    return envelope.SerializeToString()


def chaincode_event(name: str, payload: bytes, tx_id: str) -> bytes:
    return chaincode_event_pb2.ChaincodeEvent(chaincode_id=CHAINCODE, tx_id=tx_id, event_name=name,
                                              payload=payload).SerializeToString()


def simulate(ledger, fn, *, msp: str | None = "Org1MSP",  # type: ignore[no-untyped-def]
             tx_id: str | None = None):
    """Run ``fn(sim)`` on a fresh simulator; returns (tx_id, envelope, private_writes)."""
    tx_id = tx_id or new_tx_id()
    sim = ledger.new_simulator(private_reader_msp=msp)
    fn(sim)
    res = sim.results()
    return tx_id, make_envelope(tx_id, res.public_rwset), res.private_writes
