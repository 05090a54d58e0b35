"""The round jobs as the node's database keeps them, and what every job step shares:
the errors that end a step, the round's experiment config and the update file.

A job row moves ``queued`` -> ``training`` -> ``uploading`` -> ``submitted`` ->
``attested`` (or ``failed`` / ``skipped``); :mod:`fedledger.orgnode.jobs` drives it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.learning.config import ExperimentConfig
from fedledger.orgnode.models import Job
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.web.metrics import JOB_TRANSITIONS

log = logging.getLogger("fedledger.orgnode.worker")

EXPERIMENT_KEYS = ("name", "seed", "model", "lora", "train", "data", "federation")
#: The node's own sections of the experiment config (a round's config overrides them).
NODE_SECTIONS = ("model", "lora", "train", "data")
UNFINISHED = ("queued", "training", "uploading", "submitted")


class JobFailed(Exception):
    """The job cannot succeed; the message is the reason shown to the admin."""


class NoTrainingData(JobFailed):
    """The org has no data in the round's shard: it declines the round."""


class Wait(Exception):
    """Nothing to do for this job yet (the aggregate is not there)."""


class Stopped(Exception):
    """The worker is stopping; the job resumes from its stored state."""


def experiment_config(settings_sections: dict[str, Any], round_config: dict[str, Any]
                      ) -> ExperimentConfig:
    """The round's experiment sections, the node's sections where the round gives none."""
    sections = {k: round_config[k] for k in EXPERIMENT_KEYS if k in round_config}
    for key, value in settings_sections.items():
        sections.setdefault(key, value)
    model = dict(sections["model"])
    if model.get("cache_dir") is None and settings_sections["model"].get("cache_dir"):
        model["cache_dir"] = settings_sections["model"]["cache_dir"]
    sections["model"] = model
    return ExperimentConfig.model_validate(sections)


def step_of(job: Job) -> int:
    """The round's step in its shard's lineage (the seed derives from it, so a replay
    trains with the seeds of the round it replaces)."""
    sisa = (job.round.get("config") or {}).get("sisa") or {}
    return int(sisa.get("step", job.round.get("step", job.round_id)))


class JobStore:
    """The ``jobs`` table: read, update, and each job's experiment config."""

    def __init__(self, sessions: sessionmaker[Session], settings: OrgNodeSettings) -> None:
        self.sessions = sessions
        self.settings = settings

    def get(self, job_id: int) -> Job:
        """The job, detached from its session (a snapshot of the stored row)."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise KeyError(f"job {job_id} not found")
            session.expunge(job)
            return job

    def update(self, job_id: int, **values: Any) -> None:
        """Write ``values``; a status change is logged (one INFO line, with the round and
        job ids) and counted in ``fedledger_orgnode_job_transitions_total``."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
            old = job.status if job is not None else None
            for key, value in values.items():
                setattr(job, key, value)
            session.commit()
            new = values.get("status")
            if job is not None and new is not None and new != old:
                JOB_TRANSITIONS.labels(new).inc()
                error = values.get("error")
                log.log(logging.WARNING if new == "failed" else logging.INFO,
                        "round %s job %s: %s -> %s%s", job.round_id, job_id, old, new,
                        f" ({error})" if error and new in ("failed", "skipped") else "")

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self.sessions() as session:
            return {state: count for state, count in session.execute(
                select(Job.status, func.count()).group_by(Job.status))}

    def ids(self, statuses: Sequence[str]) -> list[int]:
        """The jobs in ``statuses``, by round."""
        with self.sessions() as session:
            return list(session.scalars(select(Job.id).where(Job.status.in_(statuses))
                                        .order_by(Job.round_id)))

    def shards_of(self, job: Job) -> int:
        sisa = (job.round.get("config") or {}).get("sisa") or {}
        return int(sisa.get("shards", self.settings.shards))

    def defaults(self) -> dict[str, Any]:
        return {k: getattr(self.settings, k).model_dump(mode="json") for k in NODE_SECTIONS}

    def config(self, job: Job) -> ExperimentConfig:
        """The job's experiment config; :class:`JobFailed` if the round's is unusable."""
        try:
            return experiment_config(self.defaults(), job.round.get("config") or {})
        except ValueError as exc:
            raise JobFailed(f"round {job.round_id} config is not usable: {exc}") from None

    def current_config(self) -> ExperimentConfig:
        """The config of the latest round this node saw (what the federation trains
        with now), or the node's defaults before any round."""
        with self.sessions() as session:
            job = session.scalars(select(Job).order_by(Job.round_id.desc())).first()
            if job is not None:
                session.expunge(job)
        if job is not None:
            return self.config(job)
        return experiment_config(self.defaults(), {})

    def update_path(self, round_id: int) -> Path:
        """Where this org's update of ``round_id`` is kept until the round is attested."""
        folder = Path(self.settings.data_dir) / "updates"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"round-{round_id}.safetensors"
