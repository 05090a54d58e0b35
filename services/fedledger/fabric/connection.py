"""Where a Fabric Gateway peer listens and which client identity talks to it.

The one settings model the coordinator, the org nodes and the standalone bridge share
(each adds what only it needs, e.g. the coordinator's channel and contract names), so a
Gateway is reached the same way, and spelled the same way in YAML, everywhere.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .gateway import Gateway
from .identity import SigningIdentity, load_signing_identity


class GatewayEndpoint(BaseModel):
    """A peer's Gateway service: address and, for TLS, the CA and certificate host."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="host:port of the peer's Gateway service")
    tls_ca_cert: Path | None = Field(
        None, description="PEM of the TLS CA that signed the peer's certificate (None: plaintext)")
    server_name: str | None = Field(
        None, description="host name in the peer's TLS certificate, when it differs from endpoint")

    def connect(self, identity: SigningIdentity) -> Gateway:
        tls = self.tls_ca_cert.read_bytes() if self.tls_ca_cert else None
        return Gateway.connect(self.endpoint, identity, tls_root_cert=tls,
                               server_name=self.server_name)


class ClientIdentity(BaseModel):
    """An org's client identity: its MSP id and an MSP folder (signcerts/, keystore/)."""

    model_config = ConfigDict(extra="forbid")

    msp_id: str = Field(description="the org's MSP id, e.g. Org1MSP")
    msp_dir: Path = Field(description="MSP folder of the client identity (signcerts/, keystore/)")

    def load(self) -> SigningIdentity:
        return load_signing_identity(self.msp_dir, self.msp_id)
