"""A small stand-in for the coordinator: only the endpoints of docs/services.md that
the org node's round worker calls, faithful to the contract (signed requests, streamed
uploads checked against X-Content-Sha256, content-addressed blobs, the Round and
aggregate shapes). It acts on Fabric as Org1's client (the operator org): OpenRound,
CloseRound. Aggregation is FedAvg over the ledger-recorded updates sorted by org, then
the round config's server optimizer (first rounds only); ``tamper`` makes it announce a
wrong digest, ``tamper_state`` a wrong server state."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from safetensors.torch import load as load_safetensors

from fedledger.canonical import canonical_digest
from fedledger.coordinator.aggregate import adapter_context
from fedledger.digests import sha256_hex
from fedledger.fabric.msp import MSPManager
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.round import round_server_optimizer
from fedledger.learning.server_optimizers import STEP_KEY
from fedledger.learning.updates import update_bytes
from fedledger.web.errors import Conflict, NotFound, ServiceError, install_error_handlers
from fedledger.web.server import ThreadedServer
from fedledger.web.signing import CONTENT_SHA256, RequestVerifier


class FakeCoordinator:
    def __init__(self, consortium, msps: MSPManager) -> None:  # noqa: ANN001
        self.consortium = consortium
        self.verifier = RequestVerifier(msps)
        self.rounds: dict[int, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.uploads: list[dict[str, Any]] = []   # who uploaded what (verified MSP id)
        self.tamper = False
        self.tamper_state = False  # announce a server state whose step count is off by one
        self.expect = 2        # submissions on the ledger before the round closes
        self._lock = threading.Lock()
        self.app = self._build()

    # --- operator side (called by the test) -----------------------------------------

    def open_round(self, committee: list[str], config: dict[str, Any], *, quorum: int = 1) -> int:
        existing = json.loads(self.consortium.evaluate("ListRounds"))
        round_id = max([r["round_id"] for r in existing], default=0) + 1
        deadline = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = canonical_digest(config)
        self.consortium.submit("OpenRound", json.dumps({
            "round_id": round_id, "config_digest": digest, "deadline": deadline,
            "quorum": quorum, "shard": 0, "committee": committee}))
        self.rounds[round_id] = {
            "round_id": round_id, "status": "open", "deadline": deadline, "quorum": quorum,
            "committee": committee, "config": config, "config_digest": digest, "base": None,
            "shard": 0, "step": round_id, "replay_of": None, "declines": [], "validation": None,
            "submissions": [], "aggregate": None, "attestations": [], "version_id": None,
            "ledger": {"open_tx": None, "close_tx": None, "model_tx": None}, "error": None}
        return round_id

    # --- the protocol -----------------------------------------------------------------

    def _ledger_submissions(self, round_id: int) -> list[dict[str, Any]]:
        return json.loads(self.consortium.evaluate("ListSubmissions", str(round_id)))

    def _maybe_aggregate(self, round_id: int) -> None:
        round_ = self.rounds[round_id]
        if round_["aggregate"] is not None:
            return
        submissions = [s for s in self._ledger_submissions(round_id)
                       if s["update_hash"] in self.blobs]
        if len(submissions) < self.expect:
            return
        self.consortium.submit("CloseRound", str(round_id))
        round_["status"] = "closed"
        included = sorted(({"org": s["org"], "update_hash": s["update_hash"],
                            "num_samples": s["num_samples"]} for s in submissions),
                          key=lambda i: i["org"])
        updates = [ClientUpdate(i["org"], load_safetensors(self.blobs[i["update_hash"]]),
                                i["num_samples"]) for i in included]
        aggregate = build_strategy("fedavg").aggregate(updates).tensors
        config = round_["config"]
        server = round_server_optimizer(config.get("server_optimizer"))
        state_digest = None
        if server is not None:
            # First rounds only (base None): the step starts from the LoRA init.
            start = adapter_context(config["model"], config["lora"], config["seed"]).initial_state
            stepped = server.step(start, aggregate, None)
            aggregate, state = stepped.tensors, dict(stepped.state)
            if self.tamper_state:
                state[STEP_KEY] = state[STEP_KEY] + 1
            state_data = update_bytes(state)
            state_digest = sha256_hex(state_data)
            self.blobs[state_digest] = state_data
        data = update_bytes(aggregate)
        digest = sha256_hex(data)
        if self.tamper:
            digest = hashlib.sha256(b"tampered" + data).hexdigest()
        self.blobs[sha256_hex(data)] = data
        round_["aggregate"] = {"round_id": round_id, "aggregate_digest": digest,
                               "server_state_digest": state_digest,
                               "included": included, "strategy": {"name": "fedavg", "params": {}},
                               "accepted": [i["org"] for i in included], "rejected": {}}
        round_["status"] = "aggregated"

    def _public(self, round_id: int) -> dict[str, Any]:
        round_ = dict(self.rounds[round_id])
        round_["submissions"] = [{"org": s["org"], "update_hash": s["update_hash"],
                                  "num_samples": s["num_samples"], "on_ledger": True}
                                 for s in self._ledger_submissions(round_id)]
        agg = round_["aggregate"]
        round_["aggregate"] = None if agg is None else {
            "aggregate_digest": agg["aggregate_digest"],
            "included": [i["org"] for i in agg["included"]], "strategy": agg["strategy"]["name"]}
        return round_

    def _build(self) -> FastAPI:
        app = FastAPI()
        install_error_handlers(app)

        def verify(request: Request, body_sha256: str):  # noqa: ANN202
            path = request.scope["raw_path"].decode()
            if request.url.query:
                path += "?" + request.url.query
            return self.verifier.verify(request.method, path, request.headers, body_sha256)

        empty = hashlib.sha256(b"").hexdigest()

        @app.get("/rounds/current")
        def current(request: Request) -> dict:
            verify(request, empty)
            with self._lock:
                open_ = [r for r in self.rounds.values() if r["status"] == "open"]
                if not open_:
                    raise NotFound("no open round")
                return self._public(open_[-1]["round_id"])

        @app.get("/rounds/{round_id}")
        def get_round(round_id: int, request: Request) -> dict:
            verify(request, empty)
            with self._lock:
                if round_id not in self.rounds:
                    raise NotFound(f"round {round_id} not found")
                return self._public(round_id)

        @app.get("/rounds/{round_id}/aggregate")
        def aggregate(round_id: int, request: Request) -> dict:
            verify(request, empty)
            with self._lock:
                if round_id not in self.rounds:
                    raise NotFound(f"round {round_id} not found")
                self._maybe_aggregate(round_id)
                agg = self.rounds[round_id]["aggregate"]
                if agg is None:
                    raise NotFound(f"round {round_id} is not aggregated yet")
                return agg

        @app.put("/rounds/{round_id}/updates", status_code=201)
        async def put_update(round_id: int, request: Request) -> Response:
            declared = request.headers.get(CONTENT_SHA256)
            if not declared:
                raise ServiceError("X-Content-Sha256 is required")
            caller = verify(request, declared)
            hasher, data = hashlib.sha256(), bytearray()
            async for chunk in request.stream():
                hasher.update(chunk)
                data += chunk
            if hasher.hexdigest() != declared:
                raise ServiceError("the body does not match X-Content-Sha256")
            with self._lock:
                round_ = self.rounds.get(round_id)
                if round_ is None or round_["status"] != "open":
                    raise Conflict(f"round {round_id} is not open")
                previous = [u for u in self.uploads
                            if u["round_id"] == round_id and u["org"] == caller.msp_id]
                if previous and previous[0]["update_hash"] != declared:
                    raise Conflict(f"{caller.msp_id} already uploaded another update")
                self.blobs[declared] = bytes(data)
                if not previous:
                    self.uploads.append({"round_id": round_id, "org": caller.msp_id,
                                         "update_hash": declared,
                                         "num_samples": int(request.headers["X-Num-Samples"])})
            return JSONResponse({"update_hash": declared}, status_code=200 if previous else 201)

        @app.get("/blobs/{sha256}")
        def blob(sha256: str, request: Request) -> Response:
            verify(request, empty)
            if sha256 not in self.blobs:
                raise NotFound(f"blob {sha256} not found")
            return Response(self.blobs[sha256], media_type="application/octet-stream")

        return app


@contextmanager
def serving(consortium, msps: MSPManager, *, expect: int = 2) -> Iterator[FakeCoordinator]:  # noqa: ANN001
    """A FakeCoordinator served on a free loopback port (``.url``) until the block ends;
    ``expect``: submissions on the ledger before it closes a round."""
    fake = FakeCoordinator(consortium, msps)
    fake.expect = expect
    server = ThreadedServer(fake.app).start()
    fake.url = server.url
    try:
        yield fake
    finally:
        server.stop()
