"""``/records/{kind}``: the org's own private-channel records (auditor)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request

from fedledger.fabric.errors import FabricError
from fedledger.ledgers import PrivateLedger
from fedledger.orgnode.auth import Auditor
from fedledger.orgnode.ledger import ledger_error
from fedledger.protocol.orgnode_api import PrivateRecord, RecordKind

router = APIRouter(tags=["records"])


@router.get("/records/{kind}", response_model=list[PrivateRecord])
def records(kind: RecordKind, request: Request, caller: Auditor) -> Sequence[PrivateRecord]:
    private: PrivateLedger = request.app.state.node.ledger.private
    try:
        if kind == "datasets":
            return private.list_datasets()
        if kind == "commitments":
            return [c for d in private.list_datasets()
                    for c in private.list_commitments(d.dataset_id)]
        if kind == "training_records":
            return private.list_training_records()
        if kind == "participation_decisions":
            return private.list_participation_decisions()
        requests = private.list_deletion_requests()
        if kind == "deletion_requests":
            return requests
        return [private.get_unlearning_record(r.request_id)
                for r in requests if r.status == "completed"]
    except FabricError as exc:
        raise ledger_error(f"reading {kind}", exc) from None
