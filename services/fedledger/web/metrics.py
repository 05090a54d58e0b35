"""The services' Prometheus metrics, and the observability routes of their apps.

Every metric is defined here, once, at module level on prometheus_client's default
registry: the package's modules record into them (rounds, ledger calls, uploads,
anchors, org-node jobs) and several apps in one process (the tests, ``fedledger
serve``) share them without registering anything twice. Each app's ``GET /metrics``
adds its own ``service`` label to every sample it exposes, so a scrape says which
service answered without a metric knowing which app it runs in.

:func:`install_observability` adds, to any service's app:

* ``GET /metrics``: the text exposition format (not in the OpenAPI schema: it is not
  JSON);
* ``GET /health/live``: 200 while the process serves requests;
* ``GET /health/ready``: 200 once the service's dependencies answer (the ledger
  gateway, the chain), else 503 with why; ``/health`` keeps its own meaning.

This module imports no FastAPI at module level, so the ledger layer can record into it
without pulling in a web framework.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.samples import Sample
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from fastapi import FastAPI

#: The supervisor (``fedledger up``) sets it for each child it starts: how many times it
#: restarted that service.
RESTARTS_ENV = "FEDLEDGER_SERVICE_RESTARTS"

#: Round phases as the coordinator's round rows name them.
ROUND_PHASES = ("opening", "open", "closed", "aggregated", "final", "failed")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_PHASE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_SIZE_BUCKETS = tuple(float(4 ** k * 1024) for k in range(11))  # 1 KiB .. 1 GiB

# --------------------------------------------------------------------- coordinator rounds

ROUND_PHASE_SECONDS = Histogram(
    "fedledger_round_phase_seconds",
    "Seconds a round spent in a phase, observed when it leaves the phase.",
    ["phase"], buckets=_PHASE_BUCKETS)
ROUND_PHASE = Gauge(
    "fedledger_round_phase",
    "1 for the phase the current round is in, 0 for the others.", ["phase"])
ROUND_CURRENT = Gauge("fedledger_round_current_id",
                      "The id of the round that last changed phase (the current one).")
ROUND_TRANSITIONS = Counter(
    "fedledger_round_transitions_total", "Round phase changes, by the phase entered.",
    ["phase"])
UPLOAD_BYTES = Histogram(
    "fedledger_upload_bytes", "Sizes of the updates received by the coordinator.",
    buckets=_SIZE_BUCKETS)

# --------------------------------------------------------------------- ledger calls

LEDGER_SECONDS = Histogram(
    "fedledger_ledger_call_seconds",
    "Latency of chaincode calls: evaluate (one peer) or submit (endorse, order, commit).",
    ["function", "kind"], buckets=_LATENCY_BUCKETS)
LEDGER_FAILURES = Counter(
    "fedledger_ledger_failures_total",
    "Chaincode calls that failed, by the refusal's code (not_found, conflict, ...), the "
    "commit's validation code (MVCC_READ_CONFLICT, ...) or the gRPC status / error type.",
    ["function", "kind", "code"])

# --------------------------------------------------------------------- bridge anchors

ANCHOR_SECONDS = Histogram(
    "fedledger_anchor_seconds",
    "Seconds from an anchor's batch being built to its receipt recorded on the ledger.",
    buckets=_PHASE_BUCKETS)
ANCHOR_GAS = Histogram(
    "fedledger_anchor_gas_used", "Gas used by anchor transactions (from their receipts).",
    buckets=tuple(float(x) for x in (5e4, 1e5, 1.5e5, 2e5, 3e5, 5e5, 1e6, 2e6, 5e6)))
ANCHORS = Counter("fedledger_anchors_total", "Anchors recorded, by outcome.", ["status"])

# --------------------------------------------------------------------- org node jobs

JOB_TRANSITIONS = Counter(
    "fedledger_orgnode_job_transitions_total",
    "Round-job state changes on an org node, by the state entered.", ["state"])


def clock() -> float:
    return time.perf_counter()


def error_code(exc: BaseException) -> str:
    """The code a ledger failure is counted under: a chaincode refusal's ErrorCode value,
    a commit's validation code name, the peer's gRPC status, else the error's type."""
    code = getattr(exc, "code", None)
    if code is not None:
        return str(getattr(code, "value", code))
    grpc_code = getattr(exc, "grpc_code", None)
    return str(grpc_code) if grpc_code else type(exc).__name__


