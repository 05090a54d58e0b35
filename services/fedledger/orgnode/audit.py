"""The compliance auditor's queries of one org (API: :mod:`fedledger.orgnode.routes.audit`).

Everything here reads this org's own database and ledger view: an org node holds only
its own private channel and requests, so an auditor of org A learns nothing of org B.

* :func:`request_status` -- request R: the ledger's records (request, unlearning
  record, notice), the execution history with transaction ids, metrics, versions;
* :func:`subject_requests` -- every request about data subject S;
* :func:`lineage` -- model version V and its ancestors from the consortium channel;
* :func:`sample_evidence` -- is sample x committed in version V: a membership or
  non-membership proof against the root V lists;
* :func:`request_bundle` / :func:`sample_bundle` -- the same as
  :class:`~fedledger.audit.bundle.AuditBundle` s, with every record proven under an
  anchored root, for ``fedledger verify``.

Proof packages are built from what this org keeps (:mod:`fedledger.orgnode.proofstore`:
the batches it signed, the private-state trees it published) and the anchor receipts on
the consortium channel; nothing is asked of the bridge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.audit.bundle import AuditBundle, SampleEvidence
from fedledger.audit.proofs import ProofPackage, consortium_package, private_package, receipt_ref
from fedledger.bridge.agents import OrgAnchorAgent
from fedledger.bridge.tree import LeafTree, leaf_bytes
from fedledger.fabric.errors import FabricError, RecordNotFoundError
from fedledger.learning.unlearning import shard_of
from fedledger.merkle import MembershipProof, SortedMerkleTree
from fedledger.orgnode.deletions import deletion_public
from fedledger.orgnode.ledger import OrgLedger, ledger_error
from fedledger.orgnode.models import CommitmentRow, DatasetRow, DeletionRow, SignedBatch
from fedledger.orgnode.proofstore import SqlAnchorStore
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.protocol.leaves import consortium_leaf, private_leaf
from fedledger.protocol.orgnode_api import (
    AuditRequestStatus,
    LedgerOnlyRequest,
    LedgerRequest,
    RequestLedgerView,
)
from fedledger.protocol.records import AnchorReceipt, ModelVersion, UnlearningNotice
from fedledger.web.errors import Conflict, NotFound

T = TypeVar("T")


class NotAnchored(Conflict):
    code = "not_anchored"


class AuditDeps(Protocol):
    """What the audit queries read: the org's settings, database, ledgers, anchor agent
    and the anchors it signed (the :class:`~fedledger.orgnode.node.OrgNode` has them)."""

    @property
    def settings(self) -> OrgNodeSettings: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def ledger(self) -> OrgLedger: ...

    @property
    def agent(self) -> OrgAnchorAgent | None: ...

    @property
    def anchor_store(self) -> SqlAnchorStore: ...


def _read(action: str, query: Callable[[], T]) -> T:
    """A ledger query; a failure is the HTTP answer :func:`ledger_error` makes of it."""
    try:
        return query()
    except FabricError as exc:
        raise ledger_error(action, exc) from None


def _notice(node: AuditDeps, notice_id: str | None) -> UnlearningNotice | None:
    """The request's unlearning notice on the consortium channel (None: not filed)."""
    if notice_id is None:
        return None
    consortium = node.ledger.consortium

    def find() -> UnlearningNotice | None:
        try:
            return consortium.get_unlearning_notice(notice_id)
        except RecordNotFoundError:
            return None

    return _read("reading the unlearning notice", find)


def _request_row(node: AuditDeps, request_id: str) -> DeletionRow:
    with node.sessions() as session:
        row = session.get(DeletionRow, request_id)
        if row is None:
            raise NotFound(f"no deletion request {request_id} at {node.settings.msp_id}",
                           details={"request_id": request_id})
        session.expunge(row)
        return row


