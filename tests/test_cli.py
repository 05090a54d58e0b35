from __future__ import annotations

import json

from typer.testing import CliRunner

from fedledger.cli import app

runner = CliRunner()


def test_init_config_then_simulate_runs_and_writes_a_report(tmp_path):
    config = tmp_path / "exp.yaml"
    assert runner.invoke(app, ["init-config", str(config)]).exit_code == 0
    text = config.read_text()
    text = text.replace("base: smollm2-135m", "base: tiny-llama")
    text = text.replace("local_steps: 20", "local_steps: 2").replace("rounds: 3", "rounds: 1")
    text = text.replace("max_train_per_org: 256", "max_train_per_org: 8")
    text = text.replace("max_test_per_org: 128", "max_test_per_org: 4")
    text = text.replace("output_dir: runs/latest", f"output_dir: {tmp_path / 'out'}")
    config.write_text(text)
    result = runner.invoke(app, ["simulate", str(config)])
    assert result.exit_code == 0, result.output
    assert "union-test accuracy" in result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["rounds"]) == 2 and len(report["orgs"]) == 6
    assert (tmp_path / "out" / "accuracy.png").stat().st_size > 1000
    assert "| round | union acc |" in (tmp_path / "out" / "report.md").read_text()


def test_init_config_refuses_to_overwrite(tmp_path):
    path = tmp_path / "exists.yaml"
    path.write_text("keep me")
    result = runner.invoke(app, ["init-config", str(path)])
    assert result.exit_code == 2 and path.read_text() == "keep me"


def test_simulate_with_a_bad_config_exits_2_with_the_reason(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("federation: {rounds: -1}")
    result = runner.invoke(app, ["simulate", str(path)])
    assert result.exit_code == 2
    assert "federation.rounds" in result.output
