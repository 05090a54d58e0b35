"""Input checks shared by every strategy: each failure names what is wrong."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from fedledger.learning.aggregation import (
    AggregationResult,
    ClientUpdate,
    FedAvg,
    available_strategies,
    build_strategy,
    validate_updates,
)
from fedledger.learning.errors import AggregationError, LearningError

KEY_A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
KEY_B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"


def _update(cid: str, n: float = 1, **overrides: torch.Tensor) -> ClientUpdate:
    tensors = {KEY_A: torch.ones(2, 3), KEY_B: torch.ones(4, 2)}
    tensors.update({k.replace("__", "."): v for k, v in overrides.items()})
    return ClientUpdate(cid, tensors, n)


def test_error_is_a_value_error_under_the_learning_root() -> None:
    assert issubclass(AggregationError, LearningError)
    assert issubclass(AggregationError, ValueError)


def test_empty_list_is_rejected() -> None:
    with pytest.raises(AggregationError, match="no updates to aggregate"):
        FedAvg().aggregate([])


def test_missing_key_is_named() -> None:
    # Prepare
    short = ClientUpdate("b", {KEY_A: torch.ones(2, 3)}, 1)
    # Execute / Assert
    with pytest.raises(
        AggregationError, match=r"update from 'b' lacks key '.*q_proj\.lora_B\.weight'"
    ):
        FedAvg().aggregate([_update("a"), short])


def test_unexpected_key_is_named() -> None:
    extra = ClientUpdate(
        "b", {KEY_A: torch.ones(2, 3), KEY_B: torch.ones(4, 2), "bias": torch.ones(2)}, 1
    )
    with pytest.raises(AggregationError, match="update from 'b' has unexpected key 'bias'"):
        FedAvg().aggregate([_update("a"), extra])


def test_shape_mismatch_names_key_and_both_shapes() -> None:
    bad = ClientUpdate("b", {KEY_A: torch.ones(3, 3), KEY_B: torch.ones(4, 2)}, 1)
    with pytest.raises(AggregationError) as info:
        FedAvg().aggregate([_update("a"), bad])
    message = str(info.value)
    assert KEY_A in message and "(3, 3)" in message and "(2, 3)" in message and "'b'" in message


def test_dtype_mismatch_is_named() -> None:
    bad = ClientUpdate(
        "b", {KEY_A: torch.ones(2, 3, dtype=torch.float64), KEY_B: torch.ones(4, 2)}, 1
    )
    with pytest.raises(AggregationError, match=r"has dtype torch.float64, expected torch.float32"):
        FedAvg().aggregate([_update("a"), bad])


def test_integer_tensors_are_rejected() -> None:
    bad = ClientUpdate("a", {"x": torch.ones(2, dtype=torch.int64)}, 1)
    with pytest.raises(AggregationError, match="needs floating point"):
        FedAvg().aggregate([bad])


def test_non_tensor_value_is_rejected() -> None:
    bad = ClientUpdate("a", {"x": [1.0, 2.0]}, 1)  # type: ignore[dict-item]
    with pytest.raises(AggregationError, match="not a torch.Tensor"):
        FedAvg().aggregate([bad])


def test_zero_total_weight() -> None:
    with pytest.raises(AggregationError, match="total sample weight is zero"):
        FedAvg().aggregate([_update("a", 0), _update("b", 0)])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weight(bad: float) -> None:
    with pytest.raises(AggregationError, match="client 'b': num_samples weight is not finite"):
        FedAvg().aggregate([_update("a", 1), _update("b", bad)])


@pytest.mark.parametrize("bad", [0, -3])
def test_non_positive_weight(bad: int) -> None:
    with pytest.raises(AggregationError, match="client 'b': num_samples weight must be positive"):
        FedAvg().aggregate([_update("a", 1), _update("b", bad)])


def test_boolean_weight_is_not_a_count() -> None:
    with pytest.raises(AggregationError, match="num_samples must be a number"):
        FedAvg().aggregate([_update("a", True)])


def test_duplicate_client_id() -> None:
    with pytest.raises(AggregationError, match="duplicate client id 'a'"):
        FedAvg().aggregate([_update("a"), _update("a")])


def test_reference_must_match_the_updates() -> None:
    with pytest.raises(AggregationError, match=r"reference lacks key"):
        FedAvg().aggregate([_update("a")], reference={KEY_A: torch.ones(2, 3)})
    with pytest.raises(AggregationError, match=r"reference has shape \(2, 2\)"):
        FedAvg().aggregate(
            [_update("a")], reference={KEY_A: torch.ones(2, 2), KEY_B: torch.ones(4, 2)}
        )


def test_validated_batch_sorts_keys_and_normalises_weights() -> None:
    # Prepare
    updates = [_update("a", 1), _update("b", 3)]
    # Execute
    batch = validate_updates(updates)
    # Assert
    assert batch.keys == (KEY_A, KEY_B)
    assert batch.weights == (0.25, 0.75)
    assert batch.client_ids == ["a", "b"]
    assert batch.subset([1]).weights == (1.0,)


def test_results_and_updates_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _update("a").num_samples = 2  # type: ignore[misc]
    result = AggregationResult(tensors={}, accepted=[], rejected={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.accepted = ["x"]  # type: ignore[misc]


@pytest.mark.parametrize("name", available_strategies())
def test_every_strategy_validates_its_input(name: str) -> None:
    with pytest.raises(AggregationError, match="no updates to aggregate"):
        build_strategy(name).aggregate([])


@pytest.mark.parametrize("name", available_strategies())
def test_strategies_do_not_modify_their_input(name: str) -> None:
    # Prepare
    gen = torch.Generator().manual_seed(3)
    updates = [
        ClientUpdate(
            f"c{i}",
            {KEY_A: torch.randn(2, 3, generator=gen), KEY_B: torch.randn(4, 2, generator=gen)},
            i + 1,
        )
        for i in range(5)
    ]
    reference = {KEY_A: torch.zeros(2, 3), KEY_B: torch.zeros(4, 2)}
    before = [{k: v.clone() for k, v in u.tensors.items()} for u in updates]
    # Execute
    result = build_strategy(name).aggregate(updates, reference=reference)
    # Assert
    for u, snapshot in zip(updates, before, strict=True):
        assert all(torch.equal(u.tensors[k], snapshot[k]) for k in snapshot)
    assert torch.equal(reference[KEY_A], torch.zeros(2, 3))
    assert set(result.tensors) == {KEY_A, KEY_B}
    assert sorted(result.accepted + list(result.rejected)) == sorted(u.client_id for u in updates)
