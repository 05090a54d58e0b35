"""``/deletion-requests`` (filed by admins, read by auditors) and the data-subject map
``/datasets/{id}/subjects``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from fedledger.orgnode.auth import Admin, Auditor, SessionDep
from fedledger.orgnode.deletions import deletion_public, file_request, set_subjects
from fedledger.orgnode.models import DeletionRow
from fedledger.protocol.orgnode_api import DeletionCreate, DeletionPublic, SubjectsBody, SubjectsSet
from fedledger.web.errors import NotFound
from fedledger.web.params import LedgerId

router = APIRouter(tags=["deletions"])


@router.post("/deletion-requests", status_code=201, response_model=DeletionPublic,
             responses={200: {"model": DeletionPublic, "description": "the same request again"}})
async def create_deletion_request(body: DeletionCreate, request: Request,
                                  caller: Admin) -> JSONResponse:
    """File a request; it is executed in the background (follow it with GET). 201 for a
    new request, 200 with the existing one for a repeat."""
    node = request.app.state.node
    row, created = await run_in_threadpool(
        file_request, node, request_id=body.request_id, dataset_id=body.dataset_id,
        sample_ids=body.sample_ids, subject_id=body.subject_id,
        whole_dataset=body.whole_dataset, legal_basis=body.legal_basis,
        requester=body.requester)
    public = DeletionPublic.model_validate(deletion_public(row)).model_dump(mode="json")
    return JSONResponse(public, status_code=201 if created else 200)


@router.get("/deletion-requests")
def list_deletion_requests(caller: Auditor, session: SessionDep) -> list[DeletionPublic]:
    rows = session.scalars(select(DeletionRow).order_by(DeletionRow.created_at))
    return [DeletionPublic.model_validate(deletion_public(r)) for r in rows]


@router.get("/deletion-requests/{request_id}")
def get_deletion_request(request_id: LedgerId, caller: Auditor,
                         session: SessionDep) -> DeletionPublic:
    row = session.get(DeletionRow, request_id)
    if row is None:
        raise NotFound(f"no deletion request {request_id}")
    return DeletionPublic.model_validate(deletion_public(row))


@router.put("/datasets/{dataset_id}/subjects", tags=["datasets"])
async def put_subjects(dataset_id: LedgerId, body: SubjectsBody, request: Request,
                       caller: Admin) -> SubjectsSet:
    """Map data subjects to samples of the dataset (kept on this node only)."""
    count = await run_in_threadpool(set_subjects, request.app.state.node, dataset_id,
                                    body.subjects)
    return SubjectsSet(dataset_id=dataset_id, subjects=len(body.subjects), samples=count)
