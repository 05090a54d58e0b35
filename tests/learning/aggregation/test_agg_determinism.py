"""The same input gives bit-identical output: every org must recompute the same digest."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.aggregation import ClientUpdate, available_strategies, build_strategy

PARAMS = {
    "multi_krum": {"f": 2},
    "exact_lora": {"rank": 4},
    "flame": {"noise_lambda": 0.01, "seed": 3},
}


def _round() -> tuple[list[ClientUpdate], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(7)
    shapes = {"m.lora_A.weight": (4, 700), "m.lora_B.weight": (300, 4), "head.weight": (5, 9)}
    reference = {k: torch.randn(*s, generator=gen) for k, s in shapes.items()}
    updates = [
        ClientUpdate(
            f"c{i}",
            {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in reference.items()},
            10 + i,
        )
        for i in range(8)
    ]
    return updates, reference


@pytest.mark.parametrize("name", available_strategies())
def test_bit_identical_on_repeat(name: str) -> None:
    # Prepare
    updates, reference = _round()
    strategy = build_strategy(name, PARAMS.get(name))
    # Execute
    first = strategy.aggregate(updates, reference=reference)
    second = build_strategy(name, PARAMS.get(name)).aggregate(updates, reference=reference)
    # Assert
    assert first.tensors.keys() == second.tensors.keys()
    for key in first.tensors:
        assert torch.equal(first.tensors[key], second.tensors[key]), key
        assert first.tensors[key].dtype == updates[0].tensors[key].dtype
        # safetensors refuses non-contiguous tensors; aggregates are saved as adapters
        assert first.tensors[key].is_contiguous(), key
    assert first.accepted == second.accepted
    assert first.rejected == second.rejected
    assert first.details == second.details
