"""FedAvg against values worked out by hand."""

from __future__ import annotations

import torch

from fedledger.learning.aggregation import ClientUpdate, FedAvg


def test_sample_weighted_mean_by_hand() -> None:
    # Prepare: weights 1/4 and 3/4
    a = ClientUpdate("a", {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}, 1)
    b = ClientUpdate("b", {"w": torch.tensor([[5.0, 6.0], [7.0, 8.0]])}, 3)
    # Execute
    result = FedAvg().aggregate([a, b])
    # Assert: 0.25 * a + 0.75 * b
    assert torch.equal(result.tensors["w"], torch.tensor([[4.0, 5.0], [6.0, 7.0]]))
    assert result.accepted == ["a", "b"]
    assert result.rejected == {}
    assert result.details["weights"] == {"a": 0.25, "b": 0.75}


def test_single_update_is_returned_as_a_copy() -> None:
    t = torch.tensor([1.0, -2.0])
    result = FedAvg().aggregate([ClientUpdate("a", {"w": t}, 5)])
    assert torch.equal(result.tensors["w"], t)
    assert result.tensors["w"].data_ptr() != t.data_ptr()


def test_half_precision_accumulates_in_float32_and_keeps_dtype() -> None:
    # Prepare: 1 + 1e-3 is not representable in bfloat16 (8 bits of mantissa) ...
    big = ClientUpdate("a", {"w": torch.full((2,), 1.0, dtype=torch.bfloat16)}, 1)
    small = [
        ClientUpdate(f"s{i}", {"w": torch.full((2,), 2.0, dtype=torch.bfloat16)}, 1)
        for i in range(3)
    ]
    # Execute
    result = FedAvg().aggregate([big, *small])
    # Assert: ... but the float32 sum 1/4 + 3 * 2/4 = 1.75 is exact and survives the cast
    assert result.tensors["w"].dtype == torch.bfloat16
    assert torch.equal(result.tensors["w"], torch.full((2,), 1.75, dtype=torch.bfloat16))


def test_float64_stays_float64() -> None:
    a = ClientUpdate("a", {"w": torch.tensor([0.1], dtype=torch.float64)}, 1)
    b = ClientUpdate("b", {"w": torch.tensor([0.3], dtype=torch.float64)}, 1)
    out = FedAvg().aggregate([a, b]).tensors["w"]
    assert out.dtype == torch.float64
    assert abs(out.item() - 0.2) < 1e-15


def test_bit_identical_on_repeat() -> None:
    gen = torch.Generator().manual_seed(0)
    updates = [
        ClientUpdate(f"c{i}", {"w": torch.randn(64, 33, generator=gen)}, 10 + i) for i in range(7)
    ]
    first = FedAvg().aggregate(updates).tensors["w"]
    second = FedAvg().aggregate(updates).tensors["w"]
    assert torch.equal(first, second)
