"""The coordinator's REST API contract: request bodies (``XCreate`` / ``XRequest``) and the
response schemas (``XPublic``) of every route of :mod:`fedledger.coordinator.api`.

Pydantic only (no web framework, ledger client or ML imports), so the coordinator's
client (:mod:`fedledger.clients.coordinator`) shares these models. Responses keep the
JSON the routes have always sent; digests are named as the ledger records name them
(``aggregate_digest``, ``adapter_digest``, ``update_hash``). Free-form JSON columns
(round config, validation, timings, strategy params) stay objects.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Public(BaseModel):
    """A response: unknown fields are kept (a newer coordinator may send more)."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------- requests


class RoundCreate(_Body):
    deadline_s: int | None = Field(None, gt=0, description="seconds until the deadline")
    quorum: int | None = Field(None, ge=1, description="minimum ledger submissions")
    local_steps: int | None = Field(None, gt=0, description="override train.local_steps")
    shard: int | None = Field(None, ge=0, description="the shard-group to train (default: "
                              "the one with the shortest lineage)")


class DeclineCreate(_Body):
    reason: str = Field(min_length=1, max_length=1000, description="why the org will not submit")


class UnlearningCreate(_Body):
    """What an org tells the consortium about a deletion: no sample, no subject."""

    notice_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,128}$",
                           description="opaque id the org chose (no personal data)")
    first_steps: dict[Annotated[int, Field(ge=0, le=1023)], Annotated[int, Field(ge=1)]] = Field(
        max_length=1024,
        description="shard-group -> the first step of its lineage that used the data")


# ---------------------------------------------------------------------- responses


class HealthPublic(_Public):
    status: str
    service: str
    org: str


class BasePublic(_Public):
    """The adapter a round starts from (the previous step's final aggregate), the final
    round that produced it, and under a server optimizer the state its step starts from
    (None: the initial state)."""

    version_id: str | None
    adapter_hash: str
    round_id: int | None = None
    server_state_hash: str | None = None


class DeclinePublic(_Public):
    org: str
    reason: str


class SubmissionPublic(_Public):
    org: str
    update_hash: str
    num_samples: int | None
    on_ledger: bool


class RoundAggregatePublic(_Public):
    """The aggregate as a round's view shows it."""

    aggregate_digest: str
    included: list[str]
    strategy: str
    server_state_digest: str | None = None


class RoundLedgerPublic(_Public):
    open_tx: str | None
    close_tx: str | None
    model_tx: str | None


class RoundPublic(_Public):
    round_id: int
    status: str
    deadline: str
    quorum: int
    committee: list[str]
    config: dict[str, Any]
    config_digest: str
    shard: int
    step: int
    replay_of: int | None
    base: BasePublic | None
    declines: list[DeclinePublic]
    validation: dict[str, Any] | None
    submissions: list[SubmissionPublic]
    aggregate: RoundAggregatePublic | None
    attestations: list[str]
    version_id: str | None
    ledger: RoundLedgerPublic
    error: str | None


class StrategyPublic(_Public):
    name: str
    params: dict[str, Any]


class AggregatePublic(_Public):
    round_id: int
    #: The next adapter: the strategy's aggregate, then the server optimizer's step if the
    #: round config names one; ``server_state_digest`` is the state after that step.
    aggregate_digest: str
    server_state_digest: str | None = None
    included: list[dict[str, Any]]
    strategy: StrategyPublic
    accepted: list[Any]
    rejected: dict[str, Any]


class VotesPublic(_Public):
    round_id: int
    validation: dict[str, Any] | None
    votes: list[dict[str, Any]]
    verdict: dict[str, bool]


class StakeEventPublic(_Public):
    kind: str
    round_id: int
    amount_wei: str
    block_number: int
    tx_hash: str


class OrgStakePublic(_Public):
    address: str
    stake_wei: str
    pending_withdrawal_wei: str
    unlock_at: int | None
    history: list[StakeEventPublic]


class StakesPublic(_Public):
    """The Staking contract read at one block: every org's stake, pending withdrawal and
    history (wei amounts as decimal strings)."""

    staking: str
    chain_id: int
    block: int
    reward_pool_wei: str
    next_round_to_settle: int
    orgs: dict[str, OrgStakePublic]


class DeclineResult(_Public):
    round_id: int
    org: str
    reason: str


class UpdateAccepted(_Public):
    update_hash: str


class ModelVersionPublic(_Public):
    version_id: str
    round_id: int
    kind: str
    adapter_digest: str
    parents: list[str]
    lineage: list[str]
    shard_adapters: list[dict[str, Any]]
    commitment_roots: list[Any]
    unlearning_id: int | None
    tx_id: str | None
    created_at: str


class LineageStepPublic(_Public):
    step: int
    round_id: int | None
    digest: str | None
    invited: list[str]


class LineagePublic(_Public):
    shards: int
    lineages: dict[str, list[LineageStepPublic]]


class UnlearningPublic(_Public):
    notice_id: str
    org: str
    status: str
    first_steps: dict[str, int]
    plan: list[dict[str, Any]]
    affected_shards: list[int]
    replay_rounds: list[int]
    old_version: str | None
    interim_version: str | None
    new_version: str | None
    timings: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str
