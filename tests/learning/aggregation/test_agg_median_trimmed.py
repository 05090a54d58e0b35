"""Coordinate-wise median and trimmed mean against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.aggregation import ClientUpdate, CoordinateMedian, TrimmedMean


def _round(*values: list[list[float]], samples: list[int] | None = None) -> list[ClientUpdate]:
    samples = samples or [1] * len(values)
    return [
        ClientUpdate(f"c{i}", {"w": torch.tensor(v)}, n)
        for i, (v, n) in enumerate(zip(values, samples, strict=True))
    ]


def test_median_odd_by_hand() -> None:
    updates = _round(
        [[1.0, 10.0], [-2.0, 0.0]], [[3.0, 0.0], [5.0, 1.0]], [[2.0, 7.0], [100.0, -1.0]]
    )
    result = CoordinateMedian().aggregate(updates)
    assert torch.equal(result.tensors["w"], torch.tensor([[2.0, 7.0], [5.0, 0.0]]))
    assert result.accepted == ["c0", "c1", "c2"] and result.rejected == {}


def test_median_even_averages_the_middle_pair_and_ignores_weights() -> None:
    # Prepare: a huge sample claim must not pull the median
    updates = _round(
        [[1.0, 4.0]], [[2.0, 3.0]], [[3.0, 2.0]], [[100.0, -50.0]], samples=[1, 1, 1, 10_000]
    )
    # Execute
    out = CoordinateMedian().aggregate(updates).tensors["w"]
    # Assert: sorted columns (1, 2, 3, 100) and (-50, 2, 3, 4)
    assert torch.equal(out, torch.tensor([[2.5, 2.5]]))


def test_trimmed_mean_by_hand() -> None:
    # n = 5, beta = 0.2: one value cut at each end of every entry
    updates = _round([[1.0, -50.0]], [[2.0, 0.0]], [[3.0, 1.0]], [[4.0, 2.0]], [[100.0, 3.0]])
    result = TrimmedMean(beta=0.2).aggregate(updates)
    assert torch.equal(result.tensors["w"], torch.tensor([[3.0, 1.0]]))
    assert result.details == {"beta": 0.2, "trimmed_each_end": 1, "kept": 3, "weighted": False}


def test_trimmed_mean_rounds_the_cut_down() -> None:
    # n = 4, beta = 0.2: floor(0.8) = 0, so nothing is cut: the plain (unweighted) mean
    updates = _round([[1.0]], [[2.0]], [[3.0]], [[10.0]], samples=[5, 1, 1, 1])
    out = TrimmedMean(beta=0.2).aggregate(updates).tensors["w"]
    assert torch.equal(out, torch.tensor([[4.0]]))


def test_trimmed_mean_is_exact_next_to_a_huge_outlier() -> None:
    # ``total - extremes`` would lose the small values to float32 cancellation here
    updates = _round([[1e-3]], [[2e-3]], [[3e-3]], [[1e30]], [[-1e30]])
    out = TrimmedMean(beta=0.2).aggregate(updates).tensors["w"]
    assert out.item() == pytest.approx(2e-3, rel=1e-6)


def test_bfloat16_median_keeps_dtype() -> None:
    updates = [
        ClientUpdate(f"c{i}", {"w": torch.tensor([float(i)], dtype=torch.bfloat16)}, 1)
        for i in range(4)
    ]
    out = CoordinateMedian().aggregate(updates).tensors["w"]
    assert out.dtype == torch.bfloat16 and out.item() == 1.5
