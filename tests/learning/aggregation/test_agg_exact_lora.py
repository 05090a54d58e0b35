"""Exact LoRA aggregation: averages B_i A_i (not avg(B) avg(A)) and stays a LoRA pair."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.aggregation import (
    ClientUpdate,
    ExactLoRA,
    FedAvg,
    pair_lora_keys,
    scaled_lora_alpha,
)
from fedledger.learning.errors import AggregationError

A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"


def _hand_round() -> list[ClientUpdate]:
    # Client a learned e1 e1^T, client b learned e2 e2^T (rank 1 each); weights 3/4, 1/4.
    a = ClientUpdate("a", {A: torch.tensor([[1.0, 0.0]]), B: torch.tensor([[1.0], [0.0]])}, 3)
    b = ClientUpdate("b", {A: torch.tensor([[0.0, 1.0]]), B: torch.tensor([[0.0], [1.0]])}, 1)
    return [a, b]


def _product(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return tensors[B] @ tensors[A]


def test_lossless_reproduces_the_average_of_products_where_fedavg_does_not() -> None:
    # Prepare: the average of products is diag(3/4, 1/4)
    expected = torch.tensor([[0.75, 0.0], [0.0, 0.25]])
    # Execute
    exact = ExactLoRA().aggregate(_hand_round())
    naive = FedAvg().aggregate(_hand_round())
    # Assert: exact is exact; FedAvg of factors gives avg(B) avg(A) = [3/4, 1/4]^T [3/4, 1/4]
    assert torch.allclose(_product(exact.tensors), expected, atol=1e-6)
    assert torch.allclose(
        _product(naive.tensors), torch.tensor([[0.5625, 0.1875], [0.1875, 0.0625]])
    )
    assert (_product(naive.tensors) - expected).abs().max() > 0.18
    assert exact.tensors[A].shape == (2, 2) and exact.tensors[B].shape == (2, 2)
    assert exact.details["output_rank"] == 2 and exact.details["input_rank"] == 1
    assert exact.details["dropped_energy"] == 0.0


def test_truncated_keeps_the_top_component_and_reports_dropped_energy() -> None:
    result = ExactLoRA(rank=1).aggregate(_hand_round())
    assert torch.allclose(
        _product(result.tensors), torch.tensor([[0.75, 0.0], [0.0, 0.0]]), atol=1e-6
    )
    # dropped 0.25^2 of 0.75^2 + 0.25^2
    assert result.details["dropped_energy"] == pytest.approx(0.0625 / 0.625)
    (module,) = result.details["modules"].values()
    assert module == {"input_rank": 1, "output_rank": 1, "dropped_energy": pytest.approx(0.1)}


def _random_round(n: int, r: int, out: int, inp: int, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    updates = [
        ClientUpdate(
            f"c{i}",
            {
                A: torch.randn(r, inp, generator=gen, dtype=dtype),
                B: torch.randn(out, r, generator=gen, dtype=dtype),
            },
            1 + 2 * i,
        )
        for i in range(n)
    ]
    total = sum(u.num_samples for u in updates)
    delta = sum(
        (u.num_samples / total) * (u.tensors[B].double() @ u.tensors[A].double()) for u in updates
    )
    return updates, delta


def test_lossless_random_float32_within_1e5() -> None:
    updates, delta = _random_round(n=4, r=3, out=20, inp=15)
    result = ExactLoRA().aggregate(updates)
    assert result.tensors[A].shape == (12, 15) and result.tensors[B].shape == (20, 12)
    assert torch.allclose(_product(result.tensors).double(), delta, atol=1e-5, rtol=1e-5)
    naive = FedAvg().aggregate(updates)
    assert not torch.allclose(_product(naive.tensors).double(), delta, atol=1e-2)


def test_truncated_equals_top_k_svd() -> None:
    updates, delta = _random_round(n=5, r=2, out=12, inp=9, dtype=torch.float64)
    u, s, vh = torch.linalg.svd(delta)
    best = (u[:, :3] * s[:3]) @ vh[:3]
    result = ExactLoRA(rank=3).aggregate(updates)
    assert result.tensors[A].shape == (3, 9) and result.tensors[B].shape == (12, 3)
    assert torch.allclose(_product(result.tensors), best, atol=1e-10)
    dropped = float((s[3:] ** 2).sum() / (s**2).sum())
    assert result.details["dropped_energy"] == pytest.approx(dropped)


def test_rank_beyond_the_matrix_is_padded_with_zero_components() -> None:
    # n r = 6 > min(out, in) = 4: only 4 singular values exist; the rank stays 6.
    updates, delta = _random_round(n=3, r=2, out=4, inp=5, dtype=torch.float64)
    result = ExactLoRA().aggregate(updates)
    assert result.tensors[A].shape == (6, 5) and result.tensors[B].shape == (4, 6)
    assert torch.allclose(_product(result.tensors), delta, atol=1e-12)
    assert torch.count_nonzero(result.tensors[A][4:]) == 0


def test_in_memory_names_embeddings_and_other_keys() -> None:
    # Prepare: adapter-name keys, an embedding LoRA, and a modules_to_save tensor.
    gen = torch.Generator().manual_seed(1)
    keys = {
        "m.q_proj.lora_A.default.weight": (2, 6),
        "m.q_proj.lora_B.default.weight": (5, 2),
        "m.embed_tokens.lora_embedding_A.default": (2, 11),
        "m.embed_tokens.lora_embedding_B.default": (4, 2),
        "m.score.modules_to_save.default.weight": (3, 5),
    }
    updates = [
        ClientUpdate(
            f"c{i}",
            {k: torch.randn(*s, generator=gen, dtype=torch.float64) for k, s in keys.items()},
            1,
        )
        for i in range(3)
    ]
    # Execute
    result = ExactLoRA(rank=2).aggregate(updates)
    # Assert
    pairs, others = pair_lora_keys(tuple(sorted(keys)))
    assert [p.module for p in pairs] == [
        "m.embed_tokens.lora_embedding_*.default",
        "m.q_proj.lora_*.default.weight",
    ]
    assert others == ["m.score.modules_to_save.default.weight"]
    assert result.details["fedavg_keys"] == others
    mean = sum(u.tensors[others[0]] for u in updates) / 3
    assert torch.allclose(result.tensors[others[0]], mean)
    assert result.tensors["m.embed_tokens.lora_embedding_A.default"].shape == (2, 11)


def test_unpaired_factor_is_an_error() -> None:
    update = ClientUpdate("a", {A: torch.ones(1, 2)}, 1)
    with pytest.raises(
        AggregationError, match=r"LoRA key '.*lora_A\.weight' has no matching lora_B key"
    ):
        ExactLoRA().aggregate([update])


def test_factor_shapes_must_form_a_product() -> None:
    update = ClientUpdate("a", {A: torch.ones(2, 3), B: torch.ones(4, 3)}, 1)
    with pytest.raises(AggregationError, match=r"expected A \(r, in\) and B \(out, r\)"):
        ExactLoRA().aggregate([update])


def test_scaled_alpha_keeps_the_peft_scale() -> None:
    assert scaled_lora_alpha(16, 8, 80) == 160  # alpha / r stays 2
    assert scaled_lora_alpha(16, 8, 32, use_rslora=True) == 32  # alpha / sqrt(r) stays 16 / sqrt(8)
    with pytest.raises(AggregationError):
        scaled_lora_alpha(16, 0, 8)
