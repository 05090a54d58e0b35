"""Transaction validation before commit, as a Fabric 2.5 committing peer does it.

Per transaction, in block order: well-formed payload (BAD_PAYLOAD), endorser
transaction on this channel (UNKNOWN_TX_TYPE, BAD_CHANNEL_HEADER), creator valid and a
channel member with a valid signature over the payload (BAD_CREATOR_SIGNATURE),
endorsements bound to this very proposal (BAD_RESPONSE_PAYLOAD), endorsement policy —
the chaincode's, or the key-level policy of every written key that has one
(ENDORSEMENT_POLICY_FAILURE). The ledger then adds DUPLICATE_TXID and the MVCC checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import transaction_pb2

from fedledger.devnet.blocks import MalformedTransactionError, ParsedTransaction, parse_transaction
from fedledger.devnet.channel import ChannelPolicies
from fedledger.devnet.policy import Policy, policy_from_envelope
from fedledger.fabric.errors import FabricError
from fedledger.fabric.msp import MSPManager, SignatureMemo, VerifiedIdentity

Code = transaction_pb2.TxValidationCode
VALIDATION_PARAMETER = "VALIDATION_PARAMETER"

# (namespace, key) -> serialized SignaturePolicyEnvelope of the key, or None
KeyPolicyLookup = Callable[[str, str], bytes | None]


@dataclass(frozen=True)
class ValidatedTransaction:
    code: int
    parsed: ParsedTransaction | None
    reason: str = ""


class Validator:
    """Validates the transactions of one channel against its MSPs and policies."""

    def __init__(self, msps: MSPManager, channel: ChannelPolicies,
                 key_policy: KeyPolicyLookup, signatures: SignatureMemo | None = None) -> None:
        self.msps = msps
        self.signatures = signatures or SignatureMemo()
        self.channel = channel
        self.key_policy = key_policy
        self._policy_cache: dict[bytes, Policy] = {}

    def validate_block(self, envelopes: Sequence[bytes]) -> list[ValidatedTransaction]:
        return [self.validate(envelope) for envelope in envelopes]

    def validate(self, envelope: bytes) -> ValidatedTransaction:
        try:
            parsed = parse_transaction(envelope)
        except MalformedTransactionError as exc:
            return ValidatedTransaction(Code.BAD_PAYLOAD, None, str(exc))
        if parsed.header_type != common_pb2.HeaderType.ENDORSER_TRANSACTION:  # no config txs here
            return ValidatedTransaction(Code.UNKNOWN_TX_TYPE, parsed, "not an endorser transaction")
        if parsed.channel_id != self.channel.definition.name:
            return ValidatedTransaction(Code.BAD_CHANNEL_HEADER, parsed,
                                        f"channel {parsed.channel_id!r} in a block of "
                                        f"{self.channel.definition.name!r}")
        try:
            creator = self.signatures.verify(self.msps, parsed.creator, parsed.payload,
                                             parsed.signature)
        except FabricError as exc:
            return ValidatedTransaction(Code.BAD_CREATOR_SIGNATURE, parsed, str(exc))
        if not self.channel.is_member(creator):
            return ValidatedTransaction(Code.BAD_CREATOR_SIGNATURE, parsed,
                                        f"{creator.msp_id} is not a member of the channel")
        if parsed.proposal_hash != parsed.computed_proposal_hash:
            return ValidatedTransaction(Code.BAD_RESPONSE_PAYLOAD, parsed,
                                        "endorsements are for another proposal")
        endorsers = self._endorsers(parsed)
        failed = self._policy_failure(parsed, endorsers)
        if failed:
            return ValidatedTransaction(Code.ENDORSEMENT_POLICY_FAILURE, parsed, failed)
        return ValidatedTransaction(Code.VALID, parsed)

    def _endorsers(self, parsed: ParsedTransaction) -> list[VerifiedIdentity]:
        """The identities whose endorsement signatures verify; a bad one simply does
        not count, as in Fabric's policy evaluation."""
        endorsers: list[VerifiedIdentity] = []
        seen: set[bytes] = set()
        for endorser, signature in parsed.endorsements:
            if endorser in seen:
                continue
            try:
                identity = self.signatures.verify(
                    self.msps, endorser, parsed.proposal_response_payload + endorser, signature)
            except FabricError:
                continue
            seen.add(endorser)
            endorsers.append(identity)
        return endorsers

    def _policy_failure(self, parsed: ParsedTransaction, endorsers: list[VerifiedIdentity]) -> str:
        chaincode_level_needed = True
        if parsed.rwset is not None:
            written = [(ns.namespace, key) for ns in parsed.rwset.ns_rwset
                       for key in _written_keys(ns.rwset)]
            key_policies = [(ns, key, self.key_policy(ns, key)) for ns, key in written]
            with_policy = [(ns, key, p) for ns, key, p in key_policies if p]
            # Keys with a key-level policy are governed by it instead of the chaincode's.
            chaincode_level_needed = not written or len(with_policy) < len(written)
            for ns, key, envelope in with_policy:
                if not self._key_policy(envelope).evaluate(endorsers):
                    return f"key-level endorsement policy of {ns}/{key!r} not satisfied"
        if chaincode_level_needed and not self.channel.endorsement.evaluate(endorsers):
            orgs = sorted({e.msp_id for e in endorsers})
            return (f"endorsement policy '{self.channel.definition.endorsement_policy}' not "
                    f"satisfied by endorsements of {orgs}")
        return ""

    def _key_policy(self, envelope: bytes) -> Policy:
        policy = self._policy_cache.get(envelope)
        if policy is None:
            policy = self._policy_cache[envelope] = policy_from_envelope(envelope)
        return policy


def _written_keys(rwset_bytes: bytes) -> list[str]:
    kv = kv_rwset_pb2.KVRWSet()
    kv.ParseFromString(rwset_bytes)
    keys = [w.key for w in kv.writes]
    keys += [m.key for m in kv.metadata_writes]
    return keys
