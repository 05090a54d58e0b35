from __future__ import annotations

import pytest

from fedledger.learning.simulation import Federation
from fedledger.learning.unlearning import SisaConfig, SisaFederation, membership_auc, rank_auc

from ..experiments import tiny_experiment


def test_rank_auc_known_values():
    assert rank_auc([3, 4], [1, 2]) == 1.0
    assert rank_auc([1, 2], [3, 4]) == 0.0
    assert rank_auc([1, 1], [1, 1]) == 0.5
    assert rank_auc([1, 3], [2]) == 0.5
    assert rank_auc([2, 2, 5], [2, 1]) == pytest.approx((0.5 + 1 + 0.5 + 1 + 1 + 1) / 6)
    # low loss = member: members with the lower losses give AUC 1
    assert membership_auc([0.1, 0.2], [1.0, 2.0]) == 1.0
    with pytest.raises(ValueError):
        rank_auc([], [1.0])


def test_mia_auc_drops_after_unlearning_an_overfit_forget_set(tmp_path):
    # Causal LM on 4 short texts per org: the trained texts get clearly lower loss than
    # held-out texts (AUC near 1); after deletion the replayed model never saw them.
    config = tiny_experiment(
        tmp_path, federation={"rounds": 1},
        train={"task": "lm", "local_steps": 8, "batch_size": 4, "learning_rate": 1e-2},
        lora={"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"]},
        data={"max_train_per_org": 4, "max_test_per_org": 6},
    )
    sisa = SisaFederation(Federation.build(config), SisaConfig(shards=1))
    sisa.train()
    forget = {org: [s.sample_id for s in sisa.remaining(org)][:2] for org in sisa.orgs}
    result = sisa.delete(forget)
    before, after = result.metrics["before"], result.metrics["after"]
    for m in (before, after, result.metrics["dropped"]):
        assert 0.0 <= m["mia_auc"] <= 1.0
        assert m["n_forget"] == 4
    assert before["mia_auc"] > after["mia_auc"] + 0.2, (before, after)
    assert before["forget_loss"] < after["forget_loss"]
