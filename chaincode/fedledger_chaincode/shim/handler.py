"""The chaincode side of one shim stream (``protos.Chaincode/Connect``).

One handler per stream, i.e. per connected peer. Everything runs on the event loop:

- exactly one writer: every outgoing message goes through ``_outbox`` and leaves through
  the generator ``stream()`` that gRPC drains, so concurrent transactions never interleave
  writes on the stream (the defect of fabric-chaincode-python);
- one reader task dispatching what the peer sends: TRANSACTION/INIT start a task per
  transaction, RESPONSE/ERROR resolve the future of the request waiting on that
  (channel, tx id);
- a transaction always ends with COMPLETED carrying a ``peer.Response`` (a contract
  exception becomes status 500) and the contract's chaincode event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator

from fabric_protos.peer import chaincode_pb2
from fabric_protos.peer import chaincode_shim_pb2 as shim_pb2
from fabric_protos.peer.proposal_response_pb2 import Response
from google.protobuf.message import DecodeError

from fedledger_chaincode.shim.errors import PeerError, ShimError, StreamClosedError
from fedledger_chaincode.shim.interfaces import ERROR, Chaincode
from fedledger_chaincode.shim.stub import ChaincodeStub

_log = logging.getLogger(__name__)

_Msg = shim_pb2.ChaincodeMessage
_TxKey = tuple[str, str]


class ChaincodeHandler:
    """Runs one peer connection: handshake, transaction dispatch, request correlation."""

    def __init__(self, chaincode: Chaincode, chaincode_id: str) -> None:
        self._chaincode = chaincode
        self._chaincode_id = chaincode_id
        self._outbox: asyncio.Queue[shim_pb2.ChaincodeMessage | None] = asyncio.Queue()
        self._pending: dict[_TxKey, asyncio.Future[shim_pb2.ChaincodeMessage]] = {}
        self._active: dict[_TxKey, asyncio.Task[None]] = {}
        self._registered = False
        self._closed = False
        self.ready = asyncio.Event()

    # -- the stream ------------------------------------------------------------------

    async def stream(self, incoming: AsyncIterable[shim_pb2.ChaincodeMessage]
                     ) -> AsyncIterator[shim_pb2.ChaincodeMessage]:
        """The outgoing side of the stream; reads ``incoming`` in a task of its own."""
        self._send(_Msg(type=_Msg.REGISTER, payload=chaincode_pb2.ChaincodeID(
            name=self._chaincode_id).SerializeToString()))
        reader = asyncio.get_running_loop().create_task(self._read(incoming))
        outbox = self._outbox
        try:
            while True:
                msg = await outbox.get()
                if msg is None:
                    break
                yield msg
        finally:
            reader.cancel()
            self._shutdown()

    async def _read(self, incoming: AsyncIterable[shim_pb2.ChaincodeMessage]) -> None:
        try:
            async for msg in incoming:
                self._dispatch(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken stream ends this connection, not the server
            _log.warning("shim stream to the peer failed: %s", exc)
        finally:
            self._outbox.put_nowait(None)

    def _send(self, msg: shim_pb2.ChaincodeMessage) -> None:
        if not self._closed:
            self._outbox.put_nowait(msg)

    def _shutdown(self) -> None:
        self._closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(StreamClosedError("the stream to the peer closed"))
        self._pending.clear()
        for task in self._active.values():
            task.cancel()
        self._active.clear()

    # -- incoming messages -----------------------------------------------------------

    def _dispatch(self, msg: shim_pb2.ChaincodeMessage) -> None:
        mtype = msg.type
        if mtype == _Msg.RESPONSE or mtype == _Msg.ERROR:
            fut = self._pending.get((msg.channel_id, msg.txid))
            if fut is not None and not fut.done():
                fut.set_result(msg)
            else:
                _log.debug("reply for %s/%s with no request waiting", msg.channel_id, msg.txid)
        elif mtype == _Msg.TRANSACTION or mtype == _Msg.INIT:
            self._start_transaction(msg)
        elif mtype == _Msg.KEEPALIVE:
            self._send(msg)  # the peer expects its keepalive echoed, as the Go shim does
        elif mtype == _Msg.REGISTERED:
            self._registered = True
        elif mtype == _Msg.READY:
            if not self._registered:
                _log.warning("peer sent READY before REGISTERED")
            self.ready.set()
        else:
            _log.warning("unexpected %s from the peer", _Msg.Type.Name(mtype))
            self._send(_error_msg(msg, f"unexpected message {_Msg.Type.Name(mtype)}"))

    def _start_transaction(self, msg: shim_pb2.ChaincodeMessage) -> None:
        key = (msg.channel_id, msg.txid)
        if not self.ready.is_set():
            self._send(_error_msg(msg, "chaincode is not ready for transactions"))
        elif key in self._active:
            self._send(_error_msg(msg, f"duplicate transaction id {msg.txid}"))
        else:
            self._active[key] = asyncio.get_running_loop().create_task(
                self._run_transaction(msg))

    async def _run_transaction(self, msg: shim_pb2.ChaincodeMessage) -> None:
        key = (msg.channel_id, msg.txid)
        try:
            try:
                cc_input = chaincode_pb2.ChaincodeInput.FromString(msg.payload)
            except DecodeError as exc:
                self._send(_error_msg(msg, f"malformed chaincode input: {exc}"))
                return
            stub = ChaincodeStub(self, channel_id=msg.channel_id, tx_id=msg.txid,
                                 chaincode_input=cc_input,
                                 signed_proposal=msg.proposal if msg.HasField("proposal")
                                 else None)
            try:
                if msg.type == _Msg.INIT:
                    response = await self._chaincode.init(stub)
                else:
                    response = await self._chaincode.invoke(stub)
                if not isinstance(response, Response):
                    response = Response(status=ERROR, message=(
                        f"chaincode returned {type(response).__name__}, not a peer.Response"))
            except Exception as exc:
                # A contract bug fails its transaction only; the peer gets the message.
                _log.warning("transaction %s failed in the chaincode: %r", msg.txid, exc)
                response = Response(status=ERROR, message=str(exc) or type(exc).__name__)
            self._send(_Msg(type=_Msg.COMPLETED, payload=response.SerializeToString(),
                            txid=msg.txid, channel_id=msg.channel_id,
                            chaincode_event=stub.event))
        finally:
            self._active.pop(key, None)

    # -- requests from stubs -----------------------------------------------------------

    async def request(self, channel_id: str, tx_id: str, msg_type: int, payload: bytes) -> bytes:
        """Send a state request for a transaction and wait for the peer's reply."""
        if self._closed:
            raise StreamClosedError("the stream to the peer is closed")
        key = (channel_id, tx_id)
        if key in self._pending:
            raise ShimError(f"transaction {tx_id} already has a request in flight")
        fut: asyncio.Future[shim_pb2.ChaincodeMessage] = (
            asyncio.get_running_loop().create_future())
        self._pending[key] = fut
        self._outbox.put_nowait(_Msg(type=msg_type, payload=payload, txid=tx_id,
                                     channel_id=channel_id))
        try:
            reply = await fut
        finally:
            if self._pending.get(key) is fut:
                del self._pending[key]
        if reply.type == _Msg.RESPONSE:
            return reply.payload
        if reply.type == _Msg.ERROR:
            raise PeerError(reply.payload.decode("utf-8", "replace"))
        raise ShimError(f"unexpected {_Msg.Type.Name(reply.type)} in reply to "
                        f"{_Msg.Type.Name(msg_type)}")


def _error_msg(msg: shim_pb2.ChaincodeMessage, text: str) -> shim_pb2.ChaincodeMessage:
    return _Msg(type=_Msg.ERROR, payload=text.encode("utf-8"), txid=msg.txid,
                channel_id=msg.channel_id)


__all__ = ["ChaincodeHandler"]
