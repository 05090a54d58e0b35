"""Typed HTTP clients of the fedledger services, for the CLI, the launcher, the demo,
the benchmarks and the org node itself: :class:`CoordinatorClient`,
:class:`OrgNodeClient`, :class:`HostClient`.

Each returns the API contract's pydantic models (:mod:`fedledger.protocol`) and raises
the errors of :mod:`fedledger.clients.errors` (HTTP status and the service's error code
on each). No other module builds the services' requests or auth headers by hand.
"""

from fedledger.clients.coordinator import CoordinatorClient
from fedledger.clients.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InsecureTransport,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RequestRefused,
    ServiceUnavailable,
    Unauthorized,
    UnexpectedResponse,
    UntrustedServer,
)
from fedledger.clients.host import HostClient
from fedledger.clients.orgnode import OrgNodeClient

__all__ = ["ClientError", "Conflict", "CoordinatorClient", "Forbidden", "HostClient",
           "InsecureTransport", "InvalidRequest", "NotFound", "OrgNodeClient", "PayloadTooLarge",
           "RequestRefused", "ServiceUnavailable", "Unauthorized", "UnexpectedResponse",
           "UntrustedServer"]
