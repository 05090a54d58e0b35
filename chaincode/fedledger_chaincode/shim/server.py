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
class KeepalivePolicy:
    """HTTP/2 keepalive of the chaincode server, as gRPC core channel arguments.

    A Fabric peer pings its CCaaS connection every 60 s and also between streams
    (``comm.DefaultKeepaliveOptions``: ClientInterval 60 s, ClientTimeout 20 s,
    PermitWithoutStream). gRPC core's server default refuses that: without data on the
    connection it expects 5 minutes between pings, and after 2 "strikes" it sends GOAWAY
    ENHANCE_YOUR_CALM "too_many_pings", ending the shim stream after ~3 idle minutes.
    """

    # Accept pings when no call is open too (the peer's PermitWithoutStream).
    permit_without_calls: bool = True
    # Pings closer together than this, with no data sent in between, are strikes. 1 s is
    # 60x below the peer's interval, still accepts the dev peer's short test intervals
    # (1-2 s), and is as often as a gRPC core client ever pings a quiet connection.
    min_ping_interval_s: float = 1.0
    # gRPC's default: a few early pings (timer jitter) are tolerated, a ping flood is not.
    # 0 would disable the protection altogether.
    max_ping_strikes: int = 2
    # The server's own pings: a peer that vanished without closing TCP (host crash,
    # dropped NAT entry) is noticed within ping_interval + ping_timeout, and the
    # transactions its handler was running are cancelled instead of hanging.
    ping_interval_s: float = 120.0
    ping_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.min_ping_interval_s < 0 or self.max_ping_strikes < 0:
            raise ValueError("min_ping_interval_s and max_ping_strikes must be >= 0")
        if self.ping_interval_s <= 0 or self.ping_timeout_s <= 0:
            raise ValueError("ping_interval_s and ping_timeout_s must be > 0")

    def grpc_options(self) -> list[tuple[str, int]]:
        """The server channel arguments (``include/grpc/impl/channel_arg_names.h``)."""
        return [
            ("grpc.keepalive_permit_without_calls", int(self.permit_without_calls)),
            # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS
            ("grpc.http2.min_ping_interval_without_data_ms",
             round(self.min_ping_interval_s * 1000)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
            ("grpc.keepalive_time_ms", round(self.ping_interval_s * 1000)),
            ("grpc.keepalive_timeout_ms", round(self.ping_timeout_s * 1000)),
        ]


SERVER_KEEPALIVE = KeepalivePolicy()


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
        self.connections = 0

    async def Connect(  # noqa: N802 - the gRPC method name
            self, request_iterator: AsyncIterable[shim_pb2.ChaincodeMessage],
            context: grpc.aio.ServicerContext) -> AsyncIterator[shim_pb2.ChaincodeMessage]:
        self.connections += 1
        handler = ChaincodeHandler(self._chaincode, self._chaincode_id)
        async for msg in handler.stream(request_iterator):
            yield msg


class ChaincodeServer:
    """A CCaaS server for one chaincode; each peer connection gets its own handler."""

    def __init__(self, chaincode: Chaincode, address: str, chaincode_id: str,
                 tls: TLSConfig | None = None, *,
                 keepalive: KeepalivePolicy = SERVER_KEEPALIVE) -> None:
        self.address = address
        self.chaincode_id = chaincode_id
        self.keepalive = keepalive
        self._chaincode = chaincode
        self._tls = tls
        self._servicer = _Servicer(chaincode, chaincode_id)
        self._server: grpc.aio.Server | None = None
        self._port = 0

    @property
    def connections(self) -> int:
        """How many shim streams peers have opened on this server (a reconnect adds one)."""
        return self._servicer.connections

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
            *self.keepalive.grpc_options(),
        ])
        shim_grpc.add_ChaincodeServicer_to_server(self._servicer, server)
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


__all__ = ["MAX_MESSAGE_BYTES", "SERVER_KEEPALIVE", "ChaincodeServer", "KeepalivePolicy",
           "TLSConfig", "serve"]
