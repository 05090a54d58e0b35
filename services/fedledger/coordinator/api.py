"""The coordinator's HTTP API (docs/services.md, "Coordinator API").

Handlers only check and record; ledger watching, closing at the deadline, aggregation
and model registration run in the round worker (:mod:`.rounds`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from fedledger.fabric.errors import FabricError
from fedledger.incentives.outcome import verdict_of
from fedledger.protocol.coordinator_api import (
    AggregatePublic,
    DeclineCreate,
    DeclineResult,
    HealthPublic,
    LineagePublic,
    ModelVersionPublic,
    RoundCreate,
    RoundPublic,
    StakesPublic,
    UnlearningCreate,
    UnlearningPublic,
    UpdateAccepted,
    VotesPublic,
)
from fedledger.web.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from fedledger.web.metrics import UPLOAD_BYTES
from fedledger.web.params import RoundId
from fedledger.web.signing import CONTENT_SHA256, RequestVerifier

from .blobs import HEX64, BlobStore, BlobTooLarge
from .models import BlobRow, ModelVersionRow, RoundRow, UnlearningJobRow
from .rounds import RoundService, ledger_error
from .settings import CoordinatorSettings
from .unlearning import UnlearningService
from .versions import served_version
from .views import aggregate_public, lineage_public, model_public, round_public, unlearning_public

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
router = APIRouter()


# ---------------------------------------------------------------------- dependencies


def get_service(request: Request) -> RoundService:
    return request.app.state.service


def get_settings(request: Request) -> CoordinatorSettings:
    return request.app.state.settings


def unlearning_service(request: Request) -> UnlearningService:
    return request.app.state.unlearning


Service = Annotated[RoundService, Depends(get_service)]
Unlearning = Annotated[UnlearningService, Depends(unlearning_service)]


def _bearer_ok(request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    return hmac.compare_digest(digest, request.app.state.settings.operator_token_hash)


def require_operator(request: Request) -> None:
    if not request.headers.get("authorization"):
        raise Unauthorized("operator token required (Authorization: Bearer <token>)")
    if not _bearer_ok(request):
        raise Unauthorized("invalid operator token")


def _signed_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else request.url.path
    query = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def verify_org(request: Request, body_sha256: str) -> str:
    """The calling org's MSP id from a signed request; only consortium orgs."""
    verifier: RequestVerifier = request.app.state.verifier
    identity = verifier.verify(request.method, _signed_path(request), request.headers, body_sha256)
    if identity.msp_id not in request.app.state.org_ids:
        raise Forbidden(f"{identity.msp_id} is not a consortium org")
    return identity.msp_id


def require_org(request: Request) -> str:
    return verify_org(request, EMPTY_SHA256)


Operator = Depends(require_operator)


# ---------------------------------------------------------------------- health


@router.get("/health")
def health(request: Request) -> HealthPublic:
    return HealthPublic(status="ok", service="coordinator", org=request.app.state.operator_msp)


# ---------------------------------------------------------------------- rounds


@router.post("/rounds", status_code=201, dependencies=[Operator])
def open_round(body: RoundCreate, service: Service) -> RoundPublic:
    round_id = service.open_round(deadline_s=body.deadline_s, quorum=body.quorum,
                                  local_steps=body.local_steps, shard=body.shard)
    with service.sessions() as session:
        return round_public(session, service.get(session, round_id))


@router.get("/rounds")
def list_rounds(service: Service) -> list[RoundPublic]:
    with service.sessions() as session:
        rows = session.scalars(select(RoundRow).order_by(RoundRow.round_id)).all()
        return [round_public(session, row) for row in rows]


@router.get("/rounds/current")
def current_round(service: Service) -> RoundPublic:
    with service.sessions() as session:
        row = session.scalars(select(RoundRow).where(RoundRow.status == "open")
                              .order_by(RoundRow.round_id.desc())).first()
        if row is None:
            raise NotFound("no round is open")
        return round_public(session, row)


@router.get("/rounds/{round_id}")
def get_round(round_id: RoundId, service: Service) -> RoundPublic:
    with service.sessions() as session:
        return round_public(session, service.get(session, round_id))


