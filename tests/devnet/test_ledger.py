"""Ledger: the config block as block 0, hash chain, tamper detection, Fabric's commit
rules, private data, metadata. Transaction blocks start at block 1, as on a Fabric
channel, so the first transaction's writes have version (1, 0)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from fedledger.devnet.blocks import block_header_hash, new_block, transactions_filter
from fedledger.devnet.ledger import Ledger, LedgerFormatError
from fedledger.devnet.rwset import implicit_collection, key_hash, value_hash
from fedledger.fabric.errors import LedgerError, LedgerTamperedError, PermissionDeniedError

from .envelopes import CHANNEL, config_block, joined_ledger, make_envelope, new_tx_id, simulate

C = transaction_pb2.TxValidationCode
NS = "fedledger"
ORG1 = implicit_collection("Org1MSP")


@pytest.fixture
def ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    with joined_ledger(tmp_path / "ch.db") as led:
        yield led


def put(key: str, value: bytes):  # type: ignore[no-untyped-def]
    return lambda sim: sim.put_state(NS, key, value)


def read_write(key: str, value: bytes):  # type: ignore[no-untyped-def]
    def fn(sim) -> None:  # type: ignore[no-untyped-def]
        sim.get_state(NS, key)
        sim.put_state(NS, key, value)
    return fn


def commit(ledger: Ledger, *txs, precheck=None):  # type: ignore[no-untyped-def]
    envs = [t[1] for t in txs]
    pvt = {t[0]: t[2] for t in txs if t[2]}
    return ledger.commit_block(envs, precheck or [C.VALID] * len(envs), pvt)


def test_hash_chain_across_blocks(ledger: Ledger) -> None:
    assert ledger.height == 1  # the config block
    genesis = ledger.block(0)
    assert genesis.header.previous_hash == b"" and transactions_filter(genesis) == [C.VALID]
    blocks = [commit(ledger, simulate(ledger, put(f"k{i}", b"v"))) for i in range(3)]
    assert [b.number for b in blocks] == [1, 2, 3] and ledger.height == 4
    assert blocks[0].block.header.previous_hash == block_header_hash(genesis.header)
    for prev, cur in zip(blocks, blocks[1:], strict=False):
        assert cur.block.header.previous_hash == prev.header_hash
        assert prev.header_hash == block_header_hash(prev.block.header)
    stored = list(ledger.blocks_from(0, batch=2))
    assert [b.header.number for b in stored] == [0, 1, 2, 3]
    assert stored[3] == blocks[2].block == ledger.block(3)
    assert list(ledger.blocks_from(3)) == [blocks[2].block]
    assert transactions_filter(ledger.block(1)) == [C.VALID]
    assert ledger.verify_chain() == 4
    with pytest.raises(LedgerError):
        ledger.block(4)


def test_transactions_wait_for_the_config_block(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ch.db", CHANNEL) as led:
        assert led.height == 0
        with pytest.raises(LedgerError):
            commit(led, simulate(led, put("k", b"v")))
        with pytest.raises(LedgerError):  # a config block of another channel
            led.join(config_block("otherchannel"))
        tx_id, envelope, _ = simulate(led, put("k", b"v"))
        with pytest.raises(LedgerError):  # a transaction block is no genesis block
            led.join(new_block(0, b"", [envelope]))
        joined = led.join(config_block())
        assert (joined.number, joined.codes, led.height) == (0, [C.VALID], 1)
        assert led.tx_status(joined.tx_ids[0]) == (C.VALID, 0)
        with pytest.raises(LedgerError):  # joined once
            led.join(config_block())
        assert commit(led, (tx_id, envelope, {})).number == 1


def test_a_ledger_without_a_config_block_is_refused_at_open(tmp_path: Path) -> None:
    # What a dev peer older than config blocks wrote: transactions from block 0.
    path = tmp_path / "old.db"
    Ledger(path, CHANNEL).close()
    _, envelope, _ = simulate(joined_ledger(tmp_path / "scratch.db"), put("k", b"v"))
    old = new_block(0, b"", [envelope])
    _tamper(path, "INSERT INTO blocks VALUES (?,?,?,?,?)",
            (0, block_header_hash(old.header), b"", old.header.data_hash, old.SerializeToString()))
    with pytest.raises(LedgerFormatError) as info:
        Ledger(path, CHANNEL)
    assert info.value.path == path


def test_reopen_keeps_height_and_state(tmp_path: Path) -> None:
    path = tmp_path / "ch.db"
    with joined_ledger(path) as led:
        commit(led, simulate(led, put("a", b"1")))
        c = commit(led, simulate(led, put("b", b"2")))
    with Ledger(path, CHANNEL) as led:
        assert led.height == 3
        assert led.last_header_hash == c.header_hash
        assert led.get_state(NS, "a") == (b"1", (1, 0))
        assert led.get_state(NS, "b") == (b"2", (2, 0))
        nxt = commit(led, simulate(led, put("c", b"3")))
        assert nxt.block.header.previous_hash == c.header_hash
    with pytest.raises(LedgerError, match="belongs to channel"):
        Ledger(path, "otherchannel")


def _build(path: Path, n: int = 3) -> None:
    """The config block, then blocks 1..n with ``value-0`` .. ``value-{n-1}``."""
    with joined_ledger(path) as led:
        for i in range(n):
            commit(led, simulate(led, put(f"k{i}", b"value-%d" % i)))


def _tamper(path: Path, sql: str, params: tuple) -> None:
    db = sqlite3.connect(path)
    db.execute(sql, params)
    db.commit()
    db.close()


def test_flipped_byte_in_block_detected(tmp_path: Path) -> None:
    path = tmp_path / "ch.db"
    _build(path)
    db = sqlite3.connect(path)
    (blob,) = db.execute("SELECT block FROM blocks WHERE number=2").fetchone()
    db.close()
    # Flip a byte of the stored value inside the envelope (the data, not the metadata).
    i = bytes(blob).index(b"value-1") + 6
    tampered = bytearray(blob)
    tampered[i] ^= 0x01
    _tamper(path, "UPDATE blocks SET block=? WHERE number=2", (bytes(tampered),))
    with pytest.raises(LedgerTamperedError, match="block 2"):
        Ledger(path, CHANNEL)


def test_changed_data_hash_detected(tmp_path: Path) -> None:
    path = tmp_path / "ch.db"
    _build(path)
    _tamper(path, "UPDATE blocks SET data_hash=? WHERE number=2", (b"\x00" * 32,))
    with pytest.raises(LedgerTamperedError, match="block 2"):
        Ledger(path, CHANNEL)


def test_rewritten_block_breaks_chain(tmp_path: Path) -> None:
    path = tmp_path / "ch.db"
    _build(path)
    # A consistent forgery of block 1 (new data, hashes recomputed) breaks block 2's link.
    db = sqlite3.connect(path)
    (blob,) = db.execute("SELECT block FROM blocks WHERE number=1").fetchone()
    block = common_pb2.Block.FromString(blob)
    db.close()
    forged = new_block(1, block.header.previous_hash, [b"forged"])
    _tamper(path, "UPDATE blocks SET block=?, data_hash=?, header_hash=? WHERE number=1",
            (forged.SerializeToString(), forged.header.data_hash, block_header_hash(forged.header)))
    assert block.header.data_hash != forged.header.data_hash
    with pytest.raises(LedgerTamperedError, match="block 2"):
        Ledger(path, CHANNEL)


def test_missing_block_detected(tmp_path: Path) -> None:
    path = tmp_path / "ch.db"
    _build(path)
    _tamper(path, "DELETE FROM blocks WHERE number=1", ())
    with pytest.raises(LedgerTamperedError, match="block 1"):
        Ledger(path, CHANNEL)


def test_verify_chain_on_open_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ch.db"
    with joined_ledger(path) as led:
        commit(led, simulate(led, put("a", b"1")))
        _tamper(path, "UPDATE blocks SET header_hash=? WHERE number=0", (b"\x01" * 32,))
        with pytest.raises(LedgerTamperedError, match="block 0"):
            led.verify_chain()


def test_mvcc_conflict_in_same_block(ledger: Ledger) -> None:
    commit(ledger, simulate(ledger, put("k", b"0")))
    t1 = simulate(ledger, read_write("k", b"1"))
    t2 = simulate(ledger, read_write("k", b"2"))
    c = commit(ledger, t1, t2)
    assert c.codes == [C.VALID, C.MVCC_READ_CONFLICT]
    assert ledger.get_state(NS, "k") == (b"1", (2, 0))
    assert ledger.tx_status(t2[0]) == (C.MVCC_READ_CONFLICT, 2)
    assert ledger.tx_status(t1[0]) == (C.VALID, 2)
    assert transactions_filter(c.block) == c.codes
    assert ledger.tx_status("unknown") is None


def test_blind_writes_do_not_conflict(ledger: Ledger) -> None:
    c = commit(ledger, simulate(ledger, put("k", b"1")), simulate(ledger, put("k", b"2")))
    assert c.codes == [C.VALID, C.VALID]
    assert ledger.get_state(NS, "k") == (b"2", (1, 1))


def test_mvcc_conflict_with_earlier_block(ledger: Ledger) -> None:
    commit(ledger, simulate(ledger, put("k", b"0")))
    stale = simulate(ledger, read_write("k", b"stale"))
    commit(ledger, simulate(ledger, read_write("k", b"fresh")))
    assert commit(ledger, stale).codes == [C.MVCC_READ_CONFLICT]
    assert ledger.get_state(NS, "k")[0] == b"fresh"
    # A read of a missing key conflicts once the key appears.
    absent = simulate(ledger, read_write("new", b"x"))
    commit(ledger, simulate(ledger, put("new", b"y")))
    assert commit(ledger, absent).codes == [C.MVCC_READ_CONFLICT]


def _scan(sim) -> None:  # type: ignore[no-untyped-def]
    sim.get_state_range(NS, "a", "m")
    sim.put_state(NS, "summary", b"s")


def test_phantom_read_across_blocks(ledger: Ledger) -> None:
    commit(ledger, simulate(ledger, put("b", b"1")), simulate(ledger, put("c", b"1")))
    scan = simulate(ledger, _scan)
    commit(ledger, simulate(ledger, put("d", b"inserted")))
    assert commit(ledger, scan).codes == [C.PHANTOM_READ_CONFLICT]
    # Deleting a key inside the range, or updating one, is a phantom too.
    for change in (lambda s: s.del_state(NS, "b"), put("c", b"2")):
        scan = simulate(ledger, _scan)
        commit(ledger, simulate(ledger, change))
        assert commit(ledger, scan).codes == [C.PHANTOM_READ_CONFLICT]
    # Outside the range nothing conflicts.
    scan = simulate(ledger, _scan)
    commit(ledger, simulate(ledger, put("z", b"1")))
    assert commit(ledger, scan).codes == [C.VALID]


def test_phantom_read_in_same_block(ledger: Ledger) -> None:
    commit(ledger, simulate(ledger, put("b", b"1")))
    insert = simulate(ledger, put("c", b"new"))
    scan = simulate(ledger, _scan)
    assert commit(ledger, insert, scan).codes == [C.VALID, C.PHANTOM_READ_CONFLICT]
    # An insert in the block that the scan comes before does not affect it.
    scan = simulate(ledger, _scan)
    insert = simulate(ledger, put("d", b"new"))
    assert commit(ledger, scan, insert).codes == [C.VALID, C.VALID]


def test_duplicate_tx_id_same_block_and_across_blocks(ledger: Ledger) -> None:
    tx_id = new_tx_id()
    a = simulate(ledger, put("a", b"1"), tx_id=tx_id)
    b = simulate(ledger, put("b", b"1"), tx_id=tx_id)
    c = commit(ledger, a, b)
    assert c.codes == [C.VALID, C.DUPLICATE_TXID]
    assert c.tx_ids == [tx_id, tx_id]
    assert ledger.get_state(NS, "b") is None
    again = simulate(ledger, put("c", b"1"), tx_id=tx_id)
    assert commit(ledger, again).codes == [C.DUPLICATE_TXID]
    assert ledger.get_state(NS, "c") is None
    assert ledger.tx_status(tx_id) == (C.VALID, 1)   # the first occurrence stays indexed


def test_precheck_codes_kept_and_writes_not_applied(ledger: Ledger) -> None:
    bad = simulate(ledger, put("x", b"1"))
    good = simulate(ledger, put("y", b"1"))
    c = commit(ledger, bad, good, precheck=[C.ENDORSEMENT_POLICY_FAILURE, C.VALID])
    assert c.codes == [C.ENDORSEMENT_POLICY_FAILURE, C.VALID]
    assert ledger.get_state(NS, "x") is None
    assert ledger.tx_status(bad[0]) == (C.ENDORSEMENT_POLICY_FAILURE, 1)
    # An invalid tx's id is still taken (Fabric indexes every tx id).
    retry = simulate(ledger, put("x", b"1"), tx_id=bad[0])
    assert commit(ledger, retry).codes == [C.DUPLICATE_TXID]


def test_bad_payload_and_wrong_channel(ledger: Ledger) -> None:
    good = simulate(ledger, put("a", b"1"))
    sim = ledger.new_simulator()
    sim.put_state(NS, "w", b"1")
    other = make_envelope(new_tx_id(), sim.results().public_rwset, channel_id="elsewhere")
    c = ledger.commit_block([b"\xff garbage", other, good[1]], [C.VALID] * 3, {})
    assert c.codes == [C.BAD_PAYLOAD, C.TARGET_CHAIN_NOT_FOUND, C.VALID]
    assert c.tx_ids[0] == ""
    assert ledger.get_state(NS, "w") is None
    with pytest.raises(LedgerError):
        ledger.commit_block([good[1]], [], {})
    # Headers that parse around a body that does not: BAD_PAYLOAD, indexed by its tx id.
    garbled = common_pb2.Envelope.FromString(simulate(ledger, put("g", b"1"))[1])
    payload = common_pb2.Payload.FromString(garbled.payload)
    tx_id = common_pb2.ChannelHeader.FromString(payload.header.channel_header).tx_id
    payload.data = b"\xff not a transaction"
    garbled.payload = payload.SerializeToString()
    c = ledger.commit_block([garbled.SerializeToString()], [C.VALID], {})
    assert (c.codes, c.tx_ids) == ([C.BAD_PAYLOAD], [tx_id])
    assert ledger.tx_status(tx_id) == (C.BAD_PAYLOAD, c.number)


def test_private_data_commit(ledger: Ledger) -> None:
    tx_id, env, pvt = simulate(ledger, lambda s: s.put_private_data(NS, ORG1, "secret", b"s1"))
    assert commit(ledger, (tx_id, env, pvt)).codes == [C.VALID]
    assert ledger.get_private_hash(NS, ORG1, key_hash("secret")) == (value_hash(b"s1"), (1, 0))
    assert ledger.get_private(NS, ORG1, "secret") == (b"s1", (1, 0))
    org1 = ledger.new_simulator(private_reader_msp="Org1MSP")
    assert org1.get_private_data(NS, ORG1, "secret") == b"s1"
    org2 = ledger.new_simulator(private_reader_msp="Org2MSP")
    assert org2.get_private_data_hash(NS, ORG1, "secret") == value_hash(b"s1")
    with pytest.raises(PermissionDeniedError):
        org2.get_private_data(NS, ORG1, "secret")


def test_private_data_hash_only_and_mismatched_cleartext(ledger: Ledger) -> None:
    # A peer that did not get the cleartext stores only the hash.
    tx_id, env, _ = simulate(ledger, lambda s: s.put_private_data(NS, ORG1, "k", b"v"))
    ledger.commit_block([env], [C.VALID], {})
    assert ledger.get_private_hash(NS, ORG1, key_hash("k")) is not None
    assert ledger.get_private(NS, ORG1, "k") is None
    # Cleartext that does not match the committed hash is not stored.
    tx_id, env, _ = simulate(ledger, lambda s: s.put_private_data(NS, ORG1, "j", b"v"))
    ledger.commit_block([env], [C.VALID], {tx_id: {(NS, ORG1): {"j": b"forged"}}})
    assert ledger.get_private(NS, ORG1, "j") is None


def test_private_read_conflict_and_delete(ledger: Ledger) -> None:
    commit(ledger, simulate(ledger, lambda s: s.put_private_data(NS, ORG1, "k", b"1")))
    def read_private(s) -> None:  # type: ignore[no-untyped-def]
        s.get_private_data(NS, ORG1, "k")
        s.put_state(NS, "seen", b"1")
    reader = simulate(ledger, read_private)
    commit(ledger, simulate(ledger, lambda s: s.put_private_data(NS, ORG1, "k", b"2")))
    assert commit(ledger, reader).codes == [C.MVCC_READ_CONFLICT]
    assert ledger.get_private(NS, ORG1, "k") == (b"2", (2, 0))
    commit(ledger, simulate(ledger, lambda s: s.del_private_data(NS, ORG1, "k")))
    assert ledger.get_private(NS, ORG1, "k") is None
    assert ledger.get_private_hash(NS, ORG1, key_hash("k")) is None
    org1 = ledger.new_simulator(private_reader_msp="Org1MSP")
    assert org1.get_private_data(NS, ORG1, "k") is None


def test_invalid_tx_private_data_not_stored(ledger: Ledger) -> None:
    t = simulate(ledger, lambda s: s.put_private_data(NS, ORG1, "k", b"1"))
    commit(ledger, t, precheck=[C.ENDORSEMENT_POLICY_FAILURE])
    assert ledger.get_private(NS, ORG1, "k") is None
    assert ledger.get_private_hash(NS, ORG1, key_hash("k")) is None


VP = "VALIDATION_PARAMETER"


def set_policy(key: str, policy: bytes):  # type: ignore[no-untyped-def]
    return lambda sim: sim.set_state_metadata(NS, key, VP, policy)


def test_metadata_writes(ledger: Ledger) -> None:
    commit(ledger, simulate(ledger, put("asset", b"1")))
    commit(ledger, simulate(ledger, set_policy("asset", b"pol")))
    assert ledger.get_metadata(NS, "asset") == {"VALIDATION_PARAMETER": b"pol"}
    # Metadata and value share the version: the metadata update is a new version.
    assert ledger.get_state(NS, "asset") == (b"1", (2, 0))
    assert ledger.new_simulator().get_state_metadata(NS, "asset") == {VP: b"pol"}
    # A value write keeps the metadata; a delete removes it.
    commit(ledger, simulate(ledger, put("asset", b"2")))
    assert ledger.get_metadata(NS, "asset") == {"VALIDATION_PARAMETER": b"pol"}
    commit(ledger, simulate(ledger, lambda s: s.del_state(NS, "asset")))
    assert ledger.get_metadata(NS, "asset") == {}
    # Metadata for a key that does not exist is ignored (as in Fabric).
    commit(ledger, simulate(ledger, set_policy("ghost", b"p")))
    assert ledger.get_metadata(NS, "ghost") == {} and ledger.get_state(NS, "ghost") is None
    # Value and metadata in one tx.
    def both(s) -> None:  # type: ignore[no-untyped-def]
        s.put_state(NS, "n", b"v")
        s.set_state_metadata(NS, "n", "VALIDATION_PARAMETER", b"p")
    commit(ledger, simulate(ledger, both))
    assert ledger.get_metadata(NS, "n") == {"VALIDATION_PARAMETER": b"p"}
    assert ledger.get_state(NS, "n")[0] == b"v"


def test_get_after_put_returns_committed_value(ledger: Ledger) -> None:
    commit(ledger, simulate(ledger, put("k", b"old")))
    sim = ledger.new_simulator()
    sim.put_state(NS, "k", b"new")
    assert sim.get_state(NS, "k") == b"old"
    assert sim.get_state_range(NS, "", "") == [("k", b"old")]


def test_deletes_and_range_order(ledger: Ledger) -> None:
    keys = ["\x00comp\x00a\x00", "a", "b", "é", "z"]
    commit(ledger, *[simulate(ledger, put(k, k.encode())) for k in keys])
    sim = ledger.new_simulator()
    assert [k for k, _ in sim.get_state_range(NS, "", "")] == sorted(keys, key=lambda k: k.encode())
    assert [k for k, _ in sim.get_state_range(NS, "\x01", "")] == ["a", "b", "z", "é"]
    commit(ledger, simulate(ledger, lambda s: s.del_state(NS, "a")))
    assert ledger.get_state(NS, "a") is None


def test_concurrent_simulation_and_commit(ledger: Ledger) -> None:
    import threading

    commit(ledger, simulate(ledger, put("k", b"0")))
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                sim = ledger.new_simulator()
                assert sim.get_state(NS, "k") is not None
                sim.get_state_range(NS, "", "")
                sim.results()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(20):
        commit(ledger, simulate(ledger, put(f"n{i}", b"v")), simulate(ledger, put("k", b"%d" % i)))
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert ledger.height == 22 and ledger.verify_chain() == 22
