"""The peer side of the shim protocol (``devnet/chaincode.py``) over real gRPC: paging,
simulator errors, chaincode ERROR, timeouts, registration checks, concurrency and
reconnecting after the chaincode server restarts."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterable, AsyncIterator

import grpc
import pytest
from fabric_protos.peer import chaincode_pb2
from fabric_protos.peer import chaincode_shim_pb2 as shim_pb2
from fabric_protos.peer import chaincode_shim_pb2_grpc as shim_grpc

from fedledger.devnet.chaincode import ChaincodeClient
from fedledger.fabric.errors import ChaincodeError, LedgerError
from fedledger_chaincode.shim import ChaincodeServer
from tests.chaincode.test_shim import CC_NAME, FakeSimulator, KVChaincode, call, running

_Msg = shim_pb2.ChaincodeMessage


def run(coro_fn):  # noqa: ANN001, ANN201 - test helper
    return asyncio.run(coro_fn())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_execute_connects_lazily_and_pages_range_results() -> None:
    async def scenario() -> None:
        sim = FakeSimulator({f"k{i:02d}": b"v" for i in range(20)})
        server = ChaincodeServer(KVChaincode(), "127.0.0.1:0", CC_NAME)
        await server.start()
        client = ChaincodeClient(f"127.0.0.1:{server.port}", CC_NAME, page_size=7)
        try:
            assert not client.connected
            res = await call(client, sim, "range", "k03", "k19")   # 16 results, 3 pages
            assert client.connected
            assert [k for k, _ in json.loads(res.response.payload)] == [
                f"k{i:02d}" for i in range(3, 19)]
            assert sim.range_calls == 1                             # pages come from one read
            res = await call(client, sim, "range_first", "", "", "9")  # stops mid page 2
            assert len(json.loads(res.response.payload)) == 9
        finally:
            await client.close()
            await server.stop(0)
    run(scenario)


def test_simulator_error_becomes_an_error_reply_and_the_tx_goes_on() -> None:
    class Refusing(FakeSimulator):
        def put_state(self, ns: str, key: str, value: bytes) -> None:
            raise LedgerError("state store is read-only", step="ledger", tx_id="t")

    async def scenario() -> None:
        async with running() as (_, client):
            res = await call(client, Refusing(), "put", "a", "1")
            # FabricError -> its message only (no "step=... tx_id=..." decoration)
            assert (res.response.status, res.response.message) == (
                500, "state store is read-only")
            assert (await call(client, FakeSimulator(), "put", "a", "1")).response.status == 200
    run(scenario)


class _ErroringChaincode(shim_grpc.ChaincodeServicer):
    """A raw CCaaS server that registers as ``name`` and answers every transaction
    with ERROR, as a shim does when it cannot run one."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def Connect(  # noqa: N802 - the gRPC method name
            self, request_iterator: AsyncIterable[shim_pb2.ChaincodeMessage],
            context: grpc.aio.ServicerContext) -> AsyncIterator[shim_pb2.ChaincodeMessage]:
        yield _Msg(type=_Msg.REGISTER,
                   payload=chaincode_pb2.ChaincodeID(name=self.name).SerializeToString())
        async for msg in request_iterator:
            if msg.type == _Msg.TRANSACTION:
                yield _Msg(type=_Msg.ERROR, payload=b"cannot run it", txid=msg.txid,
                           channel_id=msg.channel_id)


