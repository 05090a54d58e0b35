"""``create_app(settings)``: the org node's FastAPI app. The lifespan builds the
:class:`~fedledger.orgnode.node.OrgNode` (migrations, bootstrap admin, ledger ``Init``,
anchor agent) and starts the round worker; shutdown stops it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from prometheus_client.core import GaugeMetricFamily
from starlette.concurrency import run_in_threadpool

from fedledger.orgnode import anchoring
from fedledger.orgnode.node import OrgNode
from fedledger.orgnode.routes import audit, datasets, deletions, records, users, work
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.protocol.orgnode_api import Health
from fedledger.web.errors import install_error_handlers
from fedledger.web.metrics import install_observability


def _job_states(app: FastAPI) -> GaugeMetricFamily:
    """``fedledger_orgnode_jobs{state}``: the node's round jobs by state, from its database
    (so a restarted node reports the jobs it already has)."""
    family = GaugeMetricFamily("fedledger_orgnode_jobs", "Round jobs on this node, by state.",
                               labels=["state"])
    node: OrgNode | None = getattr(app.state, "node", None)
    if node is not None:
        for state, count in node.jobs.counts().items():
            family.add_metric([state], count)
    return family


def create_app(settings: OrgNodeSettings, *, start_worker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads is not None:
            import torch

            torch.set_num_threads(settings.torch_threads)
        node = await run_in_threadpool(OrgNode, settings, start_worker=start_worker)
        app.state.node = node
        try:
            yield
        finally:
            await run_in_threadpool(node.close)

    app = FastAPI(title=f"fedledger org node {settings.msp_id}", lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/health", tags=["health"])
    def health(request: Request) -> Health:
        return Health(status="ok", service="orgnode", org=settings.msp_id)

    def ready() -> bool | str:
        """Started, and the org's private channel answers a query."""
        node: OrgNode | None = getattr(app.state, "node", None)
        if node is None:
            return "starting"
        node.ledger.private.get_owner()
        return True

    install_observability(app, service="orgnode", ready=ready,
                          extra=lambda: [_job_states(app)])

    for module in (users, datasets, deletions, work, records, audit, anchoring):
        app.include_router(module.router)
    return app
