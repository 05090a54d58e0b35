"""The host's status API contract (:func:`fedledger.host.app.create_status_app`): the
request body and response schemas of its routes.

Pydantic only (no web framework, ledger client or ML imports), so the host's client
(:mod:`fedledger.clients.host`) shares these models. The JSON is the one the routes
have always sent. ``POST /proofs`` answers a proof package,
:class:`fedledger.audit.proofs.ProofPackage` (the schema ``fedledger verify`` reads).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Public(BaseModel):
    """A response: unknown fields are kept (a newer host may send more)."""

    model_config = ConfigDict(extra="allow")


class BridgeStatus(_Public):
    running: bool = Field(description="the bridge thread is alive")
    agents: list[str] = Field(description="the orgs (MSP ids) whose nodes the bridge asks "
                              "for private-state leaves and signatures")
    last_error: str | None = Field(description="the bridge's latest failure, None once it "
                                   "succeeds again")


class HostHealth(_Public):
    status: str
    service: str
    org: str | None
    chain_id: int
    block: int = Field(description="the embedded chain's latest block number")
    registry: str = Field(description="the AnchorRegistry's address")
    gateway: str | None = Field(description="the dev peer's Fabric Gateway (host:port)")
    rpc_url: str | None = Field(description="the embedded chain's JSON-RPC URL")
    bridge: BridgeStatus


class HostInfo(_Public):
    """What ``host.json`` holds: the endpoints and keys the other processes need."""

    gateway: str
    tls_ca_cert: str
    server_name: str
    chaincode: str
    rpc_url: str
    chain_id: int
    registry: str
    staking: str | None
    deployer: str
    keys: list[str] = Field(description="the anchor keys (addresses) of the registry")
    threshold: int = Field(description="signatures an anchor needs")
    status_url: str | None
    bridge_identity: str
    channels: dict[str, Any]
    orgs: dict[str, Any]
    fabric_root: str
    pid: int


class AnchorPublic(_Public):
    """An anchor of the bridge outbox: a batch of rounds under one root on the EVM chain.
    ``status``: built, signed, prepared, confirmed or recorded."""

    first_round: int
    last_round: int
    root: str
    status: str
    tx_hash: str | None
    block_number: int | None
    receipt_tx_id: str | None
    signers: list[str]
    attempts: int
    last_error: str | None
    created_at: str | None
    updated_at: str | None


class AnchorWithLeaves(AnchorPublic):
    """An anchor and the leaves of its Merkle tree (consortium records, private-state
    digests), from which proof packages are built."""

    leaves: list[dict[str, Any]]


class ProofRequest(BaseModel):
    """The consortium record leaf to prove: ``{"kind", "round_id", "record", ...}`` as
    ``GET /anchors/{round_id}`` lists it."""

    leaf: dict[str, Any]


__all__ = ["AnchorPublic", "AnchorWithLeaves", "BridgeStatus", "HostHealth", "HostInfo",
           "ProofRequest"]
