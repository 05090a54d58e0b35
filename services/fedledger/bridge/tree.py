"""The leaves of an anchor, read from the ledgers.

The encoding (leaf kinds, bytes, trees, batches) is :mod:`fedledger.protocol.leaves`,
re-exported here; this module builds leaves from the typed ledgers: the consortium
records of a batch's rounds (what the bridge proposes and every org recomputes), and
one org's private-channel records (read by the org itself: the bridge never reads a
private channel).
"""

from __future__ import annotations

from collections.abc import Iterable

from fedledger.ledgers import ConsortiumLedger, PrivateLedger
from fedledger.protocol.leaves import (
    CONSORTIUM_KINDS,
    PRIVATE_KINDS,
    AnchorBatch,
    Leaf,
    LeafTree,
    consortium_leaf,
    leaf_bytes,
    private_leaf,
    private_state_leaf,
)

__all__ = ["CONSORTIUM_KINDS", "PRIVATE_KINDS", "AnchorBatch", "Leaf", "LeafTree",
           "consortium_leaves", "leaf_bytes", "private_leaves", "private_state_leaf"]


def consortium_leaves(ledger: ConsortiumLedger, round_ids: Iterable[int]) -> list[Leaf]:
    """The consortium-channel records of ``round_ids``, as leaves."""
    leaves: list[Leaf] = []
    for round_id in round_ids:
        leaves.append(consortium_leaf("round", round_id, ledger.get_round(round_id)))
        leaves += [consortium_leaf("submission", round_id, s)
                   for s in ledger.list_submissions(round_id)]
        leaves += [consortium_leaf("vote", round_id, v) for v in ledger.list_votes(round_id)]
        leaves += [consortium_leaf("attestation", round_id, a)
                   for a in ledger.list_attestations(round_id)]
        leaves += [consortium_leaf("model_version", round_id, m)
                   for m in ledger.list_model_versions(round_id)]
        leaves += [consortium_leaf("unlearning_notice", round_id, n)
                   for n in ledger.list_unlearning_notices(round_id)]
    return leaves


def private_leaves(ledger: PrivateLedger) -> list[Leaf]:
    """An org's private-channel records, as leaves (read by the org itself)."""
    datasets = ledger.list_datasets()
    leaves = [private_leaf("dataset", d) for d in datasets]
    for dataset in datasets:
        leaves += [private_leaf("commitment", c)
                   for c in ledger.list_commitments(dataset.dataset_id)]
    leaves += [private_leaf("training_record", t) for t in ledger.list_training_records()]
    requests = ledger.list_deletion_requests()
    leaves += [private_leaf("deletion_request", r) for r in requests]
    for request in requests:
        if request.status in ("executing", "completed"):
            # A request being executed may have no unlearning record yet.
            record = ledger.find_unlearning_record(request.request_id)
            if record is not None:
                leaves.append(private_leaf("unlearning_record", record))
    leaves += [private_leaf("participation_decision", d)
               for d in ledger.list_participation_decisions()]
    return leaves
