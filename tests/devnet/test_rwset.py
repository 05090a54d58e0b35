"""TxSimulator: Fabric's recording of reads, writes, ranges, metadata and private data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from fedledger.devnet.rwset import (
    ImplicitCollections,
    TxSimulator,
    Version,
    implicit_collection,
    private_rwset_bytes,
)
from fedledger.fabric.errors import FabricError, PermissionDeniedError

ORG1 = implicit_collection("Org1MSP")
ORG2 = implicit_collection("Org2MSP")


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


@dataclass
class FakeState:
    state: dict[tuple[str, str], tuple[bytes, Version]] = field(default_factory=dict)
    metadata: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    private: dict[tuple[str, str, str], tuple[bytes, Version]] = field(default_factory=dict)

    def get_versioned(self, ns: str, key: str) -> tuple[bytes, Version] | None:
        return self.state.get((ns, key))

    def range_versioned(self, ns: str, start: str, end: str) -> list[tuple[str, bytes, Version]]:
        return sorted((k, v, ver) for (n, k), (v, ver) in self.state.items()
                      if n == ns and (not start or k >= start) and (not end or k < end))

    def get_metadata(self, ns: str, key: str) -> dict[str, bytes]:
        return dict(self.metadata.get((ns, key), {}))

    def get_private(self, ns: str, coll: str, key: str) -> tuple[bytes, Version] | None:
        return self.private.get((ns, coll, key))

    def get_private_hash(self, ns: str, coll: str, key_hash: bytes) -> tuple[bytes, Version] | None:
        for (n, c, k), (v, ver) in self.private.items():
            if n == ns and c == coll and sha(k.encode()) == key_hash:
                return sha(v), ver
        return None


@pytest.fixture
def state() -> FakeState:
    s = FakeState()
    s.state[("cc", "a")] = (b"A", (1, 0))
    s.state[("cc", "b")] = (b"B", (1, 1))
    s.state[("cc", "c")] = (b"C", (2, 0))
    s.state[("other", "x")] = (b"X", (3, 4))
    s.metadata[("cc", "a")] = {"VALIDATION_PARAMETER": b"policy"}
    s.private[("cc", ORG1, "secret")] = (b"s1", (2, 1))
    s.private[("cc", ORG2, "theirs")] = (b"t2", (2, 2))
    return s


def kvset(results, ns: str) -> kv_rwset_pb2.KVRWSet:  # type: ignore[no-untyped-def]
    for nsrw in results.public_rwset.ns_rwset:
        if nsrw.namespace == ns:
            return kv_rwset_pb2.KVRWSet.FromString(nsrw.rwset)
    raise AssertionError(f"no namespace {ns}")


def test_reads_record_versions_and_missing_keys(state: FakeState) -> None:
    sim = TxSimulator(state)
    assert sim.get_state("cc", "b") == b"B"
    assert sim.get_state("cc", "a") == b"A"
    assert sim.get_state("cc", "nope") is None
    res = sim.results()
    assert res.public_rwset.data_model == rwset_pb2.TxReadWriteSet.KV
    kv = kvset(res, "cc")
    assert [(r.key, r.HasField("version")) for r in kv.reads] == [
        ("a", True), ("b", True), ("nope", False)]
    assert (kv.reads[1].version.block_num, kv.reads[1].version.tx_num) == (1, 1)
    assert not kv.writes


def test_get_after_put_returns_committed_value(state: FakeState) -> None:
    sim = TxSimulator(state)
    sim.put_state("cc", "a", b"new")
    assert sim.get_state("cc", "a") == b"A"       # Fabric: no read-your-own-writes
    sim.put_state("cc", "fresh", b"1")
    assert sim.get_state("cc", "fresh") is None
    kv = kvset(sim.results(), "cc")
    assert [(w.key, w.value) for w in kv.writes] == [("a", b"new"), ("fresh", b"1")]
    assert {r.key for r in kv.reads} == {"a", "fresh"}


def test_writes_deletes_and_empty_value_is_delete(state: FakeState) -> None:
    sim = TxSimulator(state)
    sim.put_state("cc", "z", b"1")
    sim.del_state("cc", "b")
    sim.put_state("cc", "e", b"")
    kv = kvset(sim.results(), "cc")
    assert [(w.key, w.is_delete, w.value) for w in kv.writes] == [
        ("b", True, b""), ("e", True, b""), ("z", False, b"1")]
    with pytest.raises(FabricError):
        TxSimulator(state).put_state("cc", "", b"x")


def test_namespaces_sorted(state: FakeState) -> None:
    sim = TxSimulator(state)
    sim.put_state("zeta", "k", b"1")
    sim.get_state("other", "x")
    sim.put_state("alpha", "k", b"1")
    assert [n.namespace for n in sim.results().public_rwset.ns_rwset] == ["alpha", "other", "zeta"]


def test_range_query_records_raw_reads(state: FakeState) -> None:
    sim = TxSimulator(state)
    assert sim.get_state_range("cc", "b", "") == [("b", b"B"), ("c", b"C")]
    assert sim.get_state_range("cc", "", "b") == [("a", b"A")]
    assert sim.get_state_range("cc", "", "") == [("a", b"A"), ("b", b"B"), ("c", b"C")]
    kv = kvset(sim.results(), "cc")
    assert not kv.reads          # range results go to RangeQueryInfo only, as in Fabric
    first = kv.range_queries_info[0]
    assert (first.start_key, first.end_key, first.itr_exhausted) == ("b", "", True)
    assert [(r.key, r.version.block_num, r.version.tx_num) for r in first.raw_reads.kv_reads] == [
        ("b", 1, 1), ("c", 2, 0)]
    assert len(kv.range_queries_info) == 3


def test_metadata_read_and_write(state: FakeState) -> None:
    sim = TxSimulator(state)
    assert sim.get_state_metadata("cc", "a") == {"VALIDATION_PARAMETER": b"policy"}
    assert sim.get_state_metadata("cc", "missing") == {}
    sim.set_state_metadata("cc", "b", "VALIDATION_PARAMETER", b"p2")
    kv = kvset(sim.results(), "cc")
    assert {r.key for r in kv.reads} == {"a", "missing"}   # metadata shares the key's version
    assert [(m.key, [(e.name, e.value) for e in m.entries]) for m in kv.metadata_writes] == [
        ("b", [("VALIDATION_PARAMETER", b"p2")])]


def test_private_data_is_hashed_and_cleartext_separate(state: FakeState) -> None:
    sim = TxSimulator(state, private_reader_msp="Org1MSP")
    assert sim.get_private_data("cc", ORG1, "secret") == b"s1"
    assert sim.get_private_data_hash("cc", ORG2, "theirs") == sha(b"t2")   # hashes are public
    sim.put_private_data("cc", ORG1, "k2", b"v2")
    sim.put_private_data("cc", ORG2, "gift", b"g")                       # writing is allowed
    sim.del_private_data("cc", ORG1, "secret")
    res = sim.results()
    assert res.private_writes == {
        ("cc", ORG1): {"k2": b"v2", "secret": None}, ("cc", ORG2): {"gift": b"g"}}
    nsrw = res.public_rwset.ns_rwset[0]
    assert kv_rwset_pb2.KVRWSet.FromString(nsrw.rwset) == kv_rwset_pb2.KVRWSet()
    colls = {c.collection_name: c for c in nsrw.collection_hashed_rwset}
    assert list(colls) == sorted(colls)
    h1 = kv_rwset_pb2.HashedRWSet.FromString(colls[ORG1].hashed_rwset)
    assert [(r.key_hash, r.version.block_num, r.version.tx_num) for r in h1.hashed_reads] == [
        (sha(b"secret"), 2, 1)]
    writes = {w.key_hash: (w.is_delete, w.value_hash) for w in h1.hashed_writes}
    assert writes == {sha(b"k2"): (False, sha(b"v2")), sha(b"secret"): (True, b"")}
    assert colls[ORG1].pvt_rwset_hash == sha(private_rwset_bytes({"k2": b"v2", "secret": None}))
    # No cleartext anywhere in the public rwset.
    assert b"v2" not in res.public_rwset.SerializeToString()


def test_reading_another_orgs_collection_is_denied(state: FakeState) -> None:
    sim = TxSimulator(state, private_reader_msp="Org1MSP", tx_id="t1")
    with pytest.raises(PermissionDeniedError, match="Org1MSP is not a member") as info:
        sim.get_private_data("cc", ORG2, "theirs")
    assert info.value.tx_id == "t1"
    with pytest.raises(PermissionDeniedError):
        TxSimulator(state).get_private_data("cc", ORG1, "secret")


def test_unknown_collection(state: FakeState) -> None:
    sim = TxSimulator(state, private_reader_msp="Org1MSP",
                      collections=ImplicitCollections(frozenset({"Org1MSP", "Org2MSP"})))
    for bad in ("marbles", implicit_collection("Org9MSP"), "_implicit_org_"):
        with pytest.raises(FabricError, match="not defined"):
            sim.put_private_data("cc", bad, "k", b"v")


def test_private_missing_cleartext_is_an_error(state: FakeState) -> None:
    state.private[("cc", ORG1, "stale")] = (b"old", (1, 0))
    # The hash says version (1, 0) but pretend the cleartext moved on.
    real = state.get_private

    def moved_on(ns: str, coll: str, key: str) -> tuple[bytes, Version] | None:
        return (b"x", (9, 9)) if key == "stale" else real(ns, coll, key)

    state.get_private = moved_on  # type: ignore[method-assign]
    with pytest.raises(FabricError, match="not available"):
        TxSimulator(state, private_reader_msp="Org1MSP").get_private_data("cc", ORG1, "stale")


def test_finished_simulator_cannot_be_used(state: FakeState) -> None:
    sim = TxSimulator(state)
    sim.results()
    with pytest.raises(FabricError):
        sim.get_state("cc", "a")
    with pytest.raises(FabricError):
        sim.results()
