from __future__ import annotations

import pytest

from fedledger.config import FedLedgerConfig, dump_config, load_config
from fedledger.learning.errors import ConfigError


def test_default_config_round_trips_through_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(FedLedgerConfig()))
    assert load_config(path) == FedLedgerConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("federation: {rounds: 0}", "federation.rounds: Input should be greater than 0"),
        ("lora: {r: 8, rnak: 4}", "lora.rnak: Extra inputs are not permitted"),
        ("train: {task: regression}", "train.task: Input should be 'classification' or 'lm'"),
        ("model: {tiny: {hidden_size: 10, num_attention_heads: 4}}", "hidden_size must be divisible"),
        ("- just\n- a list", "must be a mapping at the top level"),
        ("rounds: [unclosed", "is not valid YAML"),
    ],
)
def test_bad_config_names_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
