"""The chaincode-as-a-service gRPC server: the peer dials it and speaks the shim protocol.

``ChaincodeServer`` runs in the caller's event loop (tests run it in-process with
address ``127.0.0.1:0``); ``serve`` is the blocking entry point of the container.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import grpc
from fabric_protos.peer import chaincode_shim_pb2 as shim_pb2
from fabric_protos.peer import chaincode_shim_pb2_grpc as shim_grpc

from fedledger_chaincode.shim.errors import ShimError
from fedledger_chaincode.shim.handler import ChaincodeHandler
from fedledger_chaincode.shim.interfaces import Chaincode

# Fabric's default gRPC message limit (peer.chaincode / CCaaS: 100 MiB).
MAX_MESSAGE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TLSConfig:
    """Server TLS; with ``client_ca_pem`` the peer must present a certificate it signed."""

    cert_pem: bytes
    key_pem: bytes
    client_ca_pem: bytes | None = None


class _Servicer(shim_grpc.ChaincodeServicer):
    def __init__(self, chaincode: Chaincode, chaincode_id: str) -> None:
        self._chaincode = chaincode
        self._chaincode_id = chaincode_id

    async def Connect(  # noqa: N802 - the gRPC method name
            self, request_iterator: AsyncIterable[shim_pb2.ChaincodeMessage],
            context: grpc.aio.ServicerContext) -> AsyncIterator[shim_pb2.ChaincodeMessage]:
        handler = ChaincodeHandler(self._chaincode, self._chaincode_id)
        async for msg in handler.stream(request_iterator):
            yield msg


class ChaincodeServer:
    """A CCaaS server for one chaincode; each peer connection gets its own handler."""

    def __init__(self, chaincode: Chaincode, address: str, chaincode_id: str,
                 tls: TLSConfig | None = None) -> None:
        self.address = address
        self.chaincode_id = chaincode_id
        self._chaincode = chaincode
        self._tls = tls
        self._server: grpc.aio.Server | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port (the one picked when the address asked for port 0)."""
        if self._server is None:
            raise ShimError("the chaincode server is not started")
        return self._port

    async def start(self) -> None:
        if self._server is not None:
            raise ShimError("the chaincode server is already started")
        server = grpc.aio.server(options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ])
        shim_grpc.add_ChaincodeServicer_to_server(
            _Servicer(self._chaincode, self.chaincode_id), server)
        try:
            if self._tls is None:
                port = server.add_insecure_port(self.address)
            else:
                creds = grpc.ssl_server_credentials(
                    [(self._tls.key_pem, self._tls.cert_pem)],
                    root_certificates=self._tls.client_ca_pem,
                    require_client_auth=self._tls.client_ca_pem is not None)
                port = server.add_secure_port(self.address, creds)
        except RuntimeError as exc:
            raise ShimError(f"cannot listen on {self.address}: {exc}") from exc
        if port == 0:
            raise ShimError(f"cannot listen on {self.address}")
        await server.start()
        self._server = server
        self._port = port

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; open streams are cancelled after ``grace`` seconds."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace)

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> ChaincodeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def serve(chaincode: Chaincode, address: str, chaincode_id: str,
                tls: TLSConfig | None = None) -> None:
    """Serve ``chaincode`` until cancelled (the container's main loop)."""
    server = ChaincodeServer(chaincode, address, chaincode_id, tls)
    await server.start()
    try:
        await server.wait_for_termination()
    finally:
        await asyncio.shield(server.stop(grace=1.0))


__all__ = ["MAX_MESSAGE_BYTES", "ChaincodeServer", "TLSConfig", "serve"]