@router.get("/rounds/{round_id}/votes")
def get_votes(round_id: RoundId, service: Service) -> VotesPublic:
    """The validators' votes of a round as the ledger holds them, and the verdict."""
    with service.sessions() as session:
        row = service.get(session, round_id)
        validation = row.validation
    try:
        votes = service.ledger.list_votes(round_id)
        submissions = service.ledger.list_submissions(round_id)
        on_ledger = service.ledger.find_round(round_id)
    except FabricError as exc:
        raise ledger_error(exc) from exc
    return VotesPublic(round_id=round_id, validation=validation,
                       votes=[v.model_dump(mode="json") for v in votes],
                       verdict=verdict_of(on_ledger, submissions, votes))


@router.get("/stakes")
def get_stakes(service: Service) -> StakesPublic:
    """Every org's stake on the Staking contract, its pending withdrawal and its history
    (deposits, rewards and slashes per round)."""
    if service.stakes is None:
        raise NotFound("no Staking contract is configured for this coordinator")
    try:
        addresses = service.ledger.anchor_addresses()
    except FabricError as exc:
        raise ledger_error(exc) from exc
    try:
        view = service.stakes.view(addresses)
    except Exception as exc:  # noqa: BLE001 - the chain is down or refuses: a 503 with why
        raise Unavailable(f"cannot read the Staking contract: {exc}") from exc
    return StakesPublic.model_validate(view)


@router.get("/rounds/{round_id}/aggregate")
def get_aggregate(round_id: RoundId, service: Service) -> AggregatePublic:
    with service.sessions() as session:
        return aggregate_public(session, round_id)


@router.post("/rounds/{round_id}/close", dependencies=[Operator])
def close_round(round_id: RoundId, service: Service) -> RoundPublic:
    service.close_requested(round_id)
    with service.sessions() as session:
        return round_public(session, service.get(session, round_id))


async def require_signed_org(request: Request) -> str:
    """The calling org of a signed request with a JSON body (its hash checked)."""
    body = await request.body()
    declared = request.headers.get(CONTENT_SHA256)
    actual = hashlib.sha256(body).hexdigest()
    if declared is not None and declared != actual:
        raise Unauthorized("the body does not match X-Content-Sha256")
    return verify_org(request, actual)


SignedOrg = Annotated[str, Depends(require_signed_org)]


@router.post("/rounds/{round_id}/decline", status_code=201,
             responses={200: {"model": DeclineResult, "description": "declined already"}})
def decline_round(round_id: RoundId, body: DeclineCreate, org: SignedOrg,
                  service: Service, response: Response) -> DeclineResult:
    """An invited org will not submit (signed by it): the round need not wait for it."""
    created = service.decline(round_id, org, body.reason)
    response.status_code = 201 if created else 200
    return DeclineResult(round_id=round_id, org=org, reason=body.reason)


@router.put("/rounds/{round_id}/updates", status_code=201,
            responses={200: {"model": UpdateAccepted, "description": "the identical update again"}})
async def upload_update(
    round_id: RoundId, request: Request, service: Service, response: Response,
    x_num_samples: Annotated[str | None, Header()] = None,
) -> UpdateAccepted:
    """The update as safetensors, streamed; signed by the submitting org with the body's
    sha256 declared in X-Content-Sha256."""
    declared = (request.headers.get(CONTENT_SHA256) or "").strip()
    if not declared:
        raise ServiceError(f"{CONTENT_SHA256} header is required (hex sha256 of the body)",
                           code="missing_content_sha256")
    if not HEX64.match(declared):
        raise ServiceError(f"{CONTENT_SHA256} must be 64 lower-case hex digits",
                           code="invalid_content_sha256")
    org = verify_org(request, declared)
    num_samples = None
    if x_num_samples is not None:
        try:
            num_samples = int(x_num_samples)
        except ValueError:
            num_samples = -1
        if num_samples < 0:
            raise ServiceError("X-Num-Samples must be a non-negative integer",
                               code="invalid_num_samples")
    limit = service.settings.max_update_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"update of {length} bytes exceeds max_update_bytes {limit}",
                              details={"max_update_bytes": limit})
    await run_in_threadpool(service.check_upload, round_id, org, declared)
    blobs: BlobStore = request.app.state.blobs
    try:
        pending = await blobs.receive(request.stream(), max_bytes=limit)
    except BlobTooLarge:
        raise PayloadTooLarge(f"update exceeds max_update_bytes {limit}",
                              details={"max_update_bytes": limit}) from None
    UPLOAD_BYTES.observe(pending.size)  # every body received, stored or refused after
    created = await run_in_threadpool(service.accept_upload, round_id, org, declared,
                                      num_samples, pending)
    response.status_code = 201 if created else 200
    return UpdateAccepted(update_hash=declared)


