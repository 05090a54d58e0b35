"""``/datasets``: register from a packaged corpus or an upload; list; show."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fedledger.learning.data.records import Sample
from fedledger.orgnode import datasets
from fedledger.orgnode.auth import Admin, SessionDep, Viewer
from fedledger.orgnode.models import DatasetRow
from fedledger.protocol.orgnode_api import DATASET_ID, DatasetCreate, DatasetPublic
from fedledger.web.errors import NotFound, PayloadTooLarge, ServiceError

router = APIRouter(tags=["datasets"])


def _register(request: Request, *, dataset_id: str, name: str, source: str, domain: str,
              samples: Sequence[Sample], labels: Sequence[str]) -> DatasetPublic:
    node = request.app.state.node
    node.ledger.ensure_ready(node.anchor_address)
    with node.dataset_lock, node.sessions() as session:
        row = datasets.register(
            session, node.ledger, data_dir=node.settings.data_dir, dataset_id=dataset_id, name=name,
            source=source, domain=domain, samples=samples, labels=labels,
            shards=node.settings.shards, shard_key=node.settings.shard_key)
        return datasets.dataset_public(row)


@router.post("/datasets", status_code=201)
def create_dataset(body: DatasetCreate, request: Request, caller: Admin,
                   session: SessionDep) -> DatasetPublic:
    if session.get(DatasetRow, body.dataset_id) is not None:
        raise ServiceError(f"dataset {body.dataset_id} already exists", status=409,
                           code="conflict")
    samples, labels = datasets.load_packaged(body.source, body.domain, body.max_samples,
                                             body.dataset_id)
    name = f"{body.source}" + (f" ({body.domain})" if body.domain else "")
    return _register(request, dataset_id=body.dataset_id, name=name,
                     source=body.source, domain=body.domain or "", samples=samples, labels=labels)


async def _read_capped(upload: UploadFile, cap: int) -> bytes:
    data = bytearray()
    while chunk := await upload.read(1 << 20):
        data += chunk
        if len(data) > cap:
            raise PayloadTooLarge(f"upload exceeds the {cap} byte limit")
    return bytes(data)


@router.post("/datasets/upload", status_code=201)
async def register_uploaded_dataset(request: Request, caller: Admin) -> DatasetPublic:
    node = request.app.state.node
    cap = node.settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap + 64 * 1024:
        raise PayloadTooLarge(f"upload of {length} bytes exceeds the {cap} byte limit")
    form = await request.form(max_files=1, max_fields=4)
    upload, dataset_id = form.get("file"), form.get("dataset_id")
    if not isinstance(upload, UploadFile) or not isinstance(dataset_id, str):
        raise ServiceError("multipart form needs a 'file' part and a 'dataset_id' field")
    if not re.match(DATASET_ID, dataset_id):
        raise ServiceError(f"dataset_id {dataset_id!r} must match {DATASET_ID}")
    data = await _read_capped(upload, cap)
    filename = upload.filename or "upload"
    samples, labels = datasets.parse_upload(filename, data, dataset_id, cap)
    return await run_in_threadpool(
        _register, request, dataset_id=dataset_id, name=filename[:512],
        source="upload", domain="", samples=samples, labels=labels)


@router.get("/datasets")
def list_datasets(caller: Viewer, session: SessionDep) -> list[DatasetPublic]:
    return [datasets.dataset_public(r)
            for r in session.scalars(select(DatasetRow).order_by(DatasetRow.created_at))]


@router.get("/datasets/{dataset_id}")
def get_dataset(dataset_id: str, caller: Viewer, session: SessionDep) -> DatasetPublic:
    row = session.get(DatasetRow, dataset_id)
    if row is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return datasets.dataset_public(row)
