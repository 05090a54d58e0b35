"""HTTPS between the services: a service served with a certificate from a dev Fabric TLS
CA, the typed clients verifying it against that CA (and refusing another CA's), the
refusal to serve plain HTTP off loopback, and the refusal to send a bearer token over
plain HTTP off loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from fedledger.clients import (
    ClientError,
    CoordinatorClient,
    InsecureTransport,
    OrgNodeClient,
    UntrustedServer,
)
from fedledger.devnet.ca import new_ca, write_service_tls
from fedledger.devnet.ca.authority import CertAuthority
from fedledger.devnet.ca.layout import _write, _write_key
from fedledger.errors import FedLedgerError
from fedledger.web.server import InsecureBindError, ThreadedServer, check_bind, free_port, serve
from fedledger.web.settings import TlsServerSettings, is_loopback

TOKEN = "s3cret-admin-token"


def _org_dir(root: Path, name: str) -> tuple[Path, CertAuthority]:
    """An org folder with only its TLS CA (``tlsca/``), as the dev CA writes it."""
    ca = new_ca(f"tlsca.{name}.example.com", f"{name}.example.com")
    org_dir = root / name
    _write(org_dir / "tlsca" / f"tlsca.{name}.example.com-cert.pem", ca.cert_pem)
    _write_key(org_dir / "tlsca" / "priv_sk", ca.key)
    return org_dir, ca


def recording_app() -> FastAPI:
    """An org node's ``/me``, recording each request that reaches it."""
    app = FastAPI()
    app.state.seen = []

    @app.get("/me")
    async def me(request: Request) -> dict[str, str]:
        app.state.seen.append(request.headers.get("authorization"))
        return {"user": "admin", "role": "admin", "org": "Org1MSP"}

    return app


@pytest.fixture()
def https_node(tmp_path: Path) -> Iterator[tuple[ThreadedServer, Path, Path]]:
    """(the server, its org's TLS CA certificate, another org's TLS CA certificate)."""
    org1, _ = _org_dir(tmp_path, "org1")
    org2, _ = _org_dir(tmp_path, "org2")
    tls_dir = write_service_tls(org1, "org1-node")
    server = ThreadedServer(recording_app(), tls=TlsServerSettings(
        cert_file=tls_dir / "server.crt", key_file=tls_dir / "server.key")).start()
    try:
        yield server, tls_dir / "ca.crt", org2 / "tlsca" / "tlsca.org2.example.com-cert.pem"
    finally:
        server.stop()


def test_the_service_certificate_is_issued_by_the_orgs_tls_ca(tmp_path: Path) -> None:
    from cryptography import x509

    org1, ca = _org_dir(tmp_path, "org1")
    tls_dir = write_service_tls(org1, "org1-node", ["node.org1.example.com"])
    cert = x509.load_pem_x509_certificate((tls_dir / "server.crt").read_bytes())
    cert.verify_directly_issued_by(ca.cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "org1-node", "node.org1.example.com", "localhost"}
    assert (tls_dir / "ca.crt").read_bytes() == ca.cert_pem
    assert (tls_dir / "server.key").stat().st_mode & 0o077 == 0
    # written once: a second call keeps the certificate
    assert write_service_tls(org1, "org1-node").joinpath("server.crt").read_bytes() == \
        (tls_dir / "server.crt").read_bytes()


def test_a_client_with_the_orgs_ca_verifies_the_service_and_is_served(https_node) -> None:
    server, ca, _ = https_node
    assert server.url.startswith("https://127.0.0.1:")
    with OrgNodeClient(server.url, token=TOKEN, verify=ca) as client:
        me = client.me()
    assert (me.user, me.org) == ("admin", "Org1MSP")
    assert server.server.config.app.state.seen == [f"Bearer {TOKEN}"]


def test_a_client_with_another_ca_refuses_the_service_and_sends_nothing(https_node) -> None:
    server, _, other_ca = https_node
    with OrgNodeClient(server.url, token=TOKEN, verify=other_ca) as client, \
            pytest.raises(UntrustedServer) as info:
        client.me()
    assert isinstance(info.value, ClientError) and info.value.code == "untrusted_server"
    # ... nor with the system's trust store, which knows no dev CA
    with OrgNodeClient(server.url, token=TOKEN) as client, pytest.raises(UntrustedServer):
        client.me()
    assert server.server.config.app.state.seen == []


def test_plain_http_to_an_https_service_gets_no_answer(https_node) -> None:
    server, ca, _ = https_node
    plain = server.url.replace("https://", "http://")
    with OrgNodeClient(plain, token=TOKEN, verify=ca) as client, pytest.raises(ClientError):
        client.me()
    assert server.server.config.app.state.seen == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "org1-node"])
def test_serve_refuses_a_non_loopback_address_without_tls(host: str) -> None:
    port = free_port()
    with pytest.raises(InsecureBindError) as info:
        serve(recording_app(), host, port)
    assert isinstance(info.value, FedLedgerError) and info.value.step == "bind"
    assert info.value.context["address"] == f"{host}:{port}"
    with pytest.raises(InsecureBindError):
        ThreadedServer(recording_app(), host=host, port=port)
    # nothing was bound: the port is still free on loopback
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_serve_refuses_tls_files_that_are_missing(tmp_path: Path) -> None:
    tls = TlsServerSettings(cert_file=tmp_path / "server.crt", key_file=tmp_path / "server.key")
    with pytest.raises(InsecureBindError) as info:
        check_bind("0.0.0.0", 8000, tls)
    assert info.value.step == "bind"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("coordinator", False), ("localhost.example.com", False)])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


class _Recorder(httpx.BaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"user": "admin", "role": "admin", "org": "Org1MSP"})


@pytest.mark.parametrize("url", ["http://org1-node:8000", "http://10.1.2.3:8000",
                                 "http://0.0.0.0:8000"])
def test_a_client_refuses_to_send_a_token_over_plain_http_off_loopback(url: str) -> None:
    transport = _Recorder()
    with OrgNodeClient(url, token=TOKEN, transport=transport) as client, \
            pytest.raises(InsecureTransport) as info:
        client.me()
    assert info.value.code == "insecure_transport" and info.value.path == "/me"
    with CoordinatorClient(url, token=TOKEN, transport=transport) as client, \
            pytest.raises(InsecureTransport):
        client.open_round()
    assert transport.requests == []


def test_tokens_go_over_https_and_loopback_http_and_tokenless_requests_anywhere() -> None:
    transport = _Recorder()
    for url in ("https://org1-node:8000", "http://127.0.0.1:8000", "http://localhost:8000"):
        with OrgNodeClient(url, token=TOKEN, transport=transport) as client:
            client.me()
    with OrgNodeClient("http://org1-node:8000", transport=transport) as client:
        client.me()   # no token: nothing secret to protect
    assert [r.headers.get("authorization") for r in transport.requests] == [
        f"Bearer {TOKEN}"] * 3 + [None]
