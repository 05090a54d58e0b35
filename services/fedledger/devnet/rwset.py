"""Transaction simulation: record what a chaincode reads and writes as a Fabric rwset.

Semantics follow Fabric's LevelDB ``txSimulator``:

* every read records ``KVRead{key, version}`` of the *committed* state (a missing key is
  a read without a version); reads never see the transaction's own writes -- Fabric has
  no read-your-own-writes, so ``get_state`` after ``put_state`` returns the committed
  value;
* ``put_state`` with an empty value is a delete (Fabric's ``IsDelete: len(value) == 0``);
* a range query records a ``RangeQueryInfo`` with its raw reads, so an insert or delete
  inside the range by another transaction is caught at commit (phantom read);
* ``set_state_metadata`` records a ``KVMetadataWrite``; as in Fabric the transaction's
  metadata for a key replaces the committed metadata map of that key;
* private data is recorded hashed (sha256 of key and value) in a
  ``CollectionHashedReadWriteSet``; the cleartext writes travel separately
  (``SimulationResults.private_writes``), as gossip would carry them.

The simulator reads through a :class:`StateView` the ledger provides; it holds no
snapshot, so a commit between two reads shows up as an MVCC conflict at validation,
which is the outcome Fabric's read lock would also lead to (a retry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from fedledger.fabric.errors import FabricError, PermissionDeniedError

__all__ = [
    "IMPLICIT_COLLECTION_PREFIX", "CollectionAccess", "ImplicitCollections", "PrivateWrites",
    "SimulationResults", "StateView", "TxSimulator", "Version", "implicit_collection",
    "key_hash", "private_rwset_bytes", "value_hash",
]

Version = tuple[int, int]
"""(block number, transaction number) of the transaction that last wrote a key."""

PrivateWrites = dict[tuple[str, str], dict[str, bytes | None]]
"""Cleartext private writes of one transaction: (namespace, collection) -> key -> value
(None for a delete)."""

IMPLICIT_COLLECTION_PREFIX = "_implicit_org_"


def implicit_collection(msp_id: str) -> str:
    """Name of an organisation's implicit private data collection."""
    return IMPLICIT_COLLECTION_PREFIX + msp_id


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def value_hash(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class StateView(Protocol):
    """Read-only access to committed state, as the ledger gives it to a simulator."""

    def get_versioned(self, ns: str, key: str) -> tuple[bytes, Version] | None: ...
    def range_versioned(self, ns: str, start: str,
                        end: str) -> list[tuple[str, bytes, Version]]: ...
    def get_metadata(self, ns: str, key: str) -> dict[str, bytes]: ...
    def get_private(self, ns: str, coll: str, key: str) -> tuple[bytes, Version] | None: ...
    def get_private_hash(self, ns: str, coll: str,
                         key_hash: bytes) -> tuple[bytes, Version] | None: ...


class CollectionAccess(Protocol):
    """Which private data collections exist and who may read them."""

    def check_known(self, ns: str, coll: str) -> None:
        """Raise ``FabricError`` if ``coll`` is not a collection of ``ns``."""

    def may_read(self, ns: str, coll: str, msp_id: str | None) -> bool: ...


@dataclass(frozen=True)
class ImplicitCollections:
    """Only implicit org collections, ``_implicit_org_<MSPID>``; readable by that org.

    ``msp_ids`` limits them to the channel's organisations (None: any MSP id).
    """

    msp_ids: frozenset[str] | None = None

    def check_known(self, ns: str, coll: str) -> None:
        prefix = IMPLICIT_COLLECTION_PREFIX
        msp = coll[len(prefix):] if coll.startswith(prefix) else ""
        if not msp or (self.msp_ids is not None and msp not in self.msp_ids):
            raise FabricError(f"collection {coll!r} is not defined for chaincode {ns!r}",
                              step="simulate")

    def may_read(self, ns: str, coll: str, msp_id: str | None) -> bool:
        return msp_id is not None and coll == implicit_collection(msp_id)


@dataclass
class SimulationResults:
    """The outcome of one simulation: what goes into the proposal response, and the
    cleartext private writes that must reach the committing peers out of band."""

    public_rwset: rwset_pb2.TxReadWriteSet
    private_writes: PrivateWrites = field(default_factory=dict)


@dataclass
class _NsRecord:
    reads: dict[str, Version | None] = field(default_factory=dict)
    ranges: list[kv_rwset_pb2.RangeQueryInfo] = field(default_factory=list)
    writes: dict[str, bytes | None] = field(default_factory=dict)
    metadata: dict[str, dict[str, bytes]] = field(default_factory=dict)
    # collection -> key hash -> version; collection -> key -> cleartext value
    private_reads: dict[str, dict[bytes, Version | None]] = field(default_factory=dict)
    private_writes: dict[str, dict[str, bytes | None]] = field(default_factory=dict)


def _kv_read(key: str, version: Version | None) -> kv_rwset_pb2.KVRead:
    read = kv_rwset_pb2.KVRead(key=key)
    if version is not None:
        read.version.block_num, read.version.tx_num = version
    return read


class TxSimulator:
    """Records one transaction's reads and writes against committed state."""

    def __init__(self, state: StateView, *, private_reader_msp: str | None = None,
                 collections: CollectionAccess | None = None, tx_id: str | None = None) -> None:
        self._state = state
        self._reader_msp = private_reader_msp
        self._collections: CollectionAccess = collections or ImplicitCollections()
        self._tx_id = tx_id
        self._ns: dict[str, _NsRecord] = {}
        self._done = False

    @property
    def private_reader_msp(self) -> str | None:
        return self._reader_msp

    def _record(self, ns: str) -> _NsRecord:
        if self._done:
            raise FabricError("the simulation has finished; this simulator cannot be used",
                              tx_id=self._tx_id, step="simulate")
        rec = self._ns.get(ns)
        if rec is None:
            rec = self._ns[ns] = _NsRecord()
        return rec

    def _check_key(self, key: str) -> None:
        if not key:
            raise FabricError("key must not be empty", tx_id=self._tx_id, step="simulate")

    # -- public state ----------------------------------------------------------------

    def get_state(self, ns: str, key: str) -> bytes | None:
        rec = self._record(ns)
        found = self._state.get_versioned(ns, key)
        rec.reads[key] = found[1] if found else None
        return found[0] if found else None

    def put_state(self, ns: str, key: str, value: bytes) -> None:
        self._check_key(key)
        self._record(ns).writes[key] = bytes(value) if value else None

    def del_state(self, ns: str, key: str) -> None:
        self._check_key(key)
        self._record(ns).writes[key] = None

    def get_state_range(self, ns: str, start: str, end: str) -> list[tuple[str, bytes]]:
        """Keys in ``[start, end)`` in byte order; ``""`` leaves that side open."""
        rec = self._record(ns)
        rows = self._state.range_versioned(ns, start, end)
        info = kv_rwset_pb2.RangeQueryInfo(start_key=start, end_key=end, itr_exhausted=True)
        info.raw_reads.kv_reads.extend(_kv_read(k, v) for k, _, v in rows)
        rec.ranges.append(info)
        return [(k, value) for k, value, _ in rows]

    def get_state_metadata(self, ns: str, key: str) -> dict[str, bytes]:
        rec = self._record(ns)
        # Fabric records the key's version as a read: metadata and value share it.
        found = self._state.get_versioned(ns, key)
        rec.reads[key] = found[1] if found else None
        return self._state.get_metadata(ns, key) if found else {}

    def set_state_metadata(self, ns: str, key: str, name: str, value: bytes) -> None:
        self._check_key(key)
        self._record(ns).metadata.setdefault(key, {})[name] = bytes(value)

    # -- private data ----------------------------------------------------------------

    def _check_collection(self, ns: str, coll: str) -> None:
        try:
            self._collections.check_known(ns, coll)
        except FabricError as exc:
            if exc.tx_id is None:
                exc.tx_id = self._tx_id
            raise

    def get_private_data(self, ns: str, coll: str, key: str) -> bytes | None:
        rec = self._record(ns)
        self._check_collection(ns, coll)
        if not self._collections.may_read(ns, coll, self._reader_msp):
            who = self._reader_msp or "a peer of no organisation"
            raise PermissionDeniedError(
                f"{who} is not a member of private data collection {coll!r} of {ns!r}; "
                "only members may read its cleartext (the hash is public)",
                tx_id=self._tx_id, step="simulate")
        khash = key_hash(key)
        hashed = self._state.get_private_hash(ns, coll, khash)
        rec.private_reads.setdefault(coll, {})[khash] = hashed[1] if hashed else None
        if hashed is None:
            return None
        found = self._state.get_private(ns, coll, key)
        if found is None or found[1] != hashed[1]:
            # Fabric: "private data matching public hash version is not available".
            raise FabricError(f"private data of {ns}/{coll} key {key!r} matching the public hash "
                              f"version {hashed[1]} is not available", tx_id=self._tx_id,
                              step="simulate")
        return found[0]

    def get_private_data_hash(self, ns: str, coll: str, key: str) -> bytes | None:
        rec = self._record(ns)
        self._check_collection(ns, coll)
        khash = key_hash(key)
        hashed = self._state.get_private_hash(ns, coll, khash)
        rec.private_reads.setdefault(coll, {})[khash] = hashed[1] if hashed else None
        return hashed[0] if hashed else None

    def put_private_data(self, ns: str, coll: str, key: str, value: bytes) -> None:
        self._check_key(key)
        rec = self._record(ns)
        self._check_collection(ns, coll)
        rec.private_writes.setdefault(coll, {})[key] = bytes(value) if value else None

    def del_private_data(self, ns: str, coll: str, key: str) -> None:
        self._check_key(key)
        rec = self._record(ns)
        self._check_collection(ns, coll)
        rec.private_writes.setdefault(coll, {})[key] = None

    # -- results ---------------------------------------------------------------------

    def results(self) -> SimulationResults:
        """The transaction's rwset (namespaces, keys and collections sorted, as Fabric's
        rwset builder does); the simulator is finished afterwards."""
        if self._done:
            raise FabricError("results() was already called", tx_id=self._tx_id, step="simulate")
        self._done = True
        txrw = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.KV)
        private: PrivateWrites = {}
        for ns in sorted(self._ns):
            rec = self._ns[ns]
            kv = kv_rwset_pb2.KVRWSet()
            kv.reads.extend(_kv_read(k, rec.reads[k]) for k in sorted(rec.reads))
            kv.range_queries_info.extend(rec.ranges)
            kv.writes.extend(_kv_write(k, rec.writes[k]) for k in sorted(rec.writes))
            kv.metadata_writes.extend(
                _metadata_write(k, rec.metadata[k]) for k in sorted(rec.metadata))
            nsrw = txrw.ns_rwset.add(namespace=ns, rwset=kv.SerializeToString())
            for coll in sorted(set(rec.private_reads) | set(rec.private_writes)):
                writes = rec.private_writes.get(coll, {})
                nsrw.collection_hashed_rwset.append(
                    _hashed_collection(coll, rec.private_reads.get(coll, {}), writes))
                if writes:
                    private[(ns, coll)] = dict(writes)
        return SimulationResults(public_rwset=txrw, private_writes=private)


