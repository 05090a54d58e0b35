"""``fedledger demo --quick`` end to end, as a user runs it: a subprocess that starts the
host, the coordinator and three org nodes, runs rounds over HTTP, waits for the
public-chain anchor, writes the report and stops every process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROUNDS = 2


def _fedledger() -> list[str]:
    found = shutil.which("fedledger", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "fedledger.cli"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [*_fedledger(), "demo", "--quick", "--rounds", str(ROUNDS), "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600, env=env)
    return proc, out


def test_quick_demo_exits_0_and_prints_rounds_accuracy_and_anchor(demo_run):
    proc, _ = demo_run
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for round_id in range(1, ROUNDS + 1):
        assert f"round {round_id}: final" in output, output[-3000:]
    assert "deletion done in" in output and "verified" in output
    assert "attested the aggregate" in output
    assert "anchor (EVM tx): 0x" in output or "anchors on the public chain" in output
    assert "demo complete" in output


def test_quick_demo_writes_the_report(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    for name in ("report.json", "report.md", "accuracy.png"):
        assert (out / name).is_file(), name
    assert (out / "accuracy.png").stat().st_size > 1000
    report = json.loads((out / "report.json").read_text())
    orgs = [o["msp_id"] for o in report["orgs"]]
    assert orgs == ["Org1MSP", "Org2MSP", "Org3MSP"]
    deletion = report["deletion"]
    replays = deletion["coordinator"]["replay_rounds"]
    # the rounds, the deletion's replay round(s), then the round that anchors its records
    assert [r["round_id"] for r in report["rounds"]] == [*range(1, ROUNDS + 1),
                                                         ROUNDS + len(replays) + 1]
    assert deletion["proof"]["verified"], deletion["proof"]
    assert (out / deletion["proof"]["file"]).is_file()
    assert (out / f"deletion-{deletion['request_id']}-report.md").is_file()
    assert deletion["coordinator"]["new_version"] and len(deletion["sample_ids"]) == 3
    assert 0.0 <= deletion["metrics"]["after"]["mia_auc"] <= 1.0
    for r in report["rounds"]:
        assert r["status"] == "final" and r["version_id"]
        for org in orgs:
            accuracy = r["per_org"][org]["global_accuracy"]
            assert accuracy is not None and 0.0 <= accuracy <= 1.0, (org, r["per_org"][org])
            assert r["per_org"][org]["num_test"] > 0
        assert r["mean_accuracy"] == pytest.approx(
            sum(r["per_org"][o]["global_accuracy"] for o in orgs) / len(orgs))
        assert all(r["ledger"][k] for k in ("open_tx", "close_tx", "model_tx")), r["ledger"]
    assert all(v is not None for v in report["base"]["accuracy"].values())
    last = report["rounds"][-1]
    assert last["anchor"] and last["anchor"]["tx_hash"].startswith("0x"), report["anchors"]
    assert report["evm"]["registry"].startswith("0x")
    assert report["proof"]["verified"], report["proof"]
    assert (out / report["proof"]["file"]).is_file()
    assert report["errors"] == []
    markdown = (out / "report.md").read_text()
    assert "fedledger verify" in markdown and last["anchor"]["tx_hash"] in markdown
    assert report["evm"]["registry"] in markdown


def test_quick_demo_stopped_every_process(demo_run):
    proc, out = demo_run
    deployment = json.loads((out / "deployment" / "deployment.json").read_text())
    for name, service in deployment["services"].items():
        pid = service["pid"]
        if pid is None:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # the pid may have been reused by an unrelated process: check its command line
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert str(out / "deployment") not in cmdline, f"{name} ({pid}) still runs: {cmdline}"
