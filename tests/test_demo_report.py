"""The demo's report and console without the services: ``report.md`` from a report's data
(golden files written by the demo before it was split by job), ``report.json`` from the
services' typed answers, ``accuracy.png``, and the console lines ``fedledger demo`` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fedledger.demo import (
    DemoOptions,
    DemoState,
    RoundResult,
    build_report,
    demo_experiment,
    plot_accuracy,
    report_markdown,
    write_report,
)
from fedledger.demo.console import DemoConsole
from fedledger.demo.report import Markdown
from fedledger.launcher import OrgPlan
from fedledger.protocol.coordinator_api import RoundPublic
from fedledger.protocol.host_api import AnchorPublic, HostInfo
from fedledger.protocol.orgnode_api import JobPublic

FIXTURES = Path(__file__).parent / "fixtures" / "demo"
MSP_IDS = ["Org1MSP", "Org2MSP"]


@pytest.mark.parametrize("name", ["full", "problems"])
def test_report_markdown_is_the_golden_file(name: str) -> None:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    assert report_markdown(data) == (FIXTURES / f"{name}.md").read_text()


def test_markdown_table_aligns_columns_and_leaves_none_cells_blank() -> None:
    md = Markdown().heading(2, "T").table(("a", "b", "c"), "lrr", [("x", "", None)])
    assert md.render() == "## T\n\n| a | b | c |\n|---|---:|---:|\n| x |  | |\n"


def _round(round_id: int, **changes: Any) -> RoundPublic:
    body: dict[str, Any] = {
        "round_id": round_id, "status": "final", "deadline": "2026-01-01T00:00:00+00:00",
        "quorum": 2, "committee": MSP_IDS, "config": {}, "config_digest": "c" * 64,
        "shard": 0, "step": round_id, "replay_of": None, "base": None, "declines": [],
        "validation": None,
        "submissions": [{"org": m, "update_hash": f"{i}" * 64, "num_samples": 40,
                         "on_ledger": True} for i, m in enumerate(MSP_IDS)],
        "aggregate": {"aggregate_digest": "a" * 64, "included": MSP_IDS, "strategy": "fedavg"},
        "attestations": ["Org1MSP"], "version_id": f"v{round_id}",
        "ledger": {"open_tx": "o1", "close_tx": "c1", "model_tx": "m1"}, "error": None}
    return RoundPublic.model_validate({**body, **changes})


def _job(round_id: int, status: str, **metrics: Any) -> JobPublic:
    return JobPublic(id=round_id, round_id=round_id, status=status, progress=1.0,
                     update_hash="f" * 64, num_samples=40, metrics=metrics, error=None,
                     datasets={}, created="2026-01-01", updated="2026-01-01")


def _state(tmp_path: Path) -> DemoState:
    options = DemoOptions(quick=True, rounds=2, orgs=2, output_dir=tmp_path)
    state = DemoState(options=options, experiment=demo_experiment(quick=True, rounds=2, shards=2))
    state.orgs = [OrgPlan(name=f"Org{i}", msp_id=f"Org{i}MSP", key=f"org{i}", port=8000 + i,
                          anchor_key_file=tmp_path / f"k{i}", anchor_address=f"0x{i}",
                          domain=domain) for i, domain in ((1, "airline"), (2, "hotel"))]
    state.host_info = HostInfo.model_validate(
        {"gateway": "127.0.0.1:7051", "tls_ca_cert": "ca.pem", "server_name": "peer0",
         "chaincode": "fedledger", "rpc_url": "http://rpc", "chain_id": 31337,
         "registry": "0xabc", "staking": None, "deployer": "0xd", "keys": ["0x1", "0x2"],
         "threshold": 2, "status_url": None, "bridge_identity": "bridge", "channels": {},
         "orgs": {}, "fabric_root": "/tmp/fabric", "pid": 1})
    state.datasets = {"Org1": {"dataset_id": "org1-airline"}, "Org2": {"dataset_id": "org2-hotel"}}
    anchor = AnchorPublic(tx_hash="0xfeed", block_number=7, first_round=1, last_round=2,
                          root="r" * 64, status="recorded", receipt_tx_id="t", signers=MSP_IDS,
                          attempts=1, last_error=None, created_at=None, updated_at=None)
    state.anchors = [anchor]
    for rid in (1, 2):
        result = RoundResult(round=_round(rid), status="final", seconds=3.0, anchor=anchor)
        result.jobs = {"Org1MSP": _job(rid, "attested", global_accuracy=0.5, base_accuracy=0.25,
                                       num_test=16, global_loss=1.5, mean_loss=2.0),
                       "Org2MSP": _job(rid, "attested", global_accuracy=1, base_accuracy=0.5,
                                       num_test=16)}
        state.rounds.append(result)
    return state


def test_build_report_reads_the_typed_answers(tmp_path: Path) -> None:
    data = build_report(_state(tmp_path))
    assert [o["dataset_id"] for o in data["orgs"]] == ["org1-airline", "org2-hotel"]
    assert data["base"] == {"accuracy": {"Org1MSP": 0.25, "Org2MSP": 0.5}, "mean": 0.375}
    first = data["rounds"][0]
    assert first["per_org"]["Org1MSP"] == {
        "job_status": "attested", "global_accuracy": 0.5, "global_loss": 1.5,
        "base_accuracy": 0.25, "num_test": 16, "num_samples": 40, "update_hash": "f" * 64,
        "train_loss": 2.0, "eval_error": None, "error": None}
    assert first["mean_accuracy"] == pytest.approx(0.75)
    # the coordinator saw Org1's attestation; Org2's job says it attested too
    assert first["attestations"] == MSP_IDS and first["submissions"] == MSP_IDS
    assert first["ledger"] == {"open_tx": "o1", "close_tx": "c1", "model_tx": "m1"}
    assert first["aggregate_digest"] == "a" * 64 and first["included"] == MSP_IDS
    assert "last_error" not in first["anchor"] and first["anchor"]["tx_hash"] == "0xfeed"
    assert data["settings"]["model"] == "tiny-llama" and data["settings"]["shards"] == 2
    assert data["anchors"][0]["attempts"] == 1 and data["evm"]["threshold"] == 2
    assert data["deployment"] is None and data["errors"] == []
    json.dumps(data)  # report.json


def test_a_round_without_a_job_is_reported_blank(tmp_path: Path) -> None:
    state = _state(tmp_path)
    del state.rounds[1].jobs["Org2MSP"]
    per_org = build_report(state)["rounds"][1]["per_org"]["Org2MSP"]
    assert per_org["job_status"] is None and per_org["global_accuracy"] is None
    assert "| Org2MSP | - | - | - |" in report_markdown(build_report(state))


def test_write_report_writes_the_three_files(tmp_path: Path) -> None:
    path = write_report(build_report(_state(tmp_path)), tmp_path / "out")
    assert path == tmp_path / "out" / "report.md"
    assert json.loads((tmp_path / "out" / "report.json").read_text())["evm"]["registry"] == "0xabc"
    assert (tmp_path / "out" / "accuracy.png").stat().st_size > 1000
    assert "`0xfeed`" in path.read_text()


def test_plot_accuracy_draws_missing_scores_as_gaps(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "problems.json").read_text())
    assert plot_accuracy(data, tmp_path / "a.png").stat().st_size > 1000


def test_the_console_prints_what_the_end_to_end_test_reads(tmp_path: Path) -> None:
    state = _state(tmp_path)
    view = DemoConsole(Console(record=True, width=120))
    result = state.rounds[0]
    view.round_opened(result.round, "1/2", 2)
    view.round_status(result.round, 4.2)
    view.attested("Org1MSP")
    view.scored("Org1MSP", result.jobs["Org1MSP"])
    view.round_done(state, result, {"Org1MSP": 0.25, "Org2MSP": 0.5})
    assert state.host_info is not None
    view.anchors(state.host_info, state.anchors)
    view.summary(state)
    text = view.console.export_text()
    assert "round 1: open committee Org1MSP, Org2MSP, quorum 2; open tx o1" in text
    assert "round 1: final model version v1 (4 s)" in text
    assert "Org1MSP attested the aggregate" in text
    assert "Org1MSP scored it: accuracy 0.500 on its 16 test tweets" in text
    assert "anchor (EVM tx): 0xfeed (rounds 1-2)" in text
    assert "ledger (Fabric tx ids): open o1  close c1  model m1" in text
    assert "anchors on the public chain" in text and "+0.250" in text
