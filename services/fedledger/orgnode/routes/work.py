"""``/policy`` (with the participation agent and its decisions), ``/jobs`` and
``/models`` (the aggregates this org attested)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fedledger.learning.updates import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
from fedledger.orgnode.auth import Admin, SessionDep, Viewer
from fedledger.orgnode.models import Job, ModelVersionRow, ParticipationRow, Policy
from fedledger.orgnode.participation import decision_public
from fedledger.protocol.orgnode_api import (
    BINARY_SCHEMA,
    ZIP,
    AgentSummary,
    DecisionPublic,
    JobPublic,
    ModelPublic,
    PolicyBody,
    PolicyPublic,
)
from fedledger.web.errors import NotFound
from fedledger.web.params import RecordId

router = APIRouter()


def _policy(session: Session) -> Policy:
    policy = session.get(Policy, 1)
    if policy is None:  # the migrations insert it
        raise NotFound("no participation policy")
    return policy


def _policy_public(policy: Policy) -> PolicyPublic:
    return PolicyPublic.model_validate({"mode": policy.mode, "rounds": policy.rounds})


@router.get("/policy", tags=["policy"])
def get_policy(caller: Viewer, session: SessionDep) -> PolicyPublic:
    return _policy_public(_policy(session))


@router.put("/policy", tags=["policy"])
def put_policy(body: PolicyBody, caller: Admin, session: SessionDep) -> PolicyPublic:
    policy = _policy(session)
    policy.mode, policy.rounds = body.mode, body.rounds
    session.commit()
    return _policy_public(policy)


@router.get("/policy/agent", tags=["policy"])
def get_agent(request: Request, caller: Viewer) -> AgentSummary:
    """The Q-learning agent: its settings, decisions made and learned from, its
    exploration rate now, the compute spent, and its Q-table (state -> action ->
    value, visits)."""
    node = request.app.state.node
    participation = node.participation
    return AgentSummary.model_validate(participation.summary())


@router.get("/policy/decisions", tags=["policy"])
def list_decisions(caller: Viewer, session: SessionDep) -> list[DecisionPublic]:
    """Every participation decision, oldest first: policy, action, local steps, reason,
    the agent's state, signals and action values, and once learned its reward."""
    rows = session.scalars(select(ParticipationRow).order_by(ParticipationRow.round_id))
    return [DecisionPublic.model_validate(decision_public(r)) for r in rows]


def job_public(job: Job) -> JobPublic:
    return JobPublic.model_validate({"id": job.id, "round_id": job.round_id, "status": job.status,
            "progress": job.progress, "update_hash": job.update_hash,
            "num_samples": job.num_samples, "metrics": job.metrics, "error": job.error,
            "datasets": job.datasets, "created": job.created_at.isoformat(),
            "updated": job.updated_at.isoformat()})


@router.get("/jobs", tags=["jobs"])
def list_jobs(caller: Viewer, session: SessionDep) -> list[JobPublic]:
    return [job_public(j) for j in session.scalars(select(Job).order_by(Job.round_id))]


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(job_id: RecordId, caller: Viewer, session: SessionDep) -> JobPublic:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job_public(job)


def model_public(row: ModelVersionRow) -> ModelPublic:
    return ModelPublic.model_validate({"version_id": row.version_id, "id": row.version_id or f"round-{row.round_id}",
            "round_id": row.round_id, "digest": row.digest, "adapter_hash": row.adapter_hash,
            "strategy": row.strategy, "included": row.included,
            "attested_at": row.attested_at.isoformat()})


@router.get("/models", tags=["models"])
def list_models(caller: Viewer, session: SessionDep) -> list[ModelPublic]:
    return [model_public(r) for r in
            session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.round_id))]


def _model(session: Session, version_id: str) -> ModelVersionRow:
    clauses = [ModelVersionRow.version_id == version_id]
    if version_id.startswith("round-") and version_id[6:].isdigit():
        clauses.append(ModelVersionRow.round_id == int(version_id[6:]))
    row = session.scalar(select(ModelVersionRow).where(or_(*clauses)))
    if row is None:
        raise NotFound(f"model version {version_id} not found (this org attested none such)")
    return row


@router.get("/models/{version_id}", tags=["models"])
def get_model(version_id: str, caller: Viewer, session: SessionDep) -> ModelPublic:
    return model_public(_model(session, version_id))


@router.get("/models/{version_id}/adapter", tags=["models"], response_class=Response,
            responses={200: {"content": {ZIP: {"schema": BINARY_SCHEMA}},
                             "description": "the adapter (PEFT safetensors + config) as a zip"}})
def model_adapter(version_id: str, caller: Viewer, session: SessionDep) -> Response:
    row = _model(session, version_id)
    folder = Path(row.path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in (SAFETENSORS_WEIGHTS_NAME, CONFIG_NAME):
            if not (folder / name).is_file():
                raise NotFound(f"adapter files of model version {version_id} are missing")
            archive.write(folder / name, arcname=name)
    filename = f"{row.version_id or f'round-{row.round_id}'}.zip"
    return Response(buffer.getvalue(), media_type=ZIP,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
