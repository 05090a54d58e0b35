"""The Fabric Gateway gRPC service of the dev peer (``gateway.proto``), over grpc.aio.

Failures are reported as a Fabric gateway reports them: a gRPC status code and, in the
status details, one ``gateway.ErrorDetail`` naming this peer, the org and the reason.
"""

from __future__ import annotations

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from fedledger.fabric.devpeer.peer import DevPeer, NotFoundError
from fedledger.fabric.errors import (
    ChaincodeError,
    EndorseError,
    FabricError,
    MSPError,
    PermissionDeniedError,
    SubmitError,
)
from fedledger.fabric.protos import MalformedMessageError

# Most specific first: SignatureError is an MSPError.
_STATUS = [
    (MalformedMessageError, grpc.StatusCode.INVALID_ARGUMENT),
    (MSPError, grpc.StatusCode.PERMISSION_DENIED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (EndorseError, grpc.StatusCode.ABORTED),
    (SubmitError, grpc.StatusCode.UNAVAILABLE),
    (ChaincodeError, grpc.StatusCode.UNAVAILABLE),
]


def status_code_of(error: FabricError) -> grpc.StatusCode:
    for cls, code in _STATUS:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


class GatewayService(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, peer: DevPeer, msp_id: str) -> None:
        self.peer = peer
        self.msp_id = msp_id  # the org this gateway endpoint reports in error details

    async def _abort(self, context: grpc.aio.ServicerContext, error: FabricError) -> None:
        code = status_code_of(error)
        detail = any_pb2.Any()
        detail.Pack(gateway_pb2.ErrorDetail(
            address=self.peer.settings.address, msp_id=self.msp_id, message=str(error)))
        status = status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
        await context.abort(code, error.message,
                            trailing_metadata=(("grpc-status-details-bin",
                                                status.SerializeToString()),))

    async def Endorse(self, request, context):  # noqa: N802, ANN001, ANN201 - gRPC names
        try:
            envelope = await self.peer.endorse(request)
        except FabricError as error:
            await self._abort(context, error)
        return gateway_pb2.EndorseResponse(prepared_transaction=envelope)

    async def Submit(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            await self.peer.submit(request)
        except FabricError as error:
            await self._abort(context, error)
        return gateway_pb2.SubmitResponse()

    async def CommitStatus(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            return await self.peer.commit_status(request)
        except FabricError as error:
            await self._abort(context, error)

    async def Evaluate(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            response = await self.peer.evaluate(request)
        except FabricError as error:
            await self._abort(context, error)
        return gateway_pb2.EvaluateResponse(result=response)

    async def ChaincodeEvents(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            async for response in self.peer.chaincode_events(request):
                yield response
        except FabricError as error:
            await self._abort(context, error)


async def start_gateway_server(peer: DevPeer, *, address: str, msp_id: str,
                               tls_cert: bytes | None = None, tls_key: bytes | None = None
                               ) -> tuple[grpc.aio.Server, int]:
    """Serve the gateway on ``address`` ("host:port", port 0 picks a free one); TLS when
    a certificate and key (PEM) are given. Returns the server and its bound port."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 100 * 1024 * 1024)])
    gateway_pb2_grpc.add_GatewayServicer_to_server(GatewayService(peer, msp_id), server)
    if tls_cert is not None and tls_key is not None:
        credentials = grpc.ssl_server_credentials([(tls_key, tls_cert)])
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    await server.start()
    return server, port
