"""Run an ASGI app with uvicorn on a loopback port, in this process (a thread: tests,
embedded mode) or as the main loop of a service process.

Plain HTTP only on loopback: a service asked to listen on any other address (``0.0.0.0``,
a LAN address, a host name) without a certificate (``tls``, a
:class:`~fedledger.web.settings.TlsServerSettings`) refuses with
:class:`InsecureBindError` before it binds anything, since bearer tokens would cross the
network in clear.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from fedledger.errors import FedLedgerError
from fedledger.web.settings import TlsServerSettings, is_loopback


class InsecureBindError(FedLedgerError, ValueError):
    """A non-loopback address without TLS, or TLS files that cannot be read."""


def check_bind(host: str, port: int, tls: TlsServerSettings | None) -> None:
    """Raise :class:`InsecureBindError` unless ``host:port`` may be served as asked."""
    if tls is None:
        if not is_loopback(host):
            raise InsecureBindError(
                f"refusing to serve plain HTTP on {host}:{port}: only loopback addresses "
                "(127.0.0.0/8, ::1, localhost) may go without TLS; set tls.cert_file and "
                "tls.key_file (FEDLEDGER_TLS__CERT_FILE, FEDLEDGER_TLS__KEY_FILE)",
                step="bind", context={"address": f"{host}:{port}"})
        return
    for path in (tls.cert_file, tls.key_file):
        if not path.is_file():
            raise InsecureBindError(f"cannot serve HTTPS on {host}:{port}: no file {path}",
                                    step="bind", context={"address": f"{host}:{port}"})


def url_of(host: str, port: int, tls: TlsServerSettings | None = None) -> str:
    """The base URL a service on ``host:port`` answers at."""
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls is not None else 'http'}://{shown}:{port}"


def server_config(app: Any, host: str, port: int, *, tls: TlsServerSettings | None = None,
                  log_level: str | None = "warning") -> uvicorn.Config:
    """The uvicorn config of ``app`` on ``host:port``, checked by :func:`check_bind`.
    uvicorn's own logging config is off (``log_config=None``): its lines then come out in
    the format and at the level :func:`fedledger.logs.configure_logging` set;
    ``log_level=None`` leaves uvicorn's loggers at that level too."""
    check_bind(host, port, tls)
    ssl: dict[str, Any] = {}
    if tls is not None:
        ssl = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None,
                          access_log=False, **ssl)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ThreadedServer:
    """uvicorn in a background thread; ``url`` once started."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *,  # noqa: ANN001
                 tls: TlsServerSettings | None = None) -> None:
        check_bind(host, port, tls)  # before free_port binds a probe socket
        self.host = host
        self.port = port or free_port(host)
        self.tls = tls
        self.server = uvicorn.Server(server_config(app, host, self.port, tls=tls))
        self._thread = threading.Thread(target=self.server.run, name=f"uvicorn:{self.port}",
                                        daemon=True)

    @property
    def url(self) -> str:
        return url_of(self.host, self.port, self.tls)

    def start(self, timeout: float = 30) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


def serve(app, host: str, port: int, *, tls: TlsServerSettings | None = None) -> None:  # noqa: ANN001
    """Serve in the foreground until SIGINT/SIGTERM; HTTPS with ``tls``, and plain HTTP
    only on loopback (:class:`InsecureBindError` otherwise, nothing bound)."""
    server = uvicorn.Server(server_config(app, host, port, tls=tls, log_level=None))
    server.run()
    if not server.started:  # e.g. the port is taken: exit non-zero, as uvicorn.run does
        raise SystemExit(3)
