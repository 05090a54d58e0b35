"""Test helper: drive consortium rounds to final through the real chaincode."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def register_org(contract, msp_id: str, anchor_address: str) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    contract.submit("RegisterOrg", json.dumps({
        "msp_id": msp_id, "name": msp_id, "anchor_address": anchor_address.lower(),
        "attestation_key_pem": pem}))


def join(anchoring, orgs) -> dict:
    """Register every org on the consortium (with its anchor address) and initialise its
    private channel; returns msp id -> that org's consortium Contract."""
    consortium = {}
    for org in orgs:
        msp = f"{org}MSP"
        gateway = anchoring.gateways[msp]
        consortium[msp] = gateway.network("consortium").contract("fedledger", "consortium")
        register_org(consortium[msp], msp, anchoring.org_accounts[msp].address)
        gateway.network(f"{org.lower()}-private").contract("fedledger", "private").submit("Init")
    return consortium


def wait_final_rounds(outbox, count: int, timeout: float = 30) -> None:
    """Until the bridge's event follower has seen ``count`` final rounds."""
    deadline = time.time() + timeout
    while len(outbox.pending_rounds()) + sum(
            a.last_round - a.first_round + 1 for a in outbox.anchors()) < count:
        assert time.time() < deadline, "the event follower did not see the final rounds"
        time.sleep(0.05)


def final_round_seen(bridge, consortium: dict, round_id: int) -> None:
    """Finalize ``round_id`` on the ledger and wait until the running bridge saw it."""
    finalize_round(consortium, round_id)
    wait_final_rounds(bridge.outbox, round_id)


def finalize_round(contracts: dict, round_id: int, *, attesters: int | None = None) -> str:
    """Open, submit (every org), close and attest round ``round_id``; returns the
    aggregate digest. ``contracts`` maps msp id -> that org's consortium Contract."""
    orgs = sorted(contracts)
    opener = contracts[orgs[0]]
    deadline = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    opener.submit("OpenRound", json.dumps({
        "round_id": round_id, "config_digest": digest("config"), "deadline": deadline,
        "quorum": 1, "shard": 0, "committee": orgs}))
    for org in orgs:
        contracts[org].submit("SubmitUpdate", json.dumps({
            "round_id": round_id, "org": org, "shard": 0,
            "update_hash": digest(f"update {round_id} {org}"), "num_samples": 10,
            "update_spec_digest": digest("spec"), "signature": "ab" * 32}))
    opener.submit("CloseRound", str(round_id))
    aggregate = digest(f"aggregate {round_id}")
    attesting = orgs[: attesters or len(orgs) // 2 + 1]
    for org in attesting:
        contracts[org].submit("AttestAggregate", json.dumps({
            "round_id": round_id, "org": org, "aggregate_digest": aggregate}))
    if 2 * len(attesting) > len(orgs):
        opener.submit("FinalizeRound", json.dumps({
            "round_id": round_id, "aggregate_digest": aggregate, "attesters": attesting}))
    return aggregate
