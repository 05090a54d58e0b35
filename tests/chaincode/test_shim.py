"""The chaincode side of the shim protocol (``fedledger_chaincode.shim``) over real gRPC.

The peer is the dev peer's ``ChaincodeClient`` with an in-memory simulator: the point
is the protocol and the stub API. Each defect of fabric-chaincode-python 2.5.4 has a
test here: concurrent transactions on one stream, chaincode events on COMPLETED, a peer
ERROR raised as ``ShimError`` (not returned as a value), and real private data,
transient data and state-based endorsement.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2
from google.protobuf import timestamp_pb2

from fedledger.devnet.chaincode import ChaincodeClient, ExecutionResult
from fedledger.fabric.errors import PermissionDeniedError
from fedledger_chaincode.shim import (
    ChaincodeServer,
    ChaincodeStub,
    InvalidArgumentError,
    Response,
    ShimError,
    create_composite_key,
    error,
    split_composite_key,
    success,
)

CC_NAME = "kv"
CHANNEL = "consortium"


# -- an in-test chaincode and state store ------------------------------------------------


class KVChaincode:
    """A key-value contract written directly against the stub."""

    def __init__(self) -> None:
        self.release = asyncio.Event()   # "wait" blocks until set

    async def init(self, stub: ChaincodeStub) -> Response:
        await stub.put_state("initialised", b"yes")
        return success(b"init")

    async def invoke(self, stub: ChaincodeStub) -> Response:
        fn, args = stub.get_function_and_parameters()
        method = getattr(self, "tx_" + fn, None)
        if method is None:
            return error(f"unknown function {fn}", status=404)
        return await method(stub, *args)

    async def tx_put(self, stub: ChaincodeStub, key: str, value: str) -> Response:
        await stub.put_state(key, value.encode())
        return success()

    async def tx_get(self, stub: ChaincodeStub, key: str) -> Response:
        value = await stub.get_state(key)
        return success(value) if value is not None else error(f"{key} not found", 404)

    async def tx_del(self, stub: ChaincodeStub, key: str) -> Response:
        await stub.del_state(key)
        return success()

    async def tx_getput(self, stub: ChaincodeStub, key: str, value: str) -> Response:
        old = await stub.get_state(key)
        await asyncio.sleep(0)           # let other transactions interleave on the stream
        await stub.put_state(key, value.encode())
        return success(old or b"")

    async def tx_range(self, stub: ChaincodeStub, start: str, end: str) -> Response:
        items = [[kv.key, kv.value.decode()] async for kv in stub.get_state_by_range(start, end)]
        return success(json.dumps(items).encode())

    async def tx_range_first(self, stub: ChaincodeStub, start: str, end: str, n: str) -> Response:
        keys = []
        async with stub.get_state_by_range(start, end) as it:
            async for kv in it:
                keys.append(kv.key)
                if len(keys) == int(n):
                    break
        return success(json.dumps(keys).encode())

    async def tx_own(self, stub: ChaincodeStub, owner: str, asset: str) -> Response:
        await stub.put_state(stub.create_composite_key("owner", [owner, asset]), b"1")
        return success()

    async def tx_owned(self, stub: ChaincodeStub, owner: str) -> Response:
        assets = []
        async for kv in stub.get_state_by_partial_composite_key("owner", [owner]):
            _, attrs = stub.split_composite_key(kv.key)
            assets.append(attrs[1])
        return success(json.dumps(assets).encode())

    async def tx_pput(self, stub: ChaincodeStub, coll: str, key: str) -> Response:
        await stub.put_private_data(coll, key, stub.get_transient()["value"])
        return success()

    async def tx_pget(self, stub: ChaincodeStub, coll: str, key: str) -> Response:
        return success(await stub.get_private_data(coll, key) or b"<none>")

    async def tx_phash(self, stub: ChaincodeStub, coll: str, key: str) -> Response:
        return success(await stub.get_private_data_hash(coll, key) or b"<none>")

    async def tx_pdel(self, stub: ChaincodeStub, coll: str, key: str) -> Response:
        await stub.del_private_data(coll, key)
        return success()

    async def tx_transient(self, stub: ChaincodeStub) -> Response:
        return success(json.dumps({k: v.decode() for k, v in stub.get_transient().items()})
                       .encode())

    async def tx_event(self, stub: ChaincodeStub, name: str, payload: str) -> Response:
        stub.set_event(name, payload.encode())
        return success(b"evented")

    async def tx_setvp(self, stub: ChaincodeStub, key: str, policy: str) -> Response:
        await stub.set_state_validation_parameter(key, policy.encode())
        return success()

    async def tx_getvp(self, stub: ChaincodeStub, key: str) -> Response:
        return success(await stub.get_state_validation_parameter(key) or b"<none>")

    async def tx_getsafe(self, stub: ChaincodeStub, key: str) -> Response:
        try:
            value = await stub.get_state(key)
        except ShimError as exc:
            return success(f"caught: {exc}".encode())
        return success(b"value: " + (value or b""))

    async def tx_boom(self, stub: ChaincodeStub) -> Response:
        raise RuntimeError("contract exploded")

    async def tx_creator(self, stub: ChaincodeStub) -> Response:
        return success(stub.get_creator_msp_id().encode())

    async def tx_timestamp(self, stub: ChaincodeStub) -> Response:
        return success(str(stub.get_tx_timestamp().seconds).encode())

    async def tx_wait(self, stub: ChaincodeStub) -> Response:
        await self.release.wait()
        return success(b"released")


class FakeSimulator:
    """In-memory stand-in for the dev peer's TxSimulator (same method names)."""

    def __init__(self, state: dict[str, bytes] | None = None) -> None:
        self.state: dict[str, bytes] = dict(state or {})
        self.private: dict[tuple[str, str], bytes] = {}
        self.metadata: dict[str, dict[str, bytes]] = {}
        self.range_calls = 0

    def get_state(self, ns: str, key: str) -> bytes | None:
        assert ns == CC_NAME
        if key.startswith("forbidden"):
            raise PermissionDeniedError(f"read of {key} refused")
        if key.startswith("crash"):
            raise RuntimeError("disk on fire")
        return self.state.get(key)

    def put_state(self, ns: str, key: str, value: bytes) -> None:
        self.state[key] = value

    def del_state(self, ns: str, key: str) -> None:
        self.state.pop(key, None)

    def get_state_range(self, ns: str, start: str, end: str) -> list[tuple[str, bytes]]:
        self.range_calls += 1
        return [(k, self.state[k]) for k in sorted(self.state)
                if k >= start and (end == "" or k < end)]

    def get_state_metadata(self, ns: str, key: str) -> dict[str, bytes]:
        return dict(self.metadata.get(key, {}))

    def set_state_metadata(self, ns: str, key: str, name: str, value: bytes) -> None:
        self.metadata.setdefault(key, {})[name] = value

    def _check_coll(self, coll: str) -> None:
        if coll != "orgcoll":
            raise PermissionDeniedError(f"not a member of collection {coll}")

    def get_private_data(self, ns: str, coll: str, key: str) -> bytes | None:
        self._check_coll(coll)
        return self.private.get((coll, key))

    def get_private_data_hash(self, ns: str, coll: str, key: str) -> bytes | None:
        value = self.private.get((coll, key))
        return hashlib.sha256(value).digest() if value is not None else None

    def put_private_data(self, ns: str, coll: str, key: str, value: bytes) -> None:
        self._check_coll(coll)
        self.private[(coll, key)] = value

    def del_private_data(self, ns: str, coll: str, key: str) -> None:
        self._check_coll(coll)
        self.private.pop((coll, key), None)


