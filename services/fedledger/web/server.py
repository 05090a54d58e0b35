"""Run an ASGI app with uvicorn on a loopback port, in this process (a thread: tests,
embedded mode) or as the main loop of a service process."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ThreadedServer:
    """uvicorn in a background thread; ``url`` once started."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:  # noqa: ANN001
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port,
                                                    log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self.server.run, name=f"uvicorn:{self.port}",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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


def serve(app, host: str, port: int) -> None:  # noqa: ANN001
    """Serve in the foreground until SIGINT/SIGTERM."""
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
