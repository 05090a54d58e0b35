"""Compiled contract artifacts (``contracts/artifacts/<Name>.json``), read through
importlib.resources from the package ``fedledger.evm.artifacts`` (a link to
``contracts/artifacts`` in the source tree, package data in a wheel).

This module cannot be ``fedledger/evm/artifacts.py``: that name is the data package itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from fedledger.evm.errors import ArtifactError

ARTIFACTS_PACKAGE = "fedledger.evm.artifacts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str | None = None
    evm_version: str | None = None
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def abi_list(self) -> list[dict[str, Any]]:
        return list(self.abi)


def available_artifacts() -> list[str]:
    try:
        root = resources.files(ARTIFACTS_PACKAGE)
    except ModuleNotFoundError:
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


@cache
def load_artifact(name: str) -> Artifact:
    """The artifact ``<name>.json`` (e.g. ``"AnchorRegistry"``). Raises :class:`ArtifactError`
    with the reason (missing, bad JSON, missing keys)."""
    try:
        resource = resources.files(ARTIFACTS_PACKAGE).joinpath(f"{name}.json")
        text = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError) as exc:
        have = ", ".join(available_artifacts()) or "none"
        raise ArtifactError(
            f"contract artifact {name!r} not found in {ARTIFACTS_PACKAGE} (available: {have}); "
            "compile the contracts: npm ci --prefix contracts && npm run --prefix contracts compile",
            step="artifact") from exc
    try:
        raw = json.loads(text)
        abi = raw["abi"]
        bytecode = raw["bytecode"]
        deployed = raw.get("deployedBytecode", "")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"contract artifact {name!r} is malformed: {exc}", step="artifact") from exc
    if not isinstance(abi, list) or not isinstance(bytecode, str) or len(bytecode.removeprefix("0x")) == 0:
        raise ArtifactError(f"contract artifact {name!r} has no ABI list or no bytecode", step="artifact")
    settings = raw.get("settings") or {}
    compiler = raw.get("compiler")
    if isinstance(compiler, dict):
        compiler = compiler.get("version") or compiler.get("solc")
    return Artifact(
        name=raw.get("contractName", name),
        abi=tuple(abi),
        bytecode=bytecode if bytecode.startswith("0x") else "0x" + bytecode,
        deployed_bytecode=deployed if deployed.startswith("0x") else "0x" + deployed,
        compiler_version=compiler if isinstance(compiler, str) else None,
        evm_version=settings.get("evmVersion") if isinstance(settings, dict) else None,
        settings=settings if isinstance(settings, dict) else {},
    )


load = load_artifact  # short alias