# -- harness -------------------------------------------------------------------------------


def self_signed_cert(cn: str = "User1@org1.example.com") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def make_proposal(tx_id: str, args: list[str], *, creator: bytes = b"",
                  transient: Mapping[str, bytes] | None = None,
                  seconds: int = 1_700_000_000) -> proposal_pb2.SignedProposal:
    """A SignedProposal shaped like the gateway client's (signature not checked here)."""
    chdr = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION, tx_id=tx_id, channel_id=CHANNEL,
        timestamp=timestamp_pb2.Timestamp(seconds=seconds))
    shdr = common_pb2.SignatureHeader(creator=creator, nonce=b"n" * 24)
    header = common_pb2.Header(channel_header=chdr.SerializeToString(),
                               signature_header=shdr.SerializeToString())
    spec = chaincode_pb2.ChaincodeInvocationSpec(chaincode_spec=chaincode_pb2.ChaincodeSpec(
        chaincode_id=chaincode_pb2.ChaincodeID(name=CC_NAME),
        input=chaincode_pb2.ChaincodeInput(args=[a.encode() for a in args])))
    payload = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString(),
                                                    TransientMap=dict(transient or {}))
    proposal = proposal_pb2.Proposal(header=header.SerializeToString(),
                                     payload=payload.SerializeToString())
    return proposal_pb2.SignedProposal(proposal_bytes=proposal.SerializeToString(),
                                       signature=b"sig")


_counter = 0


