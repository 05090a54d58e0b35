"""Peer side of Fabric's shim protocol: dial a chaincode-as-a-service server, run
transactions on it, and answer its state requests from a ``TxSimulator``.

One ``ChaincodeClient`` per chaincode holds one stream; many executions share it,
multiplexed by (channel id, tx id) as on a real peer. Everything runs on the event loop
with no thread hops: one reader task serves the chaincode's requests inline (the
simulator is synchronous) and a single writer drains the outgoing queue, because gRPC
streams do not take concurrent writes. If the stream breaks, the executions on it fail
with ``ChaincodeError`` and the next ``execute`` dials again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import grpc
from fabric_protos.ledger.queryresult.kv_query_result_pb2 import KV
from fabric_protos.peer import chaincode_event_pb2, chaincode_pb2, proposal_pb2
from fabric_protos.peer import chaincode_shim_pb2 as shim_pb2
from fabric_protos.peer import chaincode_shim_pb2_grpc as shim_grpc
from fabric_protos.peer.proposal_response_pb2 import Response
from google.protobuf.message import DecodeError

from fedledger.fabric.errors import ChaincodeError, FabricError

_log = logging.getLogger(__name__)

_Msg = shim_pb2.ChaincodeMessage
_TxKey = tuple[str, str]

PAGE_SIZE = 100                     # range results per QueryResponse
EXECUTE_TIMEOUT_S = 30.0            # Fabric's chaincode.executetimeout default
CONNECT_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
# A Fabric peer's keepalive towards chaincode servers (comm.DefaultKeepaliveOptions):
# a ping every ClientInterval, the connection dropped when one is not answered within
# ClientTimeout, pings sent with no stream open too (PermitWithoutStream). The dev peer
# pings the same way so a chaincode server that refuses such pings fails its tests.
KEEPALIVE_INTERVAL_S = 60.0
KEEPALIVE_TIMEOUT_S = 20.0


class TxSimulator(Protocol):
    """What the shim needs of a simulator (``devnet/rwset.py``'s ``TxSimulator``).

    ``get_private_data_range``, ``get_private_data_metadata`` and
    ``set_private_data_metadata`` are optional: used when present, else the request
    is refused with an ERROR.
    """

    def get_state(self, ns: str, key: str) -> bytes | None: ...
    def put_state(self, ns: str, key: str, value: bytes) -> None: ...
    def del_state(self, ns: str, key: str) -> None: ...
    def get_state_range(self, ns: str, start: str, end: str) -> list[tuple[str, bytes]]: ...
    def get_state_metadata(self, ns: str, key: str) -> dict[str, bytes]: ...
    def set_state_metadata(self, ns: str, key: str, name: str, value: bytes) -> None: ...
    def get_private_data(self, ns: str, coll: str, key: str) -> bytes | None: ...
    def get_private_data_hash(self, ns: str, coll: str, key: str) -> bytes | None: ...
    def put_private_data(self, ns: str, coll: str, key: str, value: bytes) -> None: ...
    def del_private_data(self, ns: str, coll: str, key: str) -> None: ...


@dataclass(frozen=True)
class ClientTLS:
    """TLS towards the chaincode server; cert and key for mutual TLS."""

    root_ca_pem: bytes
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    server_name: str | None = None      # when the address is not the certificate's name


@dataclass(frozen=True)
class ExecutionResult:
    """What the chaincode answered: its response and its event (with chaincode id and
    tx id filled in, as Fabric's peer does)."""

    response: Response
    event: chaincode_event_pb2.ChaincodeEvent | None


@dataclass(slots=True)
class _Tx:
    simulator: TxSimulator
    done: asyncio.Future[shim_pb2.ChaincodeMessage]
    # open range iterators: id -> (all results, position of the next page)
    iterators: dict[str, tuple[list[tuple[str, bytes]], int]] = field(default_factory=dict)
    next_iterator: int = 0


class _Connection:
    """One open stream to the chaincode; when it breaks, its transactions fail together."""

    def __init__(self, client: ChaincodeClient, channel: grpc.aio.Channel,
                 outbox: asyncio.Queue[shim_pb2.ChaincodeMessage | None],
                 call: grpc.aio.StreamStreamCall) -> None:
        self.client = client
        self.channel = channel
        self.outbox = outbox
        self.call = call
        self.txs: dict[_TxKey, _Tx] = {}
        self.closed = False
        self.reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        reason = "the chaincode closed the stream"
        level = logging.WARNING
        try:
            read = self.call.read
            handle = self.client._handle
            while True:
                msg = await read()
                if msg is grpc.aio.EOF:
                    break
                handle(self, msg)
        except asyncio.CancelledError:
            reason, level = "the chaincode connection was closed", logging.DEBUG
            raise
        except grpc.aio.AioRpcError as exc:
            reason = f"chaincode stream failed: {exc.code().name} {exc.details()}"
        except Exception as exc:  # never let a bad message kill the loop silently
            reason = f"chaincode stream failed: {exc!r}"
            _log.exception("chaincode stream reader failed")
        finally:
            self.fail(reason, level=level)

    def fail(self, reason: str, *, level: int = logging.WARNING) -> None:
        if self.closed:
            return
        self.closed = True
        _log.log(level, "chaincode %s at %s: %s", self.client.chaincode_name,
                 self.client.address, reason)
        for key, tx in self.txs.items():
            if not tx.done.done():
                tx.done.set_exception(ChaincodeError(reason, tx_id=key[1], step="execute"))
        self.txs.clear()
        self.outbox.put_nowait(None)
        self.call.cancel()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        self.fail("the chaincode connection was closed", level=logging.DEBUG)
        await self.channel.close()


class ChaincodeClient:
    """The peer's end of one chaincode's CCaaS stream."""

    def __init__(self, address: str, chaincode_name: str, tls: ClientTLS | None = None, *,
                 chaincode_id: str | None = None,
                 execute_timeout: float = EXECUTE_TIMEOUT_S,
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 page_size: int = PAGE_SIZE,
                 keepalive_interval: float = KEEPALIVE_INTERVAL_S,
                 keepalive_timeout: float = KEEPALIVE_TIMEOUT_S) -> None:
        if keepalive_interval <= 0 or keepalive_timeout <= 0:
            raise ValueError("keepalive_interval and keepalive_timeout must be > 0")
        self.address = address
        self.chaincode_name = chaincode_name     # also the state namespace
        # What the chaincode must register as (a package id "label:hash" on real CCaaS).
        self.chaincode_id = chaincode_id or chaincode_name
        self.execute_timeout = execute_timeout
        self.connect_timeout = connect_timeout
        self.page_size = page_size
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self._tls = tls
        self._conn: _Connection | None = None
        self._connect_lock = asyncio.Lock()
        self._closed = False
        self._requests: dict[int, Callable[[_Tx, bytes], bytes]] = {
            _Msg.GET_STATE: self._get_state,
            _Msg.PUT_STATE: self._put_state,
            _Msg.DEL_STATE: self._del_state,
            _Msg.GET_PRIVATE_DATA_HASH: self._get_private_data_hash,
            _Msg.GET_STATE_BY_RANGE: self._get_state_by_range,
            _Msg.QUERY_STATE_NEXT: self._query_state_next,
            _Msg.QUERY_STATE_CLOSE: self._query_state_close,
            _Msg.GET_STATE_METADATA: self._get_state_metadata,
            _Msg.PUT_STATE_METADATA: self._put_state_metadata,
        }

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    # -- connection ------------------------------------------------------------------

    async def connect(self) -> None:
        """Dial the chaincode, wait for its REGISTER, answer REGISTERED and READY."""
        async with self._connect_lock:
            if self._closed:
                raise ChaincodeError("the chaincode client is closed", step="execute")
            if not self.connected:
                self._conn = await self._dial()

    async def _dial(self) -> _Connection:
        options: list[tuple[str, Any]] = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   # a fresh dial must not inherit the reconnect backoff of a shared
                   # subchannel that saw the chaincode go away
                   ("grpc.use_local_subchannel_pool", 1),
                   # keepalive like a Fabric peer's (KEEPALIVE_INTERVAL_S); without
                   # max_pings_without_data=0, gRPC stops pinging after 2 pings on a
                   # quiet stream, which a real peer does not
                   ("grpc.keepalive_time_ms", round(self.keepalive_interval * 1000)),
                   ("grpc.keepalive_timeout_ms", round(self.keepalive_timeout * 1000)),
                   ("grpc.keepalive_permit_without_calls", 1),
                   ("grpc.http2.max_pings_without_data", 0)]
        if self._tls is None:
            channel = grpc.aio.insecure_channel(self.address, options=options)
        else:
            creds = grpc.ssl_channel_credentials(self._tls.root_ca_pem, self._tls.key_pem,
                                                 self._tls.cert_pem)
            if self._tls.server_name:
                options.append(("grpc.ssl_target_name_override", self._tls.server_name))
            channel = grpc.aio.secure_channel(self.address, creds, options=options)
        outbox: asyncio.Queue[shim_pb2.ChaincodeMessage | None] = asyncio.Queue()
        call = shim_grpc.ChaincodeStub(channel).Connect(_drain(outbox))
        try:
            first = await asyncio.wait_for(call.read(), self.connect_timeout)
            if first is grpc.aio.EOF or first.type != _Msg.REGISTER:
                raise ChaincodeError(f"chaincode at {self.address} did not register",
                                     step="execute")
            name = chaincode_pb2.ChaincodeID.FromString(first.payload).name
            if name != self.chaincode_id:
                raise ChaincodeError(f"chaincode at {self.address} registered as {name!r}, "
                                     f"expected {self.chaincode_id!r}", step="execute")
        except BaseException as exc:
            call.cancel()
            await channel.close()
            if isinstance(exc, asyncio.TimeoutError):
                raise ChaincodeError(f"chaincode at {self.address} did not register within "
                                     f"{self.connect_timeout}s", step="execute") from exc
            if isinstance(exc, grpc.aio.AioRpcError):
                raise ChaincodeError(f"cannot connect to chaincode at {self.address}: "
                                     f"{exc.code().name} {exc.details()}",
                                     step="execute") from exc
            if isinstance(exc, DecodeError):
                raise ChaincodeError(f"malformed REGISTER from {self.address}",
                                     step="execute") from exc
            raise
        outbox.put_nowait(_Msg(type=_Msg.REGISTERED))
        outbox.put_nowait(_Msg(type=_Msg.READY))
        conn = _Connection(self, channel, outbox, call)
        conn.start()
        _log.info("chaincode %s registered from %s", name, self.address)
        return conn

    async def close(self) -> None:
        """Close the stream for good; executions in flight fail with ChaincodeError."""
        async with self._connect_lock:
            self._closed = True
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await conn.close()

    # -- execution -------------------------------------------------------------------

    async def execute(self, *, channel_id: str, tx_id: str,
                      signed_proposal: proposal_pb2.SignedProposal,
                      chaincode_input: chaincode_pb2.ChaincodeInput,
                      simulator: TxSimulator,
                      transient: Mapping[str, bytes] | None = None,
                      timeout: float | None = None) -> ExecutionResult:
        """Run one transaction (INIT when ``chaincode_input.is_init``) to completion.

        ``transient`` is not sent separately: the chaincode reads the transient map from
        ``signed_proposal`` itself, as on a real peer. A chaincode ERROR, a broken stream
        or a timeout raise ``ChaincodeError``; a response of any status is returned.
        """
        conn = self._conn
        if conn is None or conn.closed:
            try:
                await self.connect()
            except ChaincodeError as exc:
                raise ChaincodeError(exc.message, tx_id=tx_id, step="execute") from exc
            conn = self._conn
            assert conn is not None
        key = (channel_id, tx_id)
        if key in conn.txs:
            raise ChaincodeError(f"transaction {tx_id} is already executing",
                                 tx_id=tx_id, step="execute")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[shim_pb2.ChaincodeMessage] = loop.create_future()
        conn.txs[key] = _Tx(simulator, done)
        limit = self.execute_timeout if timeout is None else timeout
        # call_later + one future is far cheaper per tx than asyncio.wait_for
        timer = loop.call_later(limit, _expire, done, tx_id, limit)
        conn.outbox.put_nowait(_Msg(
            type=_Msg.INIT if chaincode_input.is_init else _Msg.TRANSACTION,
            payload=chaincode_input.SerializeToString(), txid=tx_id, channel_id=channel_id,
            proposal=signed_proposal))
        try:
            msg = await done
        finally:
            timer.cancel()
            tx = conn.txs.get(key)
            if tx is not None and tx.done is done:
                del conn.txs[key]
        if msg.type == _Msg.ERROR:
            raise ChaincodeError(
                f"chaincode failed: {msg.payload.decode('utf-8', 'replace')}",
                tx_id=tx_id, step="execute")
        try:
            response = Response.FromString(msg.payload)
        except DecodeError as exc:
            raise ChaincodeError("chaincode sent a malformed response", tx_id=tx_id,
                                 step="execute") from exc
        event = None
        if msg.HasField("chaincode_event"):
            event = msg.chaincode_event
            event.chaincode_id = self.chaincode_name
            event.tx_id = tx_id
        return ExecutionResult(response, event)

    # -- the chaincode's messages --------------------------------------------------------

    def _handle(self, conn: _Connection, msg: shim_pb2.ChaincodeMessage) -> None:
        mtype = msg.type
        tx = conn.txs.get((msg.channel_id, msg.txid))
        if mtype == _Msg.COMPLETED or mtype == _Msg.ERROR:
            if tx is not None and not tx.done.done():
                tx.done.set_result(msg)
            return
        if mtype == _Msg.KEEPALIVE:
            return
        serve = self._requests.get(mtype)
        if serve is None:
            text = f"{_Msg.Type.Name(mtype)} is not supported by this peer"
        elif tx is None:
            text = f"no transaction context for {msg.channel_id}/{msg.txid}"
        else:
            try:
                payload = serve(tx, msg.payload)
            except FabricError as exc:
                text = exc.message
            except Exception as exc:  # the tx goes on: the chaincode sees ShimError
                text = str(exc) or type(exc).__name__
            else:
                conn.outbox.put_nowait(_Msg(type=_Msg.RESPONSE, payload=payload,
                                            txid=msg.txid, channel_id=msg.channel_id))
                return
        conn.outbox.put_nowait(_Msg(type=_Msg.ERROR, payload=text.encode("utf-8"),
                                    txid=msg.txid, channel_id=msg.channel_id))

    def _get_state(self, tx: _Tx, raw: bytes) -> bytes:
        req = shim_pb2.GetState.FromString(raw)
        if req.collection:
            value = tx.simulator.get_private_data(self.chaincode_name, req.collection, req.key)
        else:
            value = tx.simulator.get_state(self.chaincode_name, req.key)
        return value or b""

    def _put_state(self, tx: _Tx, raw: bytes) -> bytes:
        req = shim_pb2.PutState.FromString(raw)
        if req.collection:
            tx.simulator.put_private_data(self.chaincode_name, req.collection, req.key,
                                          req.value)
        else:
            tx.simulator.put_state(self.chaincode_name, req.key, req.value)
        return b""

    def _del_state(self, tx: _Tx, raw: bytes) -> bytes:
        req = shim_pb2.DelState.FromString(raw)
        if req.collection:
            tx.simulator.del_private_data(self.chaincode_name, req.collection, req.key)
        else:
            tx.simulator.del_state(self.chaincode_name, req.key)
        return b""

    def _get_private_data_hash(self, tx: _Tx, raw: bytes) -> bytes:
        req = shim_pb2.GetState.FromString(raw)
        if not req.collection:
            raise ChaincodeError("GET_PRIVATE_DATA_HASH needs a collection")
        return tx.simulator.get_private_data_hash(self.chaincode_name, req.collection,
                                                  req.key) or b""

    def _get_state_by_range(self, tx: _Tx, raw: bytes) -> bytes:
        req = shim_pb2.GetStateByRange.FromString(raw)
        if req.metadata:
            raise ChaincodeError("paginated range queries are not supported")
        items: list[tuple[str, bytes]]
        if req.collection:
            items = cast(list[tuple[str, bytes]], _optional(tx.simulator, "get_private_data_range")(
                self.chaincode_name, req.collection, req.startKey, req.endKey))
        else:
            items = tx.simulator.get_state_range(self.chaincode_name, req.startKey, req.endKey)
        iterator_id = str(tx.next_iterator)
        tx.next_iterator += 1
        return self._page(tx, iterator_id, list(items), 0)

    def _query_state_next(self, tx: _Tx, raw: bytes) -> bytes:
        iterator_id = shim_pb2.QueryStateNext.FromString(raw).id
        if iterator_id not in tx.iterators:
            raise ChaincodeError(f"query iterator {iterator_id!r} not found")
        items, pos = tx.iterators[iterator_id]
        return self._page(tx, iterator_id, items, pos)

    def _query_state_close(self, tx: _Tx, raw: bytes) -> bytes:
        iterator_id = shim_pb2.QueryStateClose.FromString(raw).id
        tx.iterators.pop(iterator_id, None)
        return shim_pb2.QueryResponse(has_more=False, id=iterator_id).SerializeToString()

    def _page(self, tx: _Tx, iterator_id: str, items: list[tuple[str, bytes]],
              pos: int) -> bytes:
        end = pos + self.page_size
        ns = self.chaincode_name
        results = [shim_pb2.QueryResultBytes(
            resultBytes=KV(namespace=ns, key=k, value=v).SerializeToString())
            for k, v in items[pos:end]]
        has_more = end < len(items)
        if has_more:
            tx.iterators[iterator_id] = (items, end)
        else:  # like Fabric's peer: the last page closes the iterator
            tx.iterators.pop(iterator_id, None)
        return shim_pb2.QueryResponse(results=results, has_more=has_more,
                                      id=iterator_id).SerializeToString()

    def _get_state_metadata(self, tx: _Tx, raw: bytes) -> bytes:
        req = shim_pb2.GetStateMetadata.FromString(raw)
        if req.collection:
            meta = cast(dict[str, bytes], _optional(tx.simulator, "get_private_data_metadata")(
                self.chaincode_name, req.collection, req.key))
        else:
            meta = tx.simulator.get_state_metadata(self.chaincode_name, req.key)
        return shim_pb2.StateMetadataResult(entries=[
            shim_pb2.StateMetadata(metakey=name, value=value)
            for name, value in sorted((meta or {}).items())]).SerializeToString()

    def _put_state_metadata(self, tx: _Tx, raw: bytes) -> bytes:
        req = shim_pb2.PutStateMetadata.FromString(raw)
        if req.collection:
            _optional(tx.simulator, "set_private_data_metadata")(
                self.chaincode_name, req.collection, req.key, req.metadata.metakey,
                req.metadata.value)
        else:
            tx.simulator.set_state_metadata(self.chaincode_name, req.key,
                                            req.metadata.metakey, req.metadata.value)
        return b""


async def _drain(outbox: asyncio.Queue[shim_pb2.ChaincodeMessage | None]
                 ) -> AsyncIterator[shim_pb2.ChaincodeMessage]:
    """The stream's single writer: gRPC pulls the outgoing messages from here."""
    while True:
        msg = await outbox.get()
        if msg is None:
            return
        yield msg


def _expire(done: asyncio.Future[shim_pb2.ChaincodeMessage], tx_id: str, limit: float) -> None:
    if not done.done():
        done.set_exception(ChaincodeError(f"chaincode did not complete within {limit}s",
                                          tx_id=tx_id, step="execute"))


def _optional(simulator: object, method: str) -> Callable[..., object]:
    found = getattr(simulator, method, None)
    if found is None:
        raise ChaincodeError(f"the simulator does not support {method}")
    return found


__all__ = ["KEEPALIVE_INTERVAL_S", "KEEPALIVE_TIMEOUT_S", "ChaincodeClient", "ClientTLS",
           "ExecutionResult", "TxSimulator"]