# ---------------------------------------------------------------------- blobs and models


def _blob_response(service: RoundService, sha256: str) -> Response:
    if not HEX64.match(sha256):
        raise NotFound(f"no blob {sha256}")
    with service.sessions() as session:
        known = session.get(BlobRow, sha256) is not None
    if not known or not service.blobs.exists(sha256):
        raise NotFound(f"no blob {sha256}", details={"sha256": sha256})
    return Response(service.blobs.read(sha256), media_type="application/octet-stream",
                    headers={"X-Content-Sha256": sha256})


BINARY: dict[int | str, dict[str, Any]] = {200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                    "format": "binary"}}},
                "description": "the blob's bytes (X-Content-Sha256: their sha256)"}}


@router.get("/blobs/{sha256}", dependencies=[Depends(require_org)], response_class=Response,
            responses=BINARY)
def get_blob(sha256: str, service: Service) -> Response:
    return _blob_response(service, sha256)


@router.get("/models")
def list_models(service: Service) -> list[ModelVersionPublic]:
    with service.sessions() as session:
        rows = session.scalars(select(ModelVersionRow).order_by(
            ModelVersionRow.created_at, ModelVersionRow.version_id)).all()
        return [model_public(session, row) for row in rows]


@router.get("/models/served")
def served_model(service: Service) -> ModelVersionPublic:
    """The version served now (the last one registered)."""
    with service.sessions() as session:
        row = served_version(session)
        if row is None:
            raise NotFound("no model version yet")
        return model_public(session, row)


@router.get("/lineage")
def get_lineage(service: Service) -> LineagePublic:
    """Every shard-group's current lineage: per step, the round and the adapter after it,
    and the participation record (``invited``) replays reuse."""
    with service.sessions() as session:
        return lineage_public(session, service.shards)


# ---------------------------------------------------------------------- unlearning


@router.post("/unlearning", status_code=201,
             responses={200: {"model": UnlearningPublic, "description": "the same notice again"}})
def request_unlearning(body: UnlearningCreate, org: SignedOrg, service: Service,
                       unlearning: Unlearning, response: Response) -> UnlearningPublic:
    """An org asks the consortium to forget data of its own (signed by it)."""
    _, created = unlearning.request(org, body.notice_id, body.first_steps)
    with service.sessions() as session:
        view = unlearning_public(unlearning.get(session, body.notice_id))
    response.status_code = 201 if created else 200
    return view


@router.get("/unlearning")
def list_unlearning(service: Service) -> list[UnlearningPublic]:
    with service.sessions() as session:
        rows = session.scalars(select(UnlearningJobRow).order_by(UnlearningJobRow.id)).all()
        return [unlearning_public(row) for row in rows]


@router.get("/unlearning/{notice_id}")
def get_unlearning(notice_id: str, service: Service, unlearning: Unlearning) -> UnlearningPublic:
    with service.sessions() as session:
        return unlearning_public(unlearning.get(session, notice_id))


@router.get("/models/{version_id}")
def get_model(version_id: str, service: Service) -> ModelVersionPublic:
    with service.sessions() as session:
        row = session.get(ModelVersionRow, version_id)
        if row is None:
            raise NotFound(f"model version {version_id} does not exist")
        return model_public(session, row)


def require_org_or_operator(request: Request) -> None:
    if _bearer_ok(request):
        return
    require_org(request)


@router.get("/models/{version_id}/adapter", dependencies=[Depends(require_org_or_operator)],
            response_class=Response, responses=BINARY)
def get_model_adapter(version_id: str, service: Service) -> Response:
    with service.sessions() as session:
        row = session.get(ModelVersionRow, version_id)
        if row is None:
            raise NotFound(f"model version {version_id} does not exist")
        digest = row.adapter_digest
    return _blob_response(service, digest)