async def call(client: ChaincodeClient, sim: FakeSimulator, *args: str, is_init: bool = False,
               transient: Mapping[str, bytes] | None = None, creator: bytes = b"",
               timeout: float | None = None, tx_id: str | None = None) -> ExecutionResult:
    global _counter
    _counter += 1
    tx_id = tx_id or f"tx{_counter}"
    return await client.execute(
        channel_id=CHANNEL, tx_id=tx_id,
        signed_proposal=make_proposal(tx_id, list(args), creator=creator, transient=transient),
        chaincode_input=chaincode_pb2.ChaincodeInput(args=[a.encode() for a in args],
                                                     is_init=is_init),
        simulator=sim, transient=transient or {}, timeout=timeout)


@asynccontextmanager
async def running(chaincode: KVChaincode | None = None, **client_options: object
                  ) -> AsyncIterator[tuple[ChaincodeServer, ChaincodeClient]]:
    server = ChaincodeServer(chaincode or KVChaincode(), "127.0.0.1:0", CC_NAME)
    await server.start()
    client = ChaincodeClient(f"127.0.0.1:{server.port}", CC_NAME,
                             **client_options)  # type: ignore[arg-type]
    try:
        await client.connect()
        yield server, client
    finally:
        await client.close()
        await server.stop(0)


def run(coro_fn):  # noqa: ANN001, ANN201 - test helper
    return asyncio.run(coro_fn())


# -- tests ---------------------------------------------------------------------------------


def test_get_put_del_round_trip() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            assert (await call(client, sim, "put", "a", "1")).response.status == 200
            assert sim.state == {"a": b"1"}
            res = await call(client, sim, "get", "a")
            assert (res.response.status, res.response.payload, res.event) == (200, b"1", None)
            assert (await call(client, sim, "del", "a")).response.status == 200
            res = await call(client, sim, "get", "a")
            assert (res.response.status, res.response.message) == (404, "a not found")
    run(scenario)


def test_init_message_runs_init() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            res = await call(client, sim, "anything", is_init=True)
            assert res.response.payload == b"init" and sim.state == {"initialised": b"yes"}
    run(scenario)


def test_range_query_spans_pages_and_skips_composite_keys() -> None:
    async def scenario() -> None:
        state = {f"k{i:03d}": str(i).encode() for i in range(250)}
        state[create_composite_key("owner", ["x", "y"])] = b"hidden"
        sim = FakeSimulator(state)
        async with running() as (_, client):
            res = await call(client, sim, "range", "", "")          # 3 pages of 100
            items = json.loads(res.response.payload)
            assert [k for k, _ in items] == [f"k{i:03d}" for i in range(250)]
            assert items[249] == ["k249", "249"]
            res = await call(client, sim, "range", "k010", "k020")
            assert [k for k, _ in json.loads(res.response.payload)] == [
                f"k{i:03d}" for i in range(10, 20)]
            res = await call(client, sim, "range_first", "", "", "3")  # early close
            assert json.loads(res.response.payload) == ["k000", "k001", "k002"]
    run(scenario)


def test_composite_keys_are_fabrics() -> None:
    key = create_composite_key("owner", ["alice", "car1"])
    assert key == "\x00owner\x00alice\x00car1\x00"
    assert split_composite_key(key) == ("owner", ["alice", "car1"])
    assert create_composite_key("t", []) == "\x00t\x00"
    assert split_composite_key("\x00t\x00") == ("t", [])
    with pytest.raises(InvalidArgumentError):
        create_composite_key("owner", ["bad\x00attr"])
    with pytest.raises(InvalidArgumentError):
        create_composite_key("owner", ["bad\U0010ffff"])

    async def scenario() -> None:
        sim = FakeSimulator({"plain": b"x"})
        async with running() as (_, client):
            for owner, asset in [("alice", "car1"), ("alice", "car2"), ("bob", "car3"),
                                 ("alicex", "car4")]:
                await call(client, sim, "own", owner, asset)
            res = await call(client, sim, "owned", "alice")
            assert json.loads(res.response.payload) == ["car1", "car2"]
            assert "\x00owner\x00bob\x00car3\x00" in sim.state
    run(scenario)


