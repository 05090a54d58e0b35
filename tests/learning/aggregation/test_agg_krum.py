"""Multi-Krum against scores worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedledger.learning.aggregation import ClientUpdate, MultiKrum
from fedledger.learning.errors import AggregationError

VALUES = [0.0, 1.0, 2.0, 3.0, 100.0]
# f = 1: each score sums the n - f - 2 = 2 smallest squared distances to the others:
# 0 -> 1 + 4, 1 -> 1 + 1, 2 -> 1 + 1, 3 -> 1 + 4, 100 -> 97^2 + 98^2
SCORES = [5.0, 2.0, 2.0, 5.0, 97.0**2 + 98.0**2]


def _round(samples: list[int] | None = None) -> list[ClientUpdate]:
    samples = samples or [1] * len(VALUES)
    return [
        ClientUpdate(f"c{i}", {"w": torch.tensor([[v]])}, n)
        for i, (v, n) in enumerate(zip(VALUES, samples, strict=True))
    ]


def test_scores_and_selection_by_hand() -> None:
    # Execute
    result = MultiKrum(f=1).aggregate(_round(samples=[1, 2, 3, 4, 1000]))
    # Assert: m = n - f = 4 kept, the outlier dropped despite its huge sample claim
    assert list(result.details["scores"].values()) == pytest.approx(SCORES)
    assert result.accepted == ["c0", "c1", "c2", "c3"]
    assert list(result.rejected) == ["c4"]
    assert "ranked 5/5" in result.rejected["c4"]
    # weighted mean of 0, 1, 2, 3 with weights 1..4
    assert result.tensors["w"].item() == pytest.approx(2.0)


def test_classic_krum_breaks_ties_by_input_order() -> None:
    result = MultiKrum(f=1, m=1).aggregate(_round())
    assert result.accepted == ["c1"]
    assert result.tensors["w"].item() == 1.0


def test_m_two_averages_the_two_best() -> None:
    result = MultiKrum(f=1, m=2).aggregate(_round())
    assert result.accepted == ["c1", "c2"]
    assert result.tensors["w"].item() == pytest.approx(1.5)


def test_f_too_large_for_n() -> None:
    with pytest.raises(
        AggregationError, match=r"f=2 is too large for n=5 updates \(needs n >= 2f \+ 3 = 7\)"
    ):
        MultiKrum(f=2).aggregate(_round())


def test_m_larger_than_n() -> None:
    with pytest.raises(AggregationError, match="m=6 exceeds the number of updates n=5"):
        MultiKrum(f=1, m=6).aggregate(_round())


def test_distances_stay_accurate_far_from_the_origin_without_reference() -> None:
    # Prepare: updates 1e3 away from 0 that differ by 1e-3: an uncentred float32 Gram
    # matrix would lose every digit of these distances.
    gen = torch.Generator().manual_seed(0)
    base = 1000.0 + torch.randn(3, 4000, generator=gen)
    noise = [1e-3 * torch.randn(3, 4000, generator=gen) for _ in range(7)]
    updates = [ClientUpdate(f"c{i}", {"w": base + d}, 1) for i, d in enumerate(noise)]
    # Execute
    scores = np.array(list(MultiKrum(f=1).aggregate(updates).details["scores"].values()))
    # Assert: matches a float64 computation to 1e-3 relative
    x = np.stack([d.double().numpy().ravel() for d in noise])
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    expected = [np.sort(np.delete(d2[i], i))[:4].sum() for i in range(7)]
    assert scores == pytest.approx(expected, rel=1e-3)
