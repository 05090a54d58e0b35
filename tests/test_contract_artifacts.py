"""The committed contract artifacts are exactly what the pinned compiler builds from the
sources (CI installs the toolchain from contracts/package-lock.json; skipped where
node or the toolchain is absent), and Python loads them without node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fedledger.evm.artifact_loader import load_artifact

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"


def test_artifacts_load_through_the_package():
    for name in ("AnchorRegistry", "Staking"):
        artifact = load_artifact(name)
        assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 1000
        assert artifact.compiler_version.startswith("0.8.30")
        assert artifact.evm_version == "cancun"
        assert any(item.get("name") == "anchor" for item in artifact.abi) == (name == "AnchorRegistry")


def test_a_fresh_compile_matches_the_committed_artifacts(tmp_path: Path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (CONTRACTS / "node_modules" / "solc").is_dir():
        pytest.skip("contract toolchain not installed: run npm ci --prefix contracts")
    subprocess.run(["node", str(CONTRACTS / "compile.mjs"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=600)
    built = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in (CONTRACTS / "artifacts").glob("*.json"))
    assert built == committed
    for name in built:
        assert (tmp_path / name).read_bytes() == (CONTRACTS / "artifacts" / name).read_bytes(), name
