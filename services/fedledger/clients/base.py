"""What every fedledger client shares: one ``httpx.Client`` per service, its
authentication (an operator's or admin's bearer token, an org's signed requests, or
both), the mapping of failures to :mod:`fedledger.clients.errors`, and parsing answers
into the API contract's pydantic models (:mod:`fedledger.protocol`).

TLS: ``verify`` is the CA bundle (a PEM file) the service's certificate must verify
against, e.g. its org's Fabric TLS CA certificate; ``True`` (the default) the system's
trust store, ``False`` no check (tests only). A bearer token is never sent over plain
``http://`` to a host that is not loopback (:class:`InsecureTransport`, nothing sent).
"""

from __future__ import annotations

import ssl
from collections.abc import Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from fedledger.clients.errors import (
    ClientError,
    InsecureTransport,
    PayloadTooLarge,
    ServiceUnavailable,
    UnexpectedResponse,
    UntrustedServer,
    error_for,
)
from fedledger.fabric.identity import SigningIdentity
from fedledger.web.settings import is_loopback
from fedledger.web.signing import SignedAuth

#: What ``verify=`` takes: a CA bundle file, True (system trust store), False (no check).
Verify = str | Path | bool

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class ClientAuth(httpx.Auth):
    """A bearer token (``Authorization: Bearer``), a request signature by an org's
    identity (:class:`~fedledger.web.signing.SignedAuth`), or both."""

    def __init__(self, token: str | None = None, identity: SigningIdentity | None = None, *,
                 service: str = "service") -> None:
        self.token = token
        self.signed = SignedAuth(identity) if identity is not None else None
        self.requires_request_body = self.signed is not None
        self.service = service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is not None:
            # Checked on each request (not only the base URL): a redirect or an absolute
            # URL must not carry the token off the machine in clear either.
            if request.url.scheme != "https" and not is_loopback(request.url.host):
                raise InsecureTransport(
                    f"{self.service} {request.method} {request.url.path}: refusing to send "
                    f"a bearer token over plain {request.url.scheme}:// to "
                    f"{request.url.host} (use https://)", service=self.service,
                    method=request.method, path=request.url.path, code="insecure_transport")
            request.headers["Authorization"] = f"Bearer {self.token}"
        if self.signed is not None:
            yield from self.signed.auth_flow(request)
        else:
            yield request


def ssl_context(verify: Verify) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` gets: an SSL context trusting only the CA bundle ``verify``
    names, or the bool itself."""
    if isinstance(verify, bool):
        return verify
    return ssl.create_default_context(cafile=str(verify))


def _tls_refused(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error (bad certificate) behind a transport error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes in chunks, for a streamed upload."""
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


class ServiceClient:
    """The base of the clients: ``base_url`` is the service's root URL."""

    service = "service"

    def __init__(self, base_url: str, *, token: str | None = None,
                 identity: SigningIdentity | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, verify: Verify = True) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url,
                                  auth=ClientAuth(token, identity, service=self.service),
                                  timeout=timeout, transport=transport,
                                  verify=ssl_context(verify))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response of a request that succeeded (2xx); anything else raises."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from None
        if response.status_code >= 400:
            raise error_for(response, service=self.service, method=method, path=path)
        return response

    def _optional(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """Like :meth:`_request`, but a 404 is None (the protocol expects it)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from None
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise error_for(response, service=self.service, method=method, path=path)
        return response

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return self._parse(model, self._request(method, path, **kwargs), method, path)

    def _optional_model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M | None:
        response = self._optional(method, path, **kwargs)
        return None if response is None else self._parse(model, response, method, path)

    def _adapted(self, adapter: TypeAdapter[T], method: str, path: str, **kwargs: Any) -> T:
        """A response of any type (a list of models, a union) parsed by ``adapter``."""
        response = self._request(method, path, **kwargs)
        try:
            return adapter.validate_json(response.content)
        except ValidationError as exc:
            raise self._unexpected(method, path, response, exc) from None

    def _parse(self, model: type[M], response: httpx.Response, method: str, path: str) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._unexpected(method, path, response, exc) from None

    def _download(self, path: str, *, max_bytes: int, what: str | None = None) -> bytes:
        """A binary answer, read up to ``max_bytes`` (:class:`PayloadTooLarge` above)."""
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_for(response, service=self.service, method="GET", path=path)
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise PayloadTooLarge(f"{what or path} exceeds {max_bytes} bytes",
                                              service=self.service, method="GET", path=path,
                                              status=413, code="payload_too_large")
                return bytes(data)
        except httpx.TransportError as exc:
            raise self._unreachable("GET", path, exc) from None

    def _unreachable(self, method: str, path: str, exc: Exception) -> ClientError:
        refused = _tls_refused(exc)
        if refused is not None:
            return UntrustedServer(
                f"{self.service} at {self.base_url} ({method} {path}): its TLS certificate "
                f"does not verify: {refused}", service=self.service, method=method, path=path,
                code="untrusted_server", reason=str(refused))
        return ServiceUnavailable(f"{self.service} unreachable ({method} {path}): {exc}",
                                  service=self.service, method=method, path=path,
                                  reason=f"{self.base_url} unreachable: {exc}")

    def _unexpected(self, method: str, path: str, response: httpx.Response,
                    exc: ValidationError) -> ClientError:
        return UnexpectedResponse(
            f"{self.service} {method} {path}: the answer does not match the API contract: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0].get('msg')} at "
            f"{'.'.join(str(p) for p in exc.errors()[0].get('loc', ()))}",
            service=self.service, method=method, path=path, status=response.status_code)