def request_status(node: AuditDeps, request_id: str) -> AuditRequestStatus:
    """Status and history of request R, with what the ledgers hold about it."""
    row = _request_row(node, request_id)
    private = node.ledger.private
    notice = _notice(node, row.notice_id)
    return AuditRequestStatus.model_validate({
        **deletion_public(row), "org": node.settings.msp_id,
        "ledger": RequestLedgerView(
            request=_read("reading the deletion request",
                          lambda: private.find_deletion_request(request_id)),
            unlearning_record=_read("reading the unlearning record",
                                    lambda: private.find_unlearning_record(request_id)),
            notice=notice)})


def subject_requests(node: AuditDeps, subject_id: str
                     ) -> list[AuditRequestStatus | LedgerOnlyRequest]:
    with node.sessions() as session:
        ids = list(session.scalars(select(DeletionRow.request_id).where(
            DeletionRow.subject_id == subject_id).order_by(DeletionRow.created_at)))
    private = node.ledger.private
    on_ledger = {r.request_id: r for r in _read(
        "reading the deletion requests", lambda: private.list_deletion_requests(subject_id))}
    out: list[AuditRequestStatus | LedgerOnlyRequest] = [
        request_status(node, request_id) for request_id in ids]
    known = set(ids)
    # Requests on the ledger this node has no row for (filed by another tool) still show.
    out += [LedgerOnlyRequest(request_id=rid, status=rec.status,
                              ledger=LedgerRequest(request=rec))
            for rid, rec in sorted(on_ledger.items()) if rid not in known]
    return out


def model_version(node: AuditDeps, version_id: str) -> ModelVersion:
    consortium = node.ledger.consortium
    version = _read("reading the model version",
                    lambda: consortium.find_model_version(version_id))
    if version is None:
        raise NotFound(f"model version {version_id} is not on the consortium channel")
    return version


def lineage(node: AuditDeps, version_id: str) -> list[ModelVersion]:
    model_version(node, version_id)
    consortium = node.ledger.consortium
    return _read("reading the lineage", lambda: consortium.get_lineage(version_id))


def sample_evidence(node: AuditDeps, version: ModelVersion, dataset_id: str,
                    sample_id: str) -> SampleEvidence:
    """Is ``sample_id`` of this org's ``dataset_id`` committed in ``version``: a proof
    against the root the version lists for its (dataset, shard, slice)."""
    org = node.settings.msp_id
    with node.sessions() as session:
        dataset = session.get(DatasetRow, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} not found at {org}")
        shard = shard_of(sample_id, dataset.shards, node.settings.shard_key)
        listed = [r for r in version.commitment_roots
                  if r.org == org and r.dataset_id == dataset_id and r.shard == shard]
        if not listed:
            return SampleEvidence(org=org, dataset_id=dataset_id, sample_id=sample_id,
                                  shard=shard, slice=0, member=False, root=None, salt=None)
        entry = listed[0]
        commitment = session.scalars(select(CommitmentRow).where(
            CommitmentRow.dataset_id == dataset_id, CommitmentRow.shard == shard,
            CommitmentRow.root == entry.root)).first()
        if commitment is None:
            raise Conflict(f"model version {version.version_id} lists root "
                           f"{entry.root} for {dataset_id} shard {shard}, which {org} "
                           "never committed")
        salt = bytes.fromhex(dataset.salt)
        proof = SortedMerkleTree(list(commitment.sample_ids), salt=salt).prove(sample_id)
    return SampleEvidence(org=org, dataset_id=dataset_id, sample_id=sample_id, shard=shard,
                          slice=entry.slice, member=isinstance(proof, MembershipProof),
                          root=entry.root, salt=salt.hex(), proof=proof.to_dict())


# --------------------------------------------------------------------------- proofs


