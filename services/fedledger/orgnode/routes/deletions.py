"""``/deletion-requests`` (filed by admins, read by auditors) and the data-subject map
``/datasets/{id}/subjects``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from fedledger.orgnode.auth import Admin, Auditor, SessionDep
from fedledger.orgnode.deletions import deletion_public, file_request, set_subjects
from fedledger.orgnode.models import DeletionRow
from fedledger.web.errors import NotFound
from fedledger.web.params import ID_PATTERN, SAMPLE_ID_PATTERN, LedgerId

router = APIRouter(tags=["deletions"])

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]
SampleId = Annotated[str, StringConstraints(pattern=SAMPLE_ID_PATTERN)]


class DeletionCreate(BaseModel):
    """Exactly one of ``sample_ids``, ``subject_id`` or ``whole_dataset``."""

    model_config = ConfigDict(extra="forbid")

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


class SubjectsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subjects: dict[Id, list[SampleId]] = Field(min_length=1, max_length=100_000,
                                         description="data subject id -> its sample ids")


@router.post("/deletion-requests", status_code=201)
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
    return JSONResponse(deletion_public(row), status_code=201 if created else 200)


@router.get("/deletion-requests")
def list_deletion_requests(caller: Auditor, session: SessionDep) -> list[dict]:
    rows = session.scalars(select(DeletionRow).order_by(DeletionRow.created_at))
    return [deletion_public(r) for r in rows]


@router.get("/deletion-requests/{request_id}")
def get_deletion_request(request_id: LedgerId, caller: Auditor, session: SessionDep) -> dict:
    row = session.get(DeletionRow, request_id)
    if row is None:
        raise NotFound(f"no deletion request {request_id}")
    return deletion_public(row)


@router.put("/datasets/{dataset_id}/subjects", tags=["datasets"])
async def put_subjects(dataset_id: LedgerId, body: SubjectsBody, request: Request,
                       caller: Admin) -> dict:
    """Map data subjects to samples of the dataset (kept on this node only)."""
    count = await run_in_threadpool(set_subjects, request.app.state.node, dataset_id,
                                    body.subjects)
    return {"dataset_id": dataset_id, "subjects": len(body.subjects), "samples": count}
