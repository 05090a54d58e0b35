"""The org node's client of the coordinator (docs/services.md "Coordinator API"): every
request is signed with the org's Fabric identity (``SignedAuth``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from fedledger.fabric.identity import SigningIdentity
from fedledger.web.signing import CONTENT_SHA256, SignedAuth


class CoordinatorError(Exception):
    """Root of the coordinator client's errors."""


class CoordinatorUnavailable(CoordinatorError):
    """Not reachable, or a 5xx: try again later."""


class CoordinatorRefused(CoordinatorError):
    """A 4xx other than the 404s the protocol expects: retrying will not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


class CoordinatorClient:
    def __init__(self, base_url: str, identity: SigningIdentity, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=SignedAuth(identity),
                                  timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
              ) -> httpx.Response | None:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CoordinatorUnavailable(
                f"coordinator unreachable ({method} {path}): {exc}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 500:
            raise CoordinatorUnavailable(f"coordinator {method} {path}: {response.status_code} "
                                         f"{_message(response)}")
        if response.status_code >= 400:
            raise CoordinatorRefused(f"coordinator refused {method} {path}: "
                                     f"{response.status_code} {_message(response)}",
                                     response.status_code)
        return response

    def current_round(self) -> dict[str, Any] | None:
        response = self._call("GET", "/rounds/current", missing_ok=True)
        return None if response is None else response.json()

    def get_round(self, round_id: int) -> dict[str, Any]:
        return self._call("GET", f"/rounds/{round_id}").json()

    def aggregate(self, round_id: int) -> dict[str, Any] | None:
        response = self._call("GET", f"/rounds/{round_id}/aggregate", missing_ok=True)
        return None if response is None else response.json()

    def put_update(self, round_id: int, path: Path, sha256: str, num_samples: int) -> str:
        """Stream the update file; the body hash is declared and signed up front."""
        response = self._call(
            "PUT", f"/rounds/{round_id}/updates", content=_chunks(path),
            headers={CONTENT_SHA256: sha256, "X-Num-Samples": str(num_samples),
                     "Content-Type": "application/octet-stream"})
        return response.json()["update_hash"]

    def decline(self, round_id: int, reason: str) -> None:
        """This org will not submit to ``round_id`` (no data, or its policy)."""
        self._call("POST", f"/rounds/{round_id}/decline", json={"reason": reason[:1000]})

    def request_unlearning(self, notice_id: str, first_steps: dict[int, int]) -> dict[str, Any]:
        """Ask the consortium to replay the shards of a deletion (no personal data)."""
        return self._call("POST", "/unlearning", json={
            "notice_id": notice_id,
            "first_steps": {str(k): v for k, v in sorted(first_steps.items())}}).json()

    def unlearning(self, notice_id: str) -> dict[str, Any]:
        return self._call("GET", f"/unlearning/{notice_id}").json()

    def model(self, version_id: str) -> dict[str, Any]:
        return self._call("GET", f"/models/{version_id}").json()

    def served_model(self) -> dict[str, Any] | None:
        response = self._call("GET", "/models/served", missing_ok=True)
        return None if response is None else response.json()

    def blob(self, sha256: str, *, max_bytes: int) -> bytes:
        """A content-addressed blob, read up to ``max_bytes`` (CoordinatorRefused above)."""
        return self._download(f"/blobs/{sha256}", f"blob {sha256}", max_bytes)

    def model_adapter(self, version_id: str, *, max_bytes: int) -> bytes:
        """The served adapter of a model version (safetensors bytes)."""
        return self._download(f"/models/{version_id}/adapter", f"model version {version_id}",
                              max_bytes)

    def _download(self, path: str, what: str, max_bytes: int) -> bytes:
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response, path)
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise CoordinatorRefused(f"{what} exceeds {max_bytes} bytes", 413)
                return bytes(data)
        except httpx.TransportError as exc:
            raise CoordinatorUnavailable(f"coordinator unreachable (GET {path}): {exc}") from None

    @staticmethod
    def _check(response: httpx.Response, path: str) -> None:
        if response.status_code >= 500:
            raise CoordinatorUnavailable(f"coordinator GET {path}: {response.status_code}")
        raise CoordinatorRefused(f"coordinator refused GET {path}: {response.status_code} "
                                 f"{_message(response)}", response.status_code)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:500]
    return str(body)[:500]
