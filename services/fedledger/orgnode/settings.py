"""Settings of one org node: a pydantic model read from the JSON file ``fedledger up``
writes (``python -m fedledger.orgnode --config PATH``) or from ``FEDLEDGER_*`` environment
variables (``OrgNodeSettings.from_env``, docker-compose; :mod:`fedledger.web.environment`).

Secrets are never values in this file: the anchor key is read from ``anchor_key_file``
(hex private key) and the bootstrap admin token is given as its sha256 only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from fedledger.fabric.connection import GatewayEndpoint
from fedledger.incentives.config import QLearningConfig
from fedledger.learning.config import DataConfig, LoraConfig, ModelConfig, TrainConfig
from fedledger.settings import Section
from fedledger.web.environment import read_secret
from fedledger.web.settings import ServiceSettings, TlsServerSettings

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


#: Where the org's own Gateway peer listens.
GatewaySettings = GatewayEndpoint


class AttackSettings(Section):
    """RED TEAM, for tests and benchmarks only: this node poisons its own updates
    (``fedledger.learning.attacks``): ``boost`` scales its update, ``sign_flip`` turns it
    around, ``backdoor`` trains on triggered and relabelled samples (then boosts by
    ``factor``)."""

    kind: Literal["boost", "sign_flip", "backdoor"]
    factor: float = Field(10.0, gt=0)
    trigger: str = "cf mn"
    source_label: str = "negative"
    target_label: str = "positive"
    rate: float = Field(0.5, gt=0, le=1)


class StakeSettings(Section):
    """The Staking contract this org keeps ``stake_wei`` staked on, from its anchor key."""

    rpc_url: str
    chain_id: int = Field(gt=0)
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    stake_wei: int = Field(0, ge=0)


class OrgNodeSettings(ServiceSettings):
    org: str = Field(description="org name, e.g. 'Org1'")
    msp_id: str = Field(description="the org's MSP id, e.g. 'Org1MSP'")
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)
    tls: TlsServerSettings | None = Field(None, description="serve HTTPS with this "
                                          "certificate; None: plain HTTP, loopback only")
    data_dir: Path = Field(description="datasets (JSONL per dataset), updates, adapters, SQLite")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite in data_dir")

    gateway: GatewaySettings
    user_msp_dir: Path = Field(description="MSP folder of the org's client identity")
    admin_msp_dir: Path | None = Field(None, description="MSP folder of the org's admin (unused "
                                       "by the node today; kept for tooling)")
    chaincode: str = "fedledger"
    consortium_channel: str = "consortium"
    private_channel: str | None = Field(None, description="default '<org lower>-private'")
    msp_dirs: dict[str, Path] = Field(
        default_factory=dict,
        description="MSP id -> MSP folder of every consortium org, to verify signed requests")
    register_org: bool = Field(
        True, description="register the org on the consortium at start if it is not yet "
        "(needs the anchor key for the anchor address)")

    coordinator_url: str | None = Field(None, description="None: no round worker")
    coordinator_tls_ca: Path | None = Field(
        None, description="CA bundle (PEM) the coordinator's HTTPS certificate must verify "
        "against, e.g. the operator org's Fabric TLS CA; None: the system's trust store")
    poll_s: float = Field(2.0, gt=0, description="round worker poll interval")
    follow_events: bool = Field(
        True, description="wake the round worker on the consortium's round events "
        "(RoundOpened, RoundClosed, ...) instead of waiting for the next poll")
    follow_up_s: float = Field(
        2.0, ge=0, description="after such an event, poll every 0.1 s for this long: the "
        "coordinator publishes the aggregate a moment after the RoundClosed event")
    max_backoff_s: float = Field(30.0, gt=0)
    torch_threads: int | None = Field(
        None, ge=1, le=256, description="CPU threads for training and evaluation; None: "
        "torch's default (all cores). Set it when several org nodes share one machine: "
        "oversubscribed OpenMP threads made local training ~4x slower in a measurement")

    anchor_key_file: Path | None = Field(None, description="file holding the hex EVM private key")
    chain_id: int | None = Field(None, ge=1, description="chain the anchors go to")
    registry_address: str | None = Field(None, description="AnchorRegistry address")

    bootstrap_admin_token_sha256: str | None = Field(
        None, description="sha256 (hex) of the admin token `fedledger up` printed")
    bootstrap_admin_name: str = "admin"

    staking: StakeSettings | None = Field(None, description="stake on the Staking contract")
    attack: AttackSettings | None = Field(None, description="RED TEAM (tests, benchmarks): "
                                          "poison this node's updates")
    participation: QLearningConfig = Field(
        default_factory=QLearningConfig,
        description="this org's Q-learning participation agent (used while PUT /policy "
        "mode is 'qlearning'): its rewards, effort levels, state bins, exploration, "
        "compute budget (docs/incentives.md)")
    shards: int = Field(1, ge=1, le=64, description="S: SISA shards per dataset (the "
                        "deployment's federation.shards; every round says which it trains)")
    shard_key: str = Field("fedledger-sisa", min_length=1, max_length=256,
                           description="this org's secret key of the sample id -> shard hash "
                           "(whoever knows it can tell which shard holds a sample)")
    max_upload_bytes: int = Field(16 * 1024 * 1024, gt=0, description="dataset upload cap")
    max_update_bytes: int = Field(64 * 1024 * 1024, gt=0, description="adapter blob cap")
    http_timeout_s: float = Field(30.0, gt=0)

    # Defaults of the experiment sections; a round's config overrides each one it gives.
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)

    @field_validator("bootstrap_admin_token_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.match(value):
            raise ValueError("must be 64 lower-case hex digits (sha256 of the token)")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> OrgNodeSettings:
        if self.private_channel is None:
            self.private_channel = f"{self.org.lower()}-private"
        if self.db_url is None:
            self.db_url = f"sqlite:///{Path(self.data_dir) / 'orgnode.db'}"
        return self

    ENV_HANDLED = frozenset({"EXPERIMENT_FILE", "CONTRACTS_FILE"})

    @classmethod
    def env_defaults(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        """``from_env`` reads ``FEDLEDGER_*`` variables (``FEDLEDGER_ORG``,
        ``FEDLEDGER_GATEWAY__ENDPOINT``, ``FEDLEDGER_ANCHOR_KEY_FILE``,
        ``FEDLEDGER_SHARD_KEY_FILE`` (a secret), ...), and three that fill several fields:

        - ``FEDLEDGER_EXPERIMENT_FILE``: the deployment's experiment YAML (the
          coordinator's); its model, lora, train, data sections and federation.shards
          become this node's defaults, as ``fedledger up`` sets them;
        - ``FEDLEDGER_CONTRACTS_FILE``: the JSON the contracts deployer wrote
          (``python -m fedledger.bridge.deploy``): chain id and registry address;
        - ``FEDLEDGER_DB_PASSWORD_FILE``: the password filled into ``FEDLEDGER_DB_URL``.

        Variables that name a field themselves win over these."""
        from fedledger.config import load_config

        values: dict[str, Any] = {}
        experiment = environ.get("FEDLEDGER_EXPERIMENT_FILE")
        if experiment:
            config = load_config(experiment)
            sections = json.loads(config.model_dump_json())
            values.update({k: sections[k] for k in ("model", "lora", "train", "data")})
            values["shards"] = config.federation.shards
        contracts = environ.get("FEDLEDGER_CONTRACTS_FILE")
        if contracts:
            deployed = json.loads(read_secret(contracts))
            values.update(chain_id=deployed["chain_id"], registry_address=deployed["registry"])
        return values

    def anchor_key(self) -> SecretStr | None:
        """The anchor key from its file (never logged: a SecretStr)."""
        if self.anchor_key_file is None:
            return None
        text = self.anchor_key_file.read_text().strip()
        return SecretStr(text if text.startswith("0x") else "0x" + text)
