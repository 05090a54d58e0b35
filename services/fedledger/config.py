"""The one project configuration: a pydantic model loaded from a YAML file.

The in-process simulation reads it today; the coordinator and org-node services read the
same file (their own sections are added next to these), so an experiment and a deployment
are described the same way. ``fedledger init-config`` writes the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fedledger.learning.config import ExperimentConfig
from fedledger.learning.errors import ConfigError


class FedLedgerConfig(ExperimentConfig):
    """The whole project's configuration. Today: the experiment sections; the Fabric,
    EVM and service sections join here as those parts land."""


def load_config(path: str | Path) -> FedLedgerConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], *, source: str = "<config>") -> FedLedgerConfig:
    try:
        return FedLedgerConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config {source}: {problems}") from exc


def dump_config(config: FedLedgerConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
