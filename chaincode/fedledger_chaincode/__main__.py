"""Run the fedledger chaincode as a service (Fabric chaincode-as-a-service).

Environment, as Fabric's CCaaS builder and the fabric-samples CCaaS chaincodes use it:
  CHAINCODE_SERVER_ADDRESS  host:port to listen on (e.g. 0.0.0.0:9999)
  CHAINCODE_ID              the package id the peer installed (label:hash)
  CHAINCODE_TLS_DISABLED    "true": plaintext; "false": TLS, CHAINCODE_TLS_KEY and
                            CHAINCODE_TLS_CERT required; unset: TLS when any of the
                            files below is named
  CHAINCODE_TLS_KEY         PEM file of the server's TLS private key
  CHAINCODE_TLS_CERT        PEM file of the server's TLS certificate
  CHAINCODE_CLIENT_CA_CERT  optional PEM file of the CA(s) whose client certificates are
                            accepted: the peer must then present one (mutual TLS,
                            connection.json's client_auth_required)
A setting that is missing or names a file that cannot be read stops the server with an
error naming the variable (exit status 2).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from fedledger_chaincode.shim.errors import ShimError
from fedledger_chaincode.shim.server import TLSConfig

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ShimError, ValueError):
    """An environment variable is missing or wrong; ``variable`` names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class ServerSettings:
    """What ``python -m fedledger_chaincode`` serves, read from the environment."""

    address: str
    chaincode_id: str
    tls: TLSConfig | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        address = _required(env, "CHAINCODE_SERVER_ADDRESS", "host:port to listen on")
        chaincode_id = _required(env, "CHAINCODE_ID", "the package id the peer installed")
        return cls(address=address, chaincode_id=chaincode_id, tls=_tls_from_env(env))


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(name, f"not set ({what})")
    return value


def _tls_from_env(env: Mapping[str, str]) -> TLSConfig | None:
    files = ("CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT", "CHAINCODE_CLIENT_CA_CERT")
    disabled = env.get("CHAINCODE_TLS_DISABLED", "").strip().lower()
    if disabled in _TRUE:
        return None
    if disabled and disabled not in _FALSE:
        raise SettingsError("CHAINCODE_TLS_DISABLED", f"expected true or false, got {disabled!r}")
    if not disabled and not any(env.get(name, "").strip() for name in files):
        return None     # nothing asks for TLS
    key = _read_pem(env, "CHAINCODE_TLS_KEY")
    cert = _read_pem(env, "CHAINCODE_TLS_CERT")
    client_ca = None        # without it any client may connect (no client_auth_required)
    if env.get("CHAINCODE_CLIENT_CA_CERT", "").strip():
        client_ca = _read_pem(env, "CHAINCODE_CLIENT_CA_CERT")
    return TLSConfig(cert_pem=cert, key_pem=key, client_ca_pem=client_ca)


def _read_pem(env: Mapping[str, str], name: str) -> bytes:
    path = env.get(name, "").strip()
    if not path:
        raise SettingsError(name, "not set (a PEM file: TLS is on; "
                                  "CHAINCODE_TLS_DISABLED=true serves plaintext)")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SettingsError(name, f"cannot read {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in data:
        raise SettingsError(name, f"{path} is not a PEM file")
    return data


def main() -> int:
    try:
        settings = ServerSettings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from fedledger_chaincode.app import build_chaincode
    from fedledger_chaincode.shim.server import serve

    mode = "plaintext" if settings.tls is None else (
        "mutual TLS" if settings.tls.client_ca_pem else "TLS")
    print(f"serving chaincode {settings.chaincode_id} on {settings.address} ({mode})",
          file=sys.stderr)
    try:
        asyncio.run(serve(build_chaincode(), settings.address, settings.chaincode_id,
                          tls=settings.tls))
    except ShimError as exc:     # e.g. the address cannot be bound
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
