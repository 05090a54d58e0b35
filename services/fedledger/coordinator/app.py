"""``create_app(settings)``: the coordinator as a FastAPI app.

The lifespan opens the database (migrations applied), the blob store and the Fabric
gateway, then starts the round worker and the chaincode-event follower; it stops them
on shutdown. Everything the coordinator knows survives in the database, the blob folder
and the ledger, so a new app on the same settings resumes where the last one stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fedledger.fabric.waker import EventWaker
from fedledger.web.database import make_engine, migrate
from fedledger.web.errors import install_error_handlers
from fedledger.web.metrics import install_observability
from fedledger.web.signing import RequestVerifier

from .aggregate import adapter_context
from .api import router
from .blobs import BlobStore
from .ledger import WAKE_EVENTS, OperatorLedger
from .loop import CoordinatorLoop
from .rounds import RoundService
from .settings import CoordinatorSettings
from .unlearning import UnlearningService


def create_app(settings: CoordinatorSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url)
        migrate(engine, "fedledger.coordinator")
        blobs = BlobStore(settings.blob_dir)
        msps = settings.org_msps.manager()
        ledger = OperatorLedger.connect(settings.gateway, settings.identity)
        service = RoundService(settings, engine, blobs, ledger)
        unlearning = UnlearningService(service)
        config = service.round_config()
        worker = CoordinatorLoop(service, unlearning, settings.poll_s, warm=lambda: adapter_context(
            config["model"], config["lora"], config["seed"]))
        app.state.settings = settings
        app.state.service = service
        app.state.unlearning = unlearning
        app.state.blobs = blobs
        app.state.verifier = RequestVerifier(msps)
        app.state.org_ids = frozenset(settings.org_msps.resolved())
        app.state.operator_msp = settings.identity.msp_id
        waker = EventWaker(ledger.network, settings.gateway.chaincode, WAKE_EVENTS,
                           service.wake, name="coordinator-events").start() \
            if settings.follow_events else None
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            if waker is not None:
                waker.stop()
            ledger.close()
            engine.dispose()

    app = FastAPI(title="fedledger coordinator", version="0.1.0", lifespan=lifespan,
                  description="Rounds, blob store, aggregation, committee and model registry "
                              "of a fedledger consortium (docs/services.md).")
    install_error_handlers(app)

    def ready() -> bool | str:
        """Started, and the consortium channel answers a query."""
        service: RoundService | None = getattr(app.state, "service", None)
        if service is None:
            return "starting"
        service.ledger.list_orgs()
        return True

    install_observability(app, service="coordinator", ready=ready)
    app.include_router(router)
    return app
