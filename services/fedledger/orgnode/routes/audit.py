"""``/audit``: the compliance auditor's queries of this org (role ``auditor``). An org
node holds only its own org's requests and private records."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from fedledger.audit.bundle import AuditBundle
from fedledger.audit.report import markdown_to_html, request_markdown
from fedledger.orgnode import audit
from fedledger.orgnode.auth import Auditor
from fedledger.protocol.orgnode_api import (
    HTML,
    MARKDOWN,
    TEXT_SCHEMA,
    AuditRequestStatus,
    LedgerOnlyRequest,
    SampleInVersion,
)
from fedledger.protocol.records import ModelVersion
from fedledger.web.params import ID_PATTERN, SAMPLE_ID_PATTERN, LedgerId

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/requests/{request_id}")
async def request_status(request_id: LedgerId, request: Request,
                         caller: Auditor) -> AuditRequestStatus:
    """Status and history of a deletion request, with its ledger records."""
    return await run_in_threadpool(audit.request_status, request.app.state.node, request_id)


@router.get("/requests/{request_id}/proof")
async def request_proof(request_id: LedgerId, request: Request, caller: Auditor) -> AuditBundle:
    """The proof bundle of a completed request, for ``fedledger verify``."""
    return await run_in_threadpool(audit.request_bundle, request.app.state.node, request_id)


@router.get("/requests/{request_id}/report", response_class=Response,
            responses={200: {"content": {MARKDOWN: {"schema": TEXT_SCHEMA},
                                         HTML: {"schema": TEXT_SCHEMA}},
                             "description": "the request's report, Markdown or HTML"}})
async def request_report(request_id: LedgerId, request: Request, caller: Auditor,
                         format: Literal["markdown", "html"] = "markdown") -> Response:
    status = await run_in_threadpool(audit.request_status, request.app.state.node, request_id)
    markdown = request_markdown(status.model_dump(mode="json"))
    if format == "html":
        return HTMLResponse(markdown_to_html(markdown, f"Deletion request {request_id}"))
    return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")


@router.get("/subjects/{subject_id}")
async def subject_requests(subject_id: LedgerId, request: Request,
                           caller: Auditor) -> list[AuditRequestStatus | LedgerOnlyRequest]:
    """Every deletion request about a data subject."""
    return await run_in_threadpool(audit.subject_requests, request.app.state.node, subject_id)


@router.get("/models/{version_id}/lineage", response_model=list[ModelVersion])
async def model_lineage(version_id: LedgerId, request: Request, caller: Auditor) -> list[Any]:
    """A model version and its ancestors: shard adapters and data commitments of each."""
    return await run_in_threadpool(audit.lineage, request.app.state.node, version_id)


@router.get("/models/{version_id}/samples")
async def sample_in_version(version_id: LedgerId, request: Request, caller: Auditor,
                            dataset_id: str = Query(pattern=ID_PATTERN),
                            sample_id: str = Query(pattern=SAMPLE_ID_PATTERN),
                            proof: bool = False) -> AuditBundle | SampleInVersion:
    """Is a sample committed in a model version: a membership or non-membership proof
    against the root the version lists (``proof=true``: as an anchored bundle)."""
    node = request.app.state.node
    if proof:
        return await run_in_threadpool(audit.sample_bundle, node, version_id, dataset_id,
                                       sample_id)
    version = await run_in_threadpool(audit.model_version, node, version_id)
    evidence = await run_in_threadpool(audit.sample_evidence, node, version, dataset_id,
                                       sample_id)
    return SampleInVersion.model_validate({"version_id": version_id,
                                           **evidence.model_dump(mode="json")})
