"""``/policy`` (with the participation agent and its decisions), ``/jobs`` and
``/models`` (the aggregates this org attested)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import or_, select

from fedledger.learning.updates import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
from fedledger.orgnode.auth import Admin, SessionDep, Viewer
from fedledger.orgnode.models import Job, ModelVersionRow, ParticipationRow, Policy
from fedledger.orgnode.participation import Participation, decision_public
from fedledger.web.errors import NotFound
from fedledger.web.params import MAX_DB_INT, RecordId

router = APIRouter()


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["always", "never", "schedule", "qlearning"] = Field(
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


@router.get("/policy", tags=["policy"])
def get_policy(caller: Viewer, session: SessionDep) -> dict:
    policy = session.get(Policy, 1)
    return {"mode": policy.mode, "rounds": policy.rounds}


@router.put("/policy", tags=["policy"])
def put_policy(body: PolicyBody, caller: Admin, session: SessionDep) -> dict:
    policy = session.get(Policy, 1)
    policy.mode, policy.rounds = body.mode, body.rounds
    session.commit()
    return {"mode": policy.mode, "rounds": policy.rounds}


@router.get("/policy/agent", tags=["policy"])
def get_agent(request: Request, caller: Viewer) -> dict:
    """The Q-learning agent: its settings, decisions made and learned from, its
    exploration rate now, the compute spent, and its Q-table (state -> action ->
    value, visits)."""
    node = request.app.state.node
    worker = node.worker
    participation = worker.participation if worker is not None else Participation(
        node, lambda _round: None)
    return participation.summary()


@router.get("/policy/decisions", tags=["policy"])
def list_decisions(caller: Viewer, session: SessionDep) -> list[dict]:
    """Every participation decision, oldest first: policy, action, local steps, reason,
    the agent's state, signals and action values, and once learned its reward."""
    rows = session.scalars(select(ParticipationRow).order_by(ParticipationRow.round_id))
    return [decision_public(r) for r in rows]


def job_public(job: Job) -> dict:
    return {"id": job.id, "round_id": job.round_id, "status": job.status,
            "progress": job.progress, "update_hash": job.update_hash,
            "num_samples": job.num_samples, "metrics": job.metrics, "error": job.error,
            "datasets": job.datasets, "created": job.created_at.isoformat(),
            "updated": job.updated_at.isoformat()}


@router.get("/jobs", tags=["jobs"])
def list_jobs(caller: Viewer, session: SessionDep) -> list[dict]:
    return [job_public(j) for j in session.scalars(select(Job).order_by(Job.round_id))]


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(job_id: RecordId, caller: Viewer, session: SessionDep) -> dict:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job_public(job)


def model_public(row: ModelVersionRow) -> dict:
    return {"version_id": row.version_id, "id": row.version_id or f"round-{row.round_id}",
            "round_id": row.round_id, "digest": row.digest, "adapter_hash": row.adapter_hash,
            "strategy": row.strategy, "included": row.included,
            "attested_at": row.attested_at.isoformat()}


@router.get("/models", tags=["models"])
def list_models(caller: Viewer, session: SessionDep) -> list[dict]:
    return [model_public(r) for r in
            session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.round_id))]


def _model(session, version_id: str) -> ModelVersionRow:  # noqa: ANN001
    clauses = [ModelVersionRow.version_id == version_id]
    if version_id.startswith("round-") and version_id[6:].isdigit():
        clauses.append(ModelVersionRow.round_id == int(version_id[6:]))
    row = session.scalar(select(ModelVersionRow).where(or_(*clauses)))
    if row is None:
        raise NotFound(f"model version {version_id} not found (this org attested none such)")
    return row


@router.get("/models/{version_id}", tags=["models"])
def get_model(version_id: str, caller: Viewer, session: SessionDep) -> dict:
    return model_public(_model(session, version_id))


@router.get("/models/{version_id}/adapter", tags=["models"])
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
    return Response(buffer.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
