"""Coordinator settings: one pydantic model, read from the JSON file ``fedledger up`` writes
or from ``FEDLEDGER_*`` environment variables (docker-compose; :mod:`fedledger.web.environment`).

    settings = CoordinatorSettings.from_file("coordinator.json")   # or .from_env()
    app = create_app(settings)

Secrets: the operator token is given either in clear (``operator_token``, development)
or as its sha256 (``operator_token_sha256``); only the hash is kept in memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, model_validator

from fedledger.config import FedLedgerConfig
from fedledger.devnet.ca import load_network_crypto
from fedledger.fabric.connection import ClientIdentity, GatewayEndpoint
from fedledger.fabric.msp import MSPManager
from fedledger.settings import Section
from fedledger.web.settings import ServiceSettings, TlsServerSettings


class GatewaySettings(GatewayEndpoint):
    """The operator org's Gateway peer, and where the consortium contract lives."""

    channel: str = Field("consortium", description="the consortium channel")
    chaincode: str = Field("fedledger", description="chaincode name")
    contract: str = Field("consortium", description="contract inside the chaincode")


#: The operator org's client identity the coordinator signs ledger transactions with.
IdentitySettings = ClientIdentity


class OrgMSPSettings(Section):
    """Which org certificates signed requests may carry: either ``msp_dirs`` (MSP id ->
    verifying MSP folder) or a cryptogen-layout ``crypto_root`` with the org names."""

    msp_dirs: dict[str, Path] = Field(default_factory=dict)
    crypto_root: Path | None = None
    orgs: list[str] = Field(default_factory=list, description="org names under crypto_root (Org1...)")
    domain: str = "example.com"

    @model_validator(mode="after")
    def _one_source(self) -> OrgMSPSettings:
        if not self.msp_dirs and not (self.crypto_root and self.orgs):
            raise ValueError("give msp_dirs or crypto_root with orgs")
        return self

    def resolved(self) -> dict[str, Path]:
        dirs = dict(self.msp_dirs)
        if self.crypto_root is not None and self.orgs:
            crypto = load_network_crypto(self.crypto_root, self.orgs, self.domain)
            # Peer orgs only: the orderer org is no consortium member.
            dirs.update({org.msp_id: org.msp_dir for org in crypto.orgs.values()})
        return dirs

    def manager(self) -> MSPManager:
        return MSPManager.from_dirs(self.resolved())


class StakingSettings(Section):
    """The Staking contract the validator committee is drawn by (read-only here)."""

    rpc_url: str = Field(description="JSON-RPC URL of the chain")
    chain_id: int = Field(gt=0, description="checked against eth_chainId")
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the Staking contract")


class CoordinatorSettings(ServiceSettings):
    """Everything one coordinator process needs. From ``FEDLEDGER_*`` variables
    (``from_env``), e.g. ``FEDLEDGER_GATEWAY__ENDPOINT``, ``FEDLEDGER_EXPERIMENT_FILE``
    (the experiment YAML), ``FEDLEDGER_OPERATOR_TOKEN_SHA256_FILE`` (a secret file), and
    ``FEDLEDGER_DB_PASSWORD_FILE``: the password filled into ``FEDLEDGER_DB_URL``."""

    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)
    tls: TlsServerSettings | None = Field(None, description="serve HTTPS with this "
                                          "certificate; None: plain HTTP, loopback only")
    db_url: str = Field("sqlite:///coordinator.db", description="SQLAlchemy URL (sqlite or postgresql+psycopg)")
    blob_dir: Path = Field(Path("blobs"), description="content-addressed blob store")
    gateway: GatewaySettings
    identity: IdentitySettings
    org_msps: OrgMSPSettings
    operator_token: str | None = Field(None, description="operator bearer token in clear (development)")
    operator_token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                              description="sha256 hex of the operator token")
    experiment: FedLedgerConfig = Field(default_factory=FedLedgerConfig,
                                        description="model, lora, train, data, federation.strategy, seed")
    max_update_bytes: int = Field(64 * 1024 * 1024, gt=0)
    committee_size: int | None = Field(None, gt=0, description="None: every registered org")
    default_deadline_s: int = Field(600, gt=0)
    default_quorum: int | None = Field(None, ge=1, description="None: a majority of the committee")
    poll_s: float = Field(1.0, gt=0, description="ledger poll interval of the round worker")
    follow_events: bool = Field(True, description="wake the worker on chaincode events")
    staking: StakingSettings | None = Field(None, description="None: validators drawn with "
                                            "equal weights, no stakes shown")

    @model_validator(mode="after")
    def _token(self) -> CoordinatorSettings:
        if not self.operator_token and not self.operator_token_sha256:
            raise ValueError("set operator_token_sha256 (or operator_token in development)")
        return self

    @model_validator(mode="after")
    def _no_drift_control(self) -> CoordinatorSettings:
        # SCAFFOLD needs each org's control and the server's carried round to round and a
        # control change uploaded with each update; the round protocol carries neither yet.
        # Refused rather than silently running FedAvg.
        if self.experiment.federation.drift_control != "none":
            raise ValueError(f"federation.drift_control "
                             f"{self.experiment.federation.drift_control!r} runs in `fedledger "
                             "simulate` and the benchmarks; the services do not carry SCAFFOLD's "
                             "controls yet, so they serve 'none' only (FedProx, train.prox_mu, "
                             "works there)")
        return self

    @property
    def operator_token_hash(self) -> str:
        if self.operator_token_sha256:
            return self.operator_token_sha256
        assert self.operator_token is not None
        return hashlib.sha256(self.operator_token.encode()).hexdigest()
