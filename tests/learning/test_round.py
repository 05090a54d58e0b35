"""The one round definition: the exact-LoRA rank rule, seeds by name, the strategy a
config builds, and the LoRA key parsing the validators and SISA share."""

from __future__ import annotations

import hashlib

import pytest

from fedledger.learning.aggregation import ExactLoRA, FedAvg
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.errors import AggregationError
from fedledger.learning.lora_keys import factor_of, factor_rank, pair_lora_keys, shapes_rank
from fedledger.learning.round import (
    RoundDefinition,
    lora_init_seed,
    round_strategy_params,
    shard_round_seed,
    train_seed,
)

A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"


def _blake(material: str) -> int:
    return int.from_bytes(hashlib.blake2b(material.encode(), digest_size=8).digest(), "big") >> 1


def test_seeds_are_derived_by_name_as_worked_out_by_hand():
    assert lora_init_seed(7) == _blake("7:lora-init")
    assert train_seed(7, 3, "Org1") == _blake("7:train:3:Org1")
    assert shard_round_seed(7, 1, 2, "Org1") == _blake("7:sisa-train:shard=1:round=2:org=Org1")


def test_exact_lora_keeps_the_configured_rank_unless_given():
    assert round_strategy_params("exact_lora", None, 8) == {"rank": 8}
    assert round_strategy_params("exact_lora", {"rank": 2}, 8) == {"rank": 2}
    assert round_strategy_params("fedavg", {}, 8) == {}
    params = {"f": 1}
    assert round_strategy_params("multi_krum", params, 8) == {"f": 1} and params == {"f": 1}


def test_definition_of_a_config_builds_its_strategy():
    config = ExperimentConfig.model_validate(
        {"lora": {"r": 4}, "federation": {"strategy": {"name": "exact_lora"}}})
    definition = RoundDefinition.of(config)
    assert dict(definition.strategy_params) == {"rank": 4}
    strategy = definition.build_strategy()
    assert isinstance(strategy, ExactLoRA) and strategy.rank == 4
    assert isinstance(RoundDefinition.of(ExperimentConfig()).build_strategy(), FedAvg)


def test_lora_keys_are_parsed_in_one_place():
    embed_a = "base_model.model.model.embed_tokens.lora_embedding_A"
    assert factor_of(A) == "A" and factor_of(B) == "B" and factor_of("x.lora_A.default.weight") == "A"
    assert factor_of(embed_a) == "A" and factor_of("x.lora_Alpha") is None
    assert factor_rank(A, (4, 16)) == 4 and factor_rank(B, (16, 4)) == 4
    assert factor_rank(A, (4,)) is None and factor_rank("x.weight", (4, 4)) is None
    assert shapes_rank({A: (4, 16), B: (16, 4)}) == 4
    pairs, others = pair_lora_keys((A, B, "head.weight"))
    assert [(p.a_key, p.b_key) for p in pairs] == [(A, B)] and others == ["head.weight"]
    with pytest.raises(AggregationError, match="no matching lora_B"):
        pair_lora_keys((A,))
    with pytest.raises(ValueError, match="no lora_A"):
        shapes_rank({B: (16, 4)})