def test_private_data_put_get_hash_and_transient() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            res = await call(client, sim, "pput", "orgcoll", "secret",
                             transient={"value": b"s3cr3t"})
            assert res.response.status == 200
            assert sim.private == {("orgcoll", "secret"): b"s3cr3t"} and sim.state == {}
            assert (await call(client, sim, "pget", "orgcoll", "secret")).response.payload \
                == b"s3cr3t"
            assert (await call(client, sim, "phash", "orgcoll", "secret")).response.payload \
                == hashlib.sha256(b"s3cr3t").digest()
            await call(client, sim, "pdel", "orgcoll", "secret")
            assert (await call(client, sim, "pget", "orgcoll", "secret")).response.payload \
                == b"<none>"
            # a collection the simulator refuses: the contract gets a ShimError -> 500
            res = await call(client, sim, "pget", "othercoll", "secret")
            assert res.response.status == 500
            assert res.response.message == "not a member of collection othercoll"
            res = await call(client, sim, "transient", transient={"a": b"1", "b": b"2"})
            assert json.loads(res.response.payload) == {"a": "1", "b": "2"}
    run(scenario)


def test_set_event_arrives_with_the_result() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            res = await call(client, sim, "event", "ModelSubmitted", "payload-1", tx_id="evtx")
            assert res.response.payload == b"evented"
            assert res.event is not None
            assert (res.event.event_name, res.event.payload) == ("ModelSubmitted", b"payload-1")
            assert (res.event.chaincode_id, res.event.tx_id) == (CC_NAME, "evtx")
    run(scenario)


def test_state_validation_parameter_set_and_get() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            await call(client, sim, "setvp", "asset1", "policy-bytes")
            assert sim.metadata == {"asset1": {"VALIDATION_PARAMETER": b"policy-bytes"}}
            assert (await call(client, sim, "getvp", "asset1")).response.payload \
                == b"policy-bytes"
            assert (await call(client, sim, "getvp", "asset2")).response.payload == b"<none>"
    run(scenario)


def test_peer_error_raises_shim_error_never_a_value() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            res = await call(client, sim, "getsafe", "forbidden-key")
            assert res.response.payload == b"caught: read of forbidden-key refused"
            res = await call(client, sim, "getsafe", "crash-key")
            assert res.response.payload == b"caught: disk on fire"
            # not caught by the contract: the transaction fails with the peer's message
            res = await call(client, sim, "get", "forbidden-key")
            assert (res.response.status, res.response.message) == (
                500, "read of forbidden-key refused")
            # the stream and the transaction machinery carry on
            await call(client, sim, "put", "ok", "1")
            assert (await call(client, sim, "getsafe", "ok")).response.payload == b"value: 1"
    run(scenario)


def test_chaincode_exception_is_a_500_response_not_a_crash() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            res = await call(client, sim, "boom")
            assert (res.response.status, res.response.message) == (500, "contract exploded")
            assert (await call(client, sim, "put", "a", "1")).response.status == 200
    run(scenario)


def test_200_concurrent_transactions_on_one_stream() -> None:
    async def scenario() -> None:
        sim = FakeSimulator({f"c{i}": f"old{i}".encode() for i in range(200)})
        async with running() as (_, client):
            results = await asyncio.wait_for(asyncio.gather(*(
                call(client, sim, "getput", f"c{i}", f"new{i}") for i in range(200))), 15)
            assert [r.response.payload for r in results] == [
                f"old{i}".encode() for i in range(200)]
            assert sim.state == {f"c{i}": f"new{i}".encode() for i in range(200)}
    run(scenario)


def test_creator_msp_id_from_a_real_certificate() -> None:
    async def scenario() -> None:
        creator = identities_pb2.SerializedIdentity(
            mspid="Org1MSP", id_bytes=self_signed_cert()).SerializeToString()
        sim = FakeSimulator()
        async with running() as (_, client):
            res = await call(client, sim, "creator", creator=creator)
            assert res.response.payload == b"Org1MSP"
            res = await call(client, sim, "timestamp")
            assert res.response.payload == b"1700000000"
    run(scenario)


def test_stub_rejects_bad_arguments_locally() -> None:
    async def scenario() -> None:
        class Checks(KVChaincode):
            async def tx_bad(self, stub: ChaincodeStub) -> Response:
                errors = []
                for attempt in (lambda: stub.put_state("", b"x"),
                                lambda: stub.get_private_data("", "k")):
                    try:
                        await attempt()
                    except InvalidArgumentError as exc:
                        errors.append(str(exc))
                try:
                    stub.get_state_by_range("\x00x", "")
                except InvalidArgumentError as exc:
                    errors.append(str(exc))
                try:
                    stub.set_event("", b"")
                except InvalidArgumentError as exc:
                    errors.append(str(exc))
                return success(json.dumps(errors).encode())

        async with running(Checks()) as (_, client):
            res = await call(client, FakeSimulator(), "bad")
            assert len(json.loads(res.response.payload)) == 4
    run(scenario)
