"""``/records/{kind}``: the org's own private-channel records (auditor)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from fedledger.fabric.errors import FabricError
from fedledger.orgnode.auth import Auditor
from fedledger.orgnode.ledger import ledger_error
from fedledger.protocol.orgnode_api import PrivateRecord, RecordKind

router = APIRouter(tags=["records"])


@router.get("/records/{kind}", response_model=list[PrivateRecord])
def records(kind: RecordKind, request: Request, caller: Auditor) -> list[Any]:
    ledger = request.app.state.node.ledger
    try:
        if kind == "datasets":
            return ledger.query_private("ListDatasets")
        if kind == "commitments":
            return [c for d in ledger.query_private("ListDatasets")
                    for c in ledger.query_private("ListCommitments", d["dataset_id"])]
        if kind == "training_records":
            return ledger.query_private("ListTrainingRecords")
        if kind == "participation_decisions":
            return ledger.query_private("ListParticipationDecisions")
        requests = ledger.query_private("ListDeletionRequests")
        if kind == "deletion_requests":
            return requests
        return [ledger.query_private("GetUnlearningRecord", r["request_id"])
                for r in requests if r["status"] == "completed"]
    except FabricError as exc:
        raise ledger_error(f"reading {kind}", exc) from None
