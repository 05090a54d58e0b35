"""Settings of the host process: a pydantic model read from the JSON file ``fedledger up``
writes (``python -m fedledger.host --config PATH``).

    {
      "root": ".fedledger/up",                 # fabric/, bridge.db and host.json go here
      "host": "127.0.0.1", "port": 8090,       # the status API (/health, /anchors, /docs)
      "gateway_port": 7051, "rpc_port": 8545,  # 0: any free port
      "orgs": [{"name": "Org1", "msp_id": "Org1MSP", "anchor_address": "0x..",
                "node_url": "http://127.0.0.1:8101"}, ...],
      "operator": "Org1",                      # the bridge acts on Fabric as its client
      "bridge": {"batch_rounds": 1, "confirmations": 1, "poll_interval_s": 0.5},
      "threshold": null                        # null: a majority of the orgs
    }

``HostSettings.from_env()`` builds the same model from ``FEDLEDGER_*`` environment
variables (:mod:`fedledger.web.environment`; e.g. ``FEDLEDGER_ROOT``,
``FEDLEDGER_ORGS='[{"name": "Org1", ...}]'``, ``FEDLEDGER_BRIDGE__BATCH_ROUNDS``).

The host never holds an org's anchor key: it only needs each org's anchor ADDRESS (the
registry's key set) and the URL of the org node that signs with it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from fedledger.bridge.service import BridgeSettings
from fedledger.settings import Section
from fedledger.web.settings import ServiceSettings, TlsServerSettings


class HostOrg(Section):
    name: str = Field(description="org name as in the crypto layout, e.g. 'Org1'")
    msp_id: str = Field(description="its MSP id, e.g. 'Org1MSP'")
    anchor_address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$",
                                description="the org's EVM anchor key address (registry key)")
    node_url: str | None = Field(None, description="the org node (anchoring endpoints); None: "
                                 "the org signs no anchors")
    node_tls_ca: Path | None = Field(None, description="CA bundle (PEM) an https:// node_url's "
                                     "certificate must verify against (the org's Fabric TLS "
                                     "CA); None: the system's trust store")


class HostStaking(Section):
    """The Staking contract the host deploys beside the AnchorRegistry (same org keys and
    threshold), and what it funds on the embedded chain."""

    enabled: bool = True
    reward_pool_wei: int = Field(10**20, ge=0, description="funded into the reward pool")
    fund_orgs_wei: int = Field(10**19, ge=0, description="sent to each org's anchor address "
                               "(to stake and pay gas)")
    withdrawal_delay_s: int = Field(7 * 24 * 3600, ge=0)


class HostSettings(ServiceSettings):
    root: Path = Field(description="working folder: fabric/ (crypto, ledgers), evm/ (the chain "
                       "journal), bridge.db, host.json")
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535, description="status API port (0: any free port)")
    tls: TlsServerSettings | None = Field(None, description="serve the status API over HTTPS "
                                          "with this certificate; None: plain HTTP, loopback only")
    gateway_port: int = Field(0, ge=0, le=65535, description="Fabric Gateway port (0: any)")
    chaincode_port: int = Field(0, ge=0, le=65535, description="chaincode server port (0: any)")
    rpc_port: int = Field(0, ge=0, le=65535, description="EVM JSON-RPC port (0: any)")
    orgs: list[HostOrg] = Field(min_length=1)
    operator: str | None = Field(None, description="org whose client identity the bridge uses "
                                 "on Fabric (default: the first)")
    bridge: BridgeSettings = Field(default_factory=lambda: BridgeSettings(poll_interval_s=0.5))
    bridge_db_url: str | None = Field(None, description="the bridge outbox; default sqlite "
                                      "root/bridge.db (kept across restarts, like the chain)")
    evm_journal: Path | None = Field(None, description="the embedded chain's journal, replayed "
                                     "at start (fedledger.evm.journal); default "
                                     "root/evm/chain.jsonl. The deployed contracts' addresses "
                                     "are kept beside it in contracts.json")
    threshold: int | None = Field(None, ge=1, description="anchor signatures needed; None: majority")
    staking: HostStaking = Field(default_factory=HostStaking)
    rpc_timeout_s: float = Field(30.0, gt=0, description="bridge -> org node request timeout")
    host_json: Path | None = Field(None, description="where to write host.json; default root/host.json")

    @field_validator("orgs")
    @classmethod
    def _unique(cls, orgs: list[HostOrg]) -> list[HostOrg]:
        for attr in ("name", "msp_id", "anchor_address"):
            values = [str(getattr(o, attr)).lower() for o in orgs]
            if len(set(values)) != len(values):
                raise ValueError(f"org {attr}s must be unique")
        return orgs

    @model_validator(mode="after")
    def _check(self) -> HostSettings:
        names = [o.name for o in self.orgs]
        if self.operator is not None and self.operator not in names and \
                self.operator not in [o.msp_id for o in self.orgs]:
            raise ValueError(f"operator {self.operator!r} is not one of the orgs {names}")
        if self.threshold is not None and self.threshold > len(self.orgs):
            raise ValueError(f"threshold {self.threshold} exceeds the {len(self.orgs)} orgs")
        return self

    @property
    def operator_org(self) -> HostOrg:
        if self.operator is None:
            return self.orgs[0]
        return next(o for o in self.orgs if self.operator in (o.name, o.msp_id))

    @property
    def signature_threshold(self) -> int:
        return self.threshold or len(self.orgs) // 2 + 1

    @property
    def fabric_root(self) -> Path:
        return self.root / "fabric"

    @property
    def host_json_path(self) -> Path:
        return self.host_json or self.root / "host.json"

    @property
    def evm_journal_path(self) -> Path:
        return self.evm_journal or self.root / "evm" / "chain.jsonl"

    @property
    def evm_contracts_path(self) -> Path:
        """What the host deployed on the journaled chain (beside the journal, which it
        belongs to)."""
        return self.evm_journal_path.parent / "contracts.json"

    @property
    def outbox_url(self) -> str:
        return self.bridge_db_url or f"sqlite:///{self.root / 'bridge.db'}"