def _anchored_batches(node: AuditDeps) -> list[tuple[AnchorReceipt, SignedBatch]]:
    """(receipt, the batch this org signed for it), newest first."""
    receipts = _read("reading the anchor receipts", node.ledger.consortium.list_anchor_receipts)
    out = []
    for receipt in sorted(receipts, key=lambda r: r.first_round, reverse=True):
        batch = node.anchor_store.signed_batch(receipt.merkle_root)
        if batch is not None:
            out.append((receipt, batch))
    return out


def consortium_record_package(node: AuditDeps, leaf: dict[str, Any]) -> ProofPackage:
    target = leaf_bytes(leaf)
    for receipt, batch in _anchored_batches(node):
        if any(leaf_bytes(candidate) == target for candidate in batch.leaves):
            return consortium_package(list(batch.leaves), receipt_ref(receipt), leaf)
    raise NotAnchored(f"the {leaf['kind']} record of round {leaf.get('round_id')} is not in "
                      "an anchor yet (anchors follow final rounds: retry after the next one)")


def private_record_package(node: AuditDeps, leaf: dict[str, Any]) -> ProofPackage:
    """The newest anchor whose private-state leaf of this org covers ``leaf``."""
    target = leaf_bytes(leaf)
    agent = node.agent
    for receipt, batch in _anchored_batches(node):
        for state in batch.leaves:
            if state.get("kind") != "private_state" or state.get("org") != node.settings.msp_id:
                continue
            leaves = node.anchor_store.private_state_leaves(state["root"])
            if leaves is None or not any(leaf_bytes(x) == target for x in leaves):
                continue
            tree = agent.private_tree(state["root"]) if agent else LeafTree.of(leaves)
            return private_package(list(batch.leaves), receipt_ref(receipt), leaf, tree, state)
    raise NotAnchored(f"this org's {leaf['kind']} record is not in an anchor yet (the "
                      "private state is anchored with the next final round)")


def _model_version_package(node: AuditDeps, version: ModelVersion) -> ProofPackage:
    return consortium_record_package(node, consortium_leaf("model_version", version.round_id,
                                                           version))


def request_bundle(node: AuditDeps, request_id: str) -> AuditBundle:
    """What happened to request R, as proofs against the public chain."""
    row = _request_row(node, request_id)
    if row.status != "completed":
        raise Conflict(f"deletion request {request_id} is {row.status}: a proof comes once "
                       "it is completed", code="not_completed")
    private = node.ledger.private
    request = _read("reading the deletion request",
                    lambda: private.find_deletion_request(request_id))
    unlearning = _read("reading the unlearning record",
                       lambda: private.find_unlearning_record(request_id))
    new_version = (row.coordinator or {}).get("new_version")
    if new_version is None:
        raise Conflict(f"deletion request {request_id} completed before any model version "
                       "existed: there is no version to prove it against", code="no_version")
    version = model_version(node, new_version)
    if request is None or unlearning is None:
        missing = "deletion request" if request is None else "unlearning record"
        raise NotAnchored(f"the {missing} of {request_id} is not on the private channel, so "
                          "not in an anchor")
    records = {
        "deletion_request": private_record_package(
            node, private_leaf("deletion_request", request)),
        "unlearning_record": private_record_package(
            node, private_leaf("unlearning_record", unlearning)),
    }
    notice = _notice(node, row.notice_id)
    if notice is not None:
        records["unlearning_notice"] = consortium_record_package(
            node, consortium_leaf("unlearning_notice", notice.round_id, notice))
    samples = [sample_evidence(node, version, row.dataset_id, sid) for sid in row.sample_ids]
    return AuditBundle(kind="deletion_request", org=node.settings.msp_id, request_id=request_id,
                       model_version=_model_version_package(node, version), records=records,
                       samples=samples)


def sample_bundle(node: AuditDeps, version_id: str, dataset_id: str, sample_id: str
                  ) -> AuditBundle:
    version = model_version(node, version_id)
    evidence = sample_evidence(node, version, dataset_id, sample_id)
    return AuditBundle(kind="sample", org=node.settings.msp_id,
                       model_version=_model_version_package(node, version), samples=[evidence])
