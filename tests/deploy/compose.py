"""Reading docker-compose.yml as compose does: .env, ${VAR} interpolation, YAML anchors
and merge keys; and finding the tools the deployment checks need."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_FILE = REPO / ".env"
DEPLOY = REPO / "deploy"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, $$
_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                  r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def dotenv(path: Path = ENV_FILE) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


class InterpolationError(ValueError):
    pass


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        value = variables.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return interpolate(arg, variables) if unset else value  # type: ignore[return-value]
        if op in (":?", "?"):
            if unset:
                raise InterpolationError(f"{name}: {arg}")
            return value  # type: ignore[return-value]
        return "" if value is None else value
    return _VAR.sub(one, text)


def _walk(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_walk(n, variables) for n in node]
    if isinstance(node, dict):
        return {k: _walk(v, variables) for k, v in node.items()}
    return node


def load_compose(overrides: Mapping[str, str] | None = None, path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file with .env's variables (then ``overrides``) interpolated; the
    ``x-`` extension fields dropped, as compose does."""
    variables = {**dotenv(), **(overrides or {})}
    data = _walk(yaml.safe_load(path.read_text()), variables)
    return {k: v for k, v in data.items() if not k.startswith("x-")}


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def mounts(service: dict[str, Any], named: dict[str, Path] | None = None) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes: ``named``)."""
    result = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            result[target] = (REPO / source).resolve() if source.startswith(".") else Path(source)
        elif named is not None:
            result[target] = named[source]
    return result


def host_path(container: str, table: dict[str, Path]) -> Path | None:
    path = PurePosixPath(container)
    for target in sorted(table, key=len, reverse=True):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return table[target] / path.relative_to(target)
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def need(tool: str, found: bool, how: str) -> None:
    """Skip with the reason where a tool is missing; in CI it must be there (.ci/run
    installs it), so fail instead."""
    if found:
        return
    message = f"{tool} is not installed ({how})"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def compose_command() -> list[str] | None:
    """``docker compose`` (the v2 plugin) or a standalone ``docker-compose`` v2+."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        try:
            out = subprocess.run([*command, "version", "--short"], capture_output=True,
                                 text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = out.stdout.strip().lstrip("v")
        if out.returncode == 0 and version and int(version.split(".")[0]) >= 2:
            return command
    return None


INSTALL_HINT = "bash deploy/scripts/install-check-tools.sh installs it"