def _kv_write(key: str, value: bytes | None) -> kv_rwset_pb2.KVWrite:
    if value is None:
        return kv_rwset_pb2.KVWrite(key=key, is_delete=True)
    return kv_rwset_pb2.KVWrite(key=key, value=value)


def _metadata_write(key: str, entries: dict[str, bytes]) -> kv_rwset_pb2.KVMetadataWrite:
    return kv_rwset_pb2.KVMetadataWrite(
        key=key,
        entries=[kv_rwset_pb2.KVMetadataEntry(name=n, value=entries[n]) for n in sorted(entries)])


def private_rwset_bytes(writes: dict[str, bytes | None]) -> bytes:
    """The cleartext collection rwset (writes only, sorted) whose hash is ``pvt_rwset_hash``."""
    kv = kv_rwset_pb2.KVRWSet()
    kv.writes.extend(_kv_write(k, writes[k]) for k in sorted(writes))
    return kv.SerializeToString()


def _hashed_collection(coll: str, reads: dict[bytes, Version | None],
                       writes: dict[str, bytes | None]) -> rwset_pb2.CollectionHashedReadWriteSet:
    hashed = kv_rwset_pb2.HashedRWSet()
    for khash in sorted(reads):
        read = hashed.hashed_reads.add(key_hash=khash)
        version = reads[khash]
        if version is not None:
            read.version.block_num, read.version.tx_num = version
    hashed_writes: Iterable[tuple[bytes, bytes | None]] = sorted(
        ((key_hash(k), v) for k, v in writes.items()), key=lambda kv: kv[0])
    for khash, value in hashed_writes:
        if value is None:
            hashed.hashed_writes.add(key_hash=khash, is_delete=True)
        else:
            hashed.hashed_writes.add(key_hash=khash, value_hash=value_hash(value))
    out = rwset_pb2.CollectionHashedReadWriteSet(collection_name=coll,
                                                 hashed_rwset=hashed.SerializeToString())
    if writes:
        out.pvt_rwset_hash = hashlib.sha256(private_rwset_bytes(writes)).digest()
    return out
