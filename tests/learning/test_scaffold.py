"""SCAFFOLD's control variates: the maths against hand-computed values, the correction
in local training, the controls carried by the simulation, and replay equal to retrain."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.config import FederationConfig
from fedledger.learning.lora_keys import saved_key
from fedledger.learning.scaffold import ScaffoldError, client_control, correction, server_control
from fedledger.learning.simulation import Federation, run_rounds
from fedledger.learning.training import train_local
from fedledger.learning.unlearning import max_abs_diff

from .experiments import assert_replay_equals_retrain, tiny_experiment


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def test_controls_by_hand():
    # x = 1, y = 0.4 after K = 3 steps of lr 0.1: (x - y) / (K lr) = 2
    c, ci = {"w": t(0.5)}, {"w": t(0.2)}
    assert correction(c, ci, {"w": t(1.0)})["w"].item() == pytest.approx(0.3)
    updated = client_control(ci, c, {"w": t(1.0)}, {"w": t(0.4)}, steps=3, lr=0.1)
    assert updated["w"].item() == pytest.approx(0.2 - 0.5 + 2.0)
    # two accepted orgs of a federation of four change their controls by 1.7 and -0.3:
    # c + (2/4) * mean = 0.5 + (1.7 - 0.3) / 4
    moved = server_control(c, [{"w": t(1.7)}, {"w": t(-0.3)}], federation_size=4)
    assert moved["w"].item() == pytest.approx(0.5 + 1.4 / 4)
    assert server_control(c, [], federation_size=4)["w"].item() == pytest.approx(0.5)
    with pytest.raises(ScaffoldError):
        correction({"w": t(0.0, 1.0)}, ci, {"w": t(1.0)})
    with pytest.raises(ScaffoldError):
        client_control(ci, c, {"w": t(1.0)}, {"w": t(0.4)}, steps=0, lr=0.1)


def test_saved_key_drops_the_adapter_name():
    assert saved_key("base_model.model.layers.0.q_proj.lora_A.default.weight") == (
        "base_model.model.layers.0.q_proj.lora_A.weight")
    assert saved_key("m.embed.lora_embedding_B.default") == "m.embed.lora_embedding_B"
    assert saved_key("m.default.lora_A.weight") == "m.default.lora_A.weight"


def test_the_correction_moves_each_step_by_lr_times_it(tmp_path):
    """Training at learning rate 0 moves only by the correction: K steps of -lr * corr
    would be 0 too, so use lr > 0 and compare with and without a correction."""
    config = tiny_experiment(tmp_path, train={"local_steps": 3, "learning_rate": 1e-2})
    fed = Federation.build(config)
    samples = fed.data.orgs[fed.data.org_names[0]].train
    start = fed.initial_state
    plain = train_local(fed.model, fed.task, samples, config.train, start_state=start, seed=1).state
    shift = {k: torch.full_like(v, 0.5) for k, v in start.items()}
    corrected = train_local(fed.model, fed.task, samples, config.train, start_state=start, seed=1,
                            drift_correction=shift).state
    # AdamW's steps differ once the weights differ, so the gap is about, not exactly, K*lr*0.5
    gaps = [float((plain[k] - corrected[k]).mean()) for k in start]
    assert all(g == pytest.approx(3 * 1e-2 * 0.5, rel=0.2) for g in gaps), gaps
    with pytest.raises(ScaffoldError):
        train_local(fed.model, fed.task, samples, config.train, start_state=start, seed=1,
                    drift_correction={k: v for k, v in list(shift.items())[1:]})


def test_simulation_carries_the_controls(tmp_path):
    base = tiny_experiment(tmp_path / "a", federation={"rounds": 2}, train={"local_steps": 2})
    scaffold = tiny_experiment(tmp_path / "b", federation={"rounds": 2, "drift_control": "scaffold"},
                               train={"local_steps": 2})
    plain, _ = run_rounds(Federation.build(base))
    corrected, records = run_rounds(Federation.build(scaffold))
    # round 1 starts from zero controls (identical to FedAvg); round 2 is corrected
    assert max_abs_diff(plain, corrected) > 0 and len(records) == 3


def test_scaffold_refuses_a_rank_changing_strategy():
    with pytest.raises(ValueError, match="exact_lora"):
        FederationConfig.model_validate({"drift_control": "scaffold", "strategy": {"name": "exact_lora"}})


def test_replay_with_scaffold_equals_retrain(tmp_path):
    config = tiny_experiment(tmp_path, federation={"rounds": 2, "drift_control": "scaffold"},
                             train={"local_steps": 2}, data={"max_train_per_org": 12})
    assert_replay_equals_retrain(config)
