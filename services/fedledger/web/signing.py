"""Requests between org services are signed with the orgs' Fabric identities.

The signature (ECDSA P-256, low-S, the MSP key of the caller) covers the canonical JSON
of method, path with query, the sha256 of the body, a timestamp and a nonce; the server
checks the certificate against the network's MSPs (the same check the dev peer makes),
the signature, a ±5 minute clock window, and that the nonce was not seen before. For a
streamed upload the body hash is declared in ``X-Content-Sha256`` and the server checks
the stream against it as it reads.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Mapping

import httpx

from fedledger.canonical import canonical_json
from fedledger.fabric.errors import FabricError
from fedledger.fabric.identity import SigningIdentity
from fedledger.fabric.msp import MSPManager, VerifiedIdentity
from fedledger.web.errors import Unauthorized

IDENTITY = "X-Fedledger-Identity"
TIMESTAMP = "X-Fedledger-Timestamp"
NONCE = "X-Fedledger-Nonce"
SIGNATURE = "X-Fedledger-Signature"
CONTENT_SHA256 = "X-Content-Sha256"
MAX_SKEW_S = 300


def signed_message(method: str, path: str, body_sha256: str, timestamp: str, nonce: str) -> bytes:
    return canonical_json({"method": method.upper(), "path": path, "body_sha256": body_sha256,
                           "timestamp": timestamp, "nonce": nonce})


def sign_headers(identity: SigningIdentity, method: str, path: str, body_sha256: str
                 ) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), os.urandom(16).hex()
    signature = identity.sign(signed_message(method, path, body_sha256, timestamp, nonce))
    return {IDENTITY: base64.b64encode(identity.identity.serialize()).decode(),
            TIMESTAMP: timestamp, NONCE: nonce, SIGNATURE: base64.b64encode(signature).decode(),
            CONTENT_SHA256: body_sha256}


class SignedAuth(httpx.Auth):
    """httpx auth: signs each request with an org identity. A streamed body must come
    with its sha256 in ``X-Content-Sha256``; other bodies are hashed here."""

    requires_request_body = True

    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        declared = request.headers.get(CONTENT_SHA256)
        body_sha256 = declared or hashlib.sha256(request.content).hexdigest()
        path = request.url.raw_path.decode()
        request.headers.update(sign_headers(self.identity, request.method, path, body_sha256))
        yield request


class RequestVerifier:
    """Checks signed requests against the network's MSPs; remembers recent nonces."""

    def __init__(self, msps: MSPManager, *, max_skew_s: int = MAX_SKEW_S) -> None:
        self.msps = msps
        self.max_skew_s = max_skew_s
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, method: str, path: str, headers: Mapping[str, str], body_sha256: str
               ) -> VerifiedIdentity:
        missing = [h for h in (IDENTITY, TIMESTAMP, NONCE, SIGNATURE) if not headers.get(h)]
        if missing:
            raise Unauthorized(f"unsigned request: missing {', '.join(missing)}")
        try:
            serialized = base64.b64decode(headers[IDENTITY], validate=True)
            signature = base64.b64decode(headers[SIGNATURE], validate=True)
            timestamp = int(headers[TIMESTAMP])
        except ValueError:
            raise Unauthorized("malformed signature headers") from None
        if abs(time.time() - timestamp) > self.max_skew_s:
            raise Unauthorized(f"request timestamp {timestamp} is outside the ±{self.max_skew_s} s window")
        message = signed_message(method, path, body_sha256, headers[TIMESTAMP], headers[NONCE])
        try:
            identity = self.msps.verify(serialized, message, signature)
        except FabricError as exc:
            raise Unauthorized(f"request signature refused: {exc.message}") from None
        self._fresh(headers[NONCE])
        return identity

    def _fresh(self, nonce: str) -> None:
        now = time.time()
        with self._lock:
            while self._nonces and next(iter(self._nonces.values())) < now - 2 * self.max_skew_s:
                self._nonces.popitem(last=False)
            if nonce in self._nonces:
                raise Unauthorized("replayed request (nonce already used)")
            self._nonces[nonce] = now
