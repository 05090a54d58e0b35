"""The org's side of anchoring, as signed service endpoints for the bridge.

Backed by :class:`fedledger.bridge.agents.OrgAnchorAgent` with this org's private and
consortium queries and its anchor key: the bridge gets the org's private-state leaf
(``GET /anchoring/private-state``) and asks for a signature on a batch (``POST
/anchoring/approve``); the agent recomputes the consortium leaves from its own ledger
view and signs only a batch that matches (409 with the reason otherwise).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from fedledger.bridge.errors import BridgeError
from fedledger.bridge.tree import AnchorBatch
from fedledger.fabric.errors import FabricError
from fedledger.fabric.msp import VerifiedIdentity
from fedledger.orgnode.ledger import ledger_error
from fedledger.protocol.orgnode_api import AnchorApproval, PrivateStateLeaf
from fedledger.web.errors import Conflict, ServiceError, Unauthorized, Unavailable
from fedledger.web.signing import CONTENT_SHA256

router = APIRouter(prefix="/anchoring", tags=["anchoring"])


async def signed_caller(request: Request) -> VerifiedIdentity:
    """Dependency: the request is signed by a consortium org's Fabric identity."""
    node = request.app.state.node
    if node.verifier is None:
        raise Unavailable("signed requests are not configured on this node (no msp_dirs)")
    body = await request.body()
    body_sha256 = hashlib.sha256(body).hexdigest()
    declared = request.headers.get(CONTENT_SHA256)
    if declared is not None and declared != body_sha256:
        raise Unauthorized("the body does not match X-Content-Sha256")
    path = request.scope.get("raw_path", request.url.path.encode()).decode()
    if request.url.query:
        path += "?" + request.url.query
    return node.verifier.verify(request.method, path, request.headers, body_sha256)


Signed = Annotated[VerifiedIdentity, Depends(signed_caller)]


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_round: int = Field(ge=1)
    last_round: int = Field(ge=1)
    leaves: list[dict[str, Any]] = Field(min_length=1, max_length=1_000_000)
    chain_id: int = Field(ge=1)
    registry: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")


def _agent(request: Request):  # noqa: ANN202
    agent = request.app.state.node.agent
    if agent is None:
        raise Unavailable("this node has no anchor key configured")
    return agent


@router.get("/private-state")
def private_state(request: Request, caller: Signed) -> PrivateStateLeaf:
    agent = _agent(request)
    try:
        return PrivateStateLeaf.model_validate(agent.private_state())
    except FabricError as exc:
        raise ledger_error("reading the private channel", exc) from None


@router.post("/approve")
def approve(body: ApproveRequest, request: Request, caller: Signed) -> AnchorApproval:
    node = request.app.state.node
    agent = _agent(request)
    settings = node.settings
    if body.last_round < body.first_round:
        raise ServiceError(f"last_round {body.last_round} < first_round {body.first_round}")
    if settings.chain_id is not None and body.chain_id != settings.chain_id:
        raise Conflict(f"{settings.msp_id} signs anchors for chain {settings.chain_id}, "
                       f"not {body.chain_id}")
    if settings.registry_address is not None and (
            body.registry.lower() != settings.registry_address.lower()):
        raise Conflict(f"{settings.msp_id} signs anchors for registry "
                       f"{settings.registry_address}, not {body.registry}")
    try:
        batch = AnchorBatch.from_leaves(body.first_round, body.last_round, body.leaves)
        signature = agent.approve(batch, chain_id=body.chain_id, registry=body.registry)
    except BridgeError as exc:
        raise Conflict(exc.message, code="refused", details={"step": exc.step}) from None
    except FabricError as exc:
        raise ledger_error("reading the ledger", exc) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ServiceError(f"malformed batch: {exc}") from None
    return AnchorApproval(signature="0x" + signature.hex(), address=agent.address)


class OutcomeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round_id: int = Field(ge=1)
    orgs: list[str] = Field(max_length=1024)
    deltas: list[int] = Field(max_length=1024)
    chain_id: int = Field(ge=1)
    staking: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")


@router.post("/approve-outcome")
def approve_outcome(body: OutcomeRequest, request: Request, caller: Signed) -> AnchorApproval:
    """Sign a round's Staking outcome after recomputing it from this org's ledger view."""
    node = request.app.state.node
    agent = _agent(request)
    staking = node.settings.staking
    if staking is not None and (body.chain_id != staking.chain_id
                                or body.staking.lower() != staking.address.lower()):
        raise Conflict(f"{node.settings.msp_id} signs outcomes for Staking {staking.address} "
                       f"on chain {staking.chain_id}, not {body.staking} on {body.chain_id}")
    if len(body.orgs) != len(body.deltas):
        raise ServiceError(f"{len(body.orgs)} orgs but {len(body.deltas)} deltas")
    try:
        signature = agent.approve_outcome(body.round_id, body.orgs, body.deltas,
                                          chain_id=body.chain_id, staking=body.staking)
    except BridgeError as exc:
        raise Conflict(exc.message, code="refused", details={"step": exc.step}) from None
    except FabricError as exc:
        raise ledger_error("reading the ledger", exc) from None
    return AnchorApproval(signature="0x" + signature.hex(), address=agent.address)
