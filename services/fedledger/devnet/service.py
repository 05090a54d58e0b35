"""The Fabric Gateway gRPC service of the dev peer (``gateway.proto``), over grpc.aio.

Refusals are answered as a Fabric 2.5 gateway answers them (``internal/pkg/gateway``):
the same gRPC status code for the same refusal at the same call, a status message in
the gateway's words and, where the gateway attaches them, ``gateway.ErrorDetail``s
naming the peer (or orderer), its org and what it said. ``_STATUS`` is the table, read
from Fabric 2.5's ``evaluate.go``, ``endorse.go``, ``submit.go``, ``commitstatus.go``,
``chaincodeevents.go`` and ``apiutils.go`` (``responseStatus``); ``docs/fabric.md`` has
it with the codes the dev peer answered before.
"""

from __future__ import annotations

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from fedledger.devnet.orderer import OrdererRefusal
from fedledger.devnet.peer import (
    AccessDeniedError,
    ChaincodeResponseError,
    ChannelUnavailableError,
    DevPeer,
    EndorsingOrgsUnavailableError,
    NoEndorsersError,
    ProposalRejectedError,
    SimulationError,
)
from fedledger.fabric.errors import FabricError
from fedledger.fabric.protos import MalformedMessageError

Code = grpc.StatusCode

# call -> [(refusal, code, status message, with an ErrorDetail)], most specific first.
# A message of None is the refusal's own; otherwise the gateway's wrapper, where "{}"
# takes the refusal's text.
_EVALUATE_ERROR = "evaluate call to endorser returned error: {}"
_EVALUATE_FAILED = "failed to evaluate transaction, see attached details for more info"
_ENDORSE_FAILED = "failed to endorse transaction, see attached details for more info"
_STATUS: dict[str, list[tuple[type[FabricError], grpc.StatusCode, str | None, bool]]] = {
    "Evaluate": [
        (ChannelUnavailableError, Code.UNAVAILABLE, None, False),
        (NoEndorsersError, Code.FAILED_PRECONDITION, None, False),
        (ProposalRejectedError, Code.FAILED_PRECONDITION, _EVALUATE_ERROR, True),
        (ChaincodeResponseError, Code.UNKNOWN, _EVALUATE_ERROR, True),
        (SimulationError, Code.ABORTED, _EVALUATE_FAILED, True),
    ],
    "Endorse": [
        (ChannelUnavailableError, Code.FAILED_PRECONDITION, None, False),
        (EndorsingOrgsUnavailableError, Code.UNAVAILABLE, None, False),
        (NoEndorsersError, Code.FAILED_PRECONDITION, None, False),
        (ProposalRejectedError, Code.ABORTED, _ENDORSE_FAILED, True),
        (ChaincodeResponseError, Code.ABORTED, _ENDORSE_FAILED, True),
        (SimulationError, Code.ABORTED, _ENDORSE_FAILED, True),
    ],
    "Submit": [
        (ChannelUnavailableError, Code.FAILED_PRECONDITION, None, False),
    ],
    "CommitStatus": [(AccessDeniedError, Code.PERMISSION_DENIED, None, False)],
    "ChaincodeEvents": [(AccessDeniedError, Code.PERMISSION_DENIED, None, False)],
}
# A broadcast answered with a 4xx status is not retried: ABORTED; anything else is
# tried on the next orderer, and with none left the gateway says UNAVAILABLE.
_ORDERER_CLIENT_ERRORS = {"BAD_REQUEST", "FORBIDDEN", "NOT_FOUND"}


def status_of(error: FabricError, call: str) -> tuple[grpc.StatusCode, str, bool]:
    """(gRPC code, status message, whether an ErrorDetail goes with it) of ``error``
    refusing ``call`` (a Gateway method name), as a Fabric 2.5 gateway answers."""
    if isinstance(error, MalformedMessageError):
        return Code.INVALID_ARGUMENT, error.message, False
    if isinstance(error, OrdererRefusal):
        if error.status in _ORDERER_CLIENT_ERRORS:
            message = (f"received unsuccessful response from orderer: "
                       f"status={error.status}, info={error.message}")
            return Code.ABORTED, message, False
        return Code.UNAVAILABLE, "no orderers could successfully process transaction", True
    for cls, code, template, detail in _STATUS.get(call, ()):
        if isinstance(error, cls):
            text = error.message if template is None else template.format(error.message)
            return code, text, detail
    return Code.INTERNAL, error.message, False


class GatewayService(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, peer: DevPeer, msp_id: str) -> None:
        self.peer = peer
        self.msp_id = msp_id  # the org this gateway endpoint reports in error details

    async def _abort(self, context: grpc.aio.ServicerContext, error: FabricError,
                     call: str) -> None:
        code, message, with_detail = status_of(error, call)
        details = []
        if with_detail:
            if isinstance(error, OrdererRefusal):
                address = self.peer.settings.orderer_address
                msp_id = self.peer.settings.orderer_msp_id
            else:
                address, msp_id = self.peer.settings.address, self.msp_id
            detail = any_pb2.Any()
            detail.Pack(gateway_pb2.ErrorDetail(address=address, msp_id=msp_id,
                                                message=error.message))
            details.append(detail)
        status = status_pb2.Status(code=code.value[0], message=message, details=details)
        await context.abort(code, message,
                            trailing_metadata=(("grpc-status-details-bin",
                                                status.SerializeToString()),))

    async def Endorse(self, request, context):  # noqa: N802, ANN001, ANN201 - gRPC names
        try:
            envelope = await self.peer.endorse(request)
        except FabricError as error:
            await self._abort(context, error, "Endorse")
        return gateway_pb2.EndorseResponse(prepared_transaction=envelope)

    async def Submit(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            await self.peer.submit(request)
        except FabricError as error:
            await self._abort(context, error, "Submit")
        return gateway_pb2.SubmitResponse()

    async def CommitStatus(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            return await self.peer.commit_status(request)
        except FabricError as error:
            await self._abort(context, error, "CommitStatus")

    async def Evaluate(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            response = await self.peer.evaluate(request)
        except FabricError as error:
            await self._abort(context, error, "Evaluate")
        return gateway_pb2.EvaluateResponse(result=response)

    async def ChaincodeEvents(self, request, context):  # noqa: N802, ANN001, ANN201
        try:
            async for response in self.peer.chaincode_events(request):
                yield response
        except FabricError as error:
            await self._abort(context, error, "ChaincodeEvents")


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