def observe_ledger_call(function: str, kind: str, started: float,
                        failure: BaseException | str | None = None) -> None:
    """Record one chaincode call begun at ``started`` (:func:`clock`); ``failure`` is the
    error it raised, or the code of one it did not raise (a commit status read as is)."""
    LEDGER_SECONDS.labels(function, kind).observe(clock() - started)
    if failure is not None:
        code = failure if isinstance(failure, str) else error_code(failure)
        LEDGER_FAILURES.labels(function, kind, code).inc()


def round_phase_changed(round_id: int, old: str | None, new: str,
                        seconds_in_old: float | None) -> None:
    """A round moved from ``old`` (None: it was just created) to ``new``."""
    if old is not None and seconds_in_old is not None:
        ROUND_PHASE_SECONDS.labels(old).observe(max(0.0, seconds_in_old))
    ROUND_TRANSITIONS.labels(new).inc()
    # The coordinator runs one round at a time, so the round that moved is the current one.
    ROUND_CURRENT.set(round_id)
    for phase in ROUND_PHASES:
        ROUND_PHASE.labels(phase).set(1 if phase == new else 0)


# --------------------------------------------------------------------- exposition


class _Labelled:
    """The default registry as one app exposes it: every sample with ``service`` added,
    plus that process's restart count and whatever the app adds (``extra``)."""

    def __init__(self, service: str, extra: Callable[[], Iterable[Metric]] | None) -> None:
        self.service = service
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        restarts = GaugeMetricFamily(
            "fedledger_service_restarts",
            "How many times the supervisor restarted this service (FEDLEDGER_SERVICE_RESTARTS).")
        restarts.add_metric([], _restarts())
        families: list[Metric] = [*REGISTRY.collect(), restarts]
        if self.extra is not None:
            families.extend(self.extra())
        for family in families:
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [Sample(s.name, {**s.labels, "service": self.service}, s.value,
                                       s.timestamp, s.exemplar) for s in family.samples]
            yield labelled


def _restarts() -> float:
    try:
        return float(int(os.environ.get(RESTARTS_ENV, "0") or 0))
    except ValueError:
        return 0.0


def scrape(service: str, extra: Callable[[], Iterable[Metric]] | None = None) -> bytes:
    """The text exposition of every metric, labelled with ``service``."""
    return generate_latest(_Labelled(service, extra))


class Liveness(BaseModel):
    """``GET /health/live``: the process serves requests."""

    status: str = Field(default="ok", description="always ok")
    service: str = Field(description="coordinator, orgnode, host or bridge")


class Readiness(BaseModel):
    """``GET /health/ready``: whether the service's dependencies answer."""

    status: str = Field(description="ready, or unavailable (with HTTP 503)")
    service: str = Field(description="coordinator, orgnode, host or bridge")
    reason: str | None = Field(default=None, description="why it is not ready")


Ready = Callable[[], "bool | str | None | Awaitable[bool | str | None]"]


def install_observability(app: FastAPI, *, service: str, ready: Ready,
                          extra: Callable[[], Iterable[Metric]] | None = None) -> None:
    """Add ``/metrics``, ``/health/live`` and ``/health/ready`` to ``app``.

    ``ready`` answers whether the service's dependencies answer: True (ready), False or
    a reason string (not ready), or it raises (not ready: the error is the reason). A
    sync ``ready`` runs in the threadpool, since it usually makes a network call.
    """
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await run_in_threadpool(scrape, service, extra)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/health/live", tags=["health"])
    async def live() -> Liveness:
        """The process is up and serving."""
        return Liveness(service=service)

    @app.get("/health/ready", tags=["health"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "a dependency does not answer"}})
    async def readiness() -> Any:
        """200 once the service's dependencies answer (the ledger gateway...), else 503."""
        try:
            if inspect.iscoroutinefunction(ready):
                answer = await ready()
            else:
                answer = await run_in_threadpool(ready)
                if inspect.isawaitable(answer):
                    answer = await answer
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; say why
            answer = f"{type(exc).__name__}: {exc}"
        if answer is True:
            return Readiness(status="ready", service=service)
        reason = answer if isinstance(answer, str) and answer else "not ready"
        return JSONResponse(Readiness(status="unavailable", service=service,
                                      reason=reason).model_dump(), status_code=503)


__all__ = [
    "ANCHORS", "ANCHOR_GAS", "ANCHOR_SECONDS", "JOB_TRANSITIONS", "LEDGER_FAILURES",
    "LEDGER_SECONDS", "Liveness", "RESTARTS_ENV", "Readiness", "ROUND_CURRENT", "ROUND_PHASE", "ROUND_PHASES",
    "ROUND_PHASE_SECONDS", "ROUND_TRANSITIONS", "UPLOAD_BYTES", "clock", "error_code",
    "install_observability", "observe_ledger_call", "round_phase_changed", "scrape",
]