async def _raw_server(name: str) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    shim_grpc.add_ChaincodeServicer_to_server(_ErroringChaincode(name), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def test_chaincode_error_message_raises_chaincode_error() -> None:
    async def scenario() -> None:
        server, port = await _raw_server(CC_NAME)
        client = ChaincodeClient(f"127.0.0.1:{port}", CC_NAME)
        try:
            with pytest.raises(ChaincodeError, match="cannot run it") as info:
                await call(client, FakeSimulator(), "put", "a", "1", tx_id="bad-tx")
            assert (info.value.tx_id, info.value.step) == ("bad-tx", "execute")
        finally:
            await client.close()
            await server.stop(0)
    run(scenario)


def test_registration_is_checked() -> None:
    async def scenario() -> None:
        server, port = await _raw_server("someone-else")
        client = ChaincodeClient(f"127.0.0.1:{port}", CC_NAME)
        try:
            with pytest.raises(ChaincodeError, match="registered as 'someone-else'"):
                await client.connect()
        finally:
            await client.close()
            await server.stop(0)
        nobody = ChaincodeClient(f"127.0.0.1:{free_port()}", CC_NAME, connect_timeout=5)
        with pytest.raises(ChaincodeError, match="cannot connect"):
            await nobody.connect()
        await nobody.close()
    run(scenario)


def test_timeout_and_duplicate_tx_id() -> None:
    async def scenario() -> None:
        chaincode = KVChaincode()
        sim = FakeSimulator()
        async with running(chaincode) as (_, client):
            with pytest.raises(ChaincodeError, match="did not complete within") as info:
                await call(client, sim, "wait", timeout=0.2, tx_id="slow")
            assert info.value.tx_id == "slow"
            first = asyncio.ensure_future(call(client, sim, "wait", tx_id="dup"))
            await asyncio.sleep(0.05)
            with pytest.raises(ChaincodeError, match="already executing"):
                await call(client, sim, "put", "a", "1", tx_id="dup")
            chaincode.release.set()
            assert (await first).response.payload == b"released"
            # the late COMPLETED of the timed-out "slow" tx is dropped; the stream goes on
            assert (await call(client, sim, "put", "a", "1")).response.status == 200
    run(scenario)


def test_200_concurrent_mixed_executions() -> None:
    async def scenario() -> None:
        sim = FakeSimulator({f"m{i}": f"v{i}".encode() for i in range(200)})
        async with running() as (_, client):
            calls = []
            for i in range(200):
                if i % 4 == 0:
                    calls.append(call(client, sim, "get", f"m{i}"))
                elif i % 4 == 1:
                    calls.append(call(client, sim, "event", f"E{i}", str(i)))
                elif i % 4 == 2:
                    calls.append(call(client, sim, "range", f"m{i}", f"m{i}\x01"))
                else:
                    calls.append(call(client, sim, "boom"))
            results = await asyncio.wait_for(asyncio.gather(*calls), 15)
            for i, res in enumerate(results):
                if i % 4 == 0:
                    assert res.response.payload == f"v{i}".encode()
                elif i % 4 == 1:
                    assert res.event is not None and res.event.event_name == f"E{i}"
                elif i % 4 == 2:
                    assert json.loads(res.response.payload) == [[f"m{i}", f"v{i}"]]
                else:
                    assert res.response.status == 500
    run(scenario)


def test_reconnects_after_the_chaincode_server_restarts() -> None:
    async def scenario() -> None:
        chaincode = KVChaincode()
        sim = FakeSimulator()
        server = ChaincodeServer(chaincode, "127.0.0.1:0", CC_NAME)
        await server.start()
        port = server.port
        client = ChaincodeClient(f"127.0.0.1:{port}", CC_NAME, connect_timeout=5)
        try:
            assert (await call(client, sim, "put", "a", "1")).response.status == 200
            in_flight = asyncio.ensure_future(call(client, sim, "wait"))
            await asyncio.sleep(0.05)
            await server.stop(0)
            with pytest.raises(ChaincodeError):
                await asyncio.wait_for(in_flight, 5)
            assert not client.connected
            with pytest.raises(ChaincodeError, match="cannot connect"):
                await call(client, sim, "get", "a")              # server still down
            server = ChaincodeServer(KVChaincode(), f"127.0.0.1:{port}", CC_NAME)
            await server.start()
            res = await call(client, sim, "get", "a")           # dials again
            assert (res.response.status, res.response.payload) == (200, b"1")
            assert client.connected
        finally:
            await client.close()
            await server.stop(0)
    run(scenario)


def test_close_fails_in_flight_and_later_executions() -> None:
    async def scenario() -> None:
        sim = FakeSimulator()
        async with running() as (_, client):
            in_flight = asyncio.ensure_future(call(client, sim, "wait"))
            await asyncio.sleep(0.05)
            await client.close()
            with pytest.raises(ChaincodeError):
                await in_flight
            with pytest.raises(ChaincodeError, match="closed"):
                await call(client, sim, "put", "a", "1")
    run(scenario)
