"""The shared kernels: comparator networks and chunked Gram products."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fedledger.learning.aggregation import ops


@pytest.mark.parametrize("n", range(1, 13))
def test_sorting_network_sorts_every_zero_one_input(n: int) -> None:
    # 0-1 principle: a comparator network that sorts all 2^n binary inputs sorts everything.
    network = ops.sorting_network(n)
    for bits in itertools.product((0, 1), repeat=n):
        values = list(bits)
        for lo, hi in network:
            if values[lo] > values[hi]:
                values[lo], values[hi] = values[hi], values[lo]
        assert values == sorted(bits)


def test_network_size_for_ten_clients() -> None:
    assert len(ops.sorting_network(10)) == 32


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 16, 21, 33])
def test_mean_of_ranks_matches_sort(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: small chunks so chunk boundaries are crossed
    monkeypatch.setattr(ops, "_NETWORK_CHUNK", 7)
    gen = torch.Generator().manual_seed(n)
    tensors = [torch.randn(5, 6, generator=gen) for _ in range(n)]
    ordered = torch.sort(torch.stack(tensors), dim=0).values
    for ranks in ({(n - 1) // 2, n // 2}, set(range(n // 4, n - n // 4)), {0}, {n - 1}):
        # Execute
        got = ops.mean_of_ranks(tensors, sorted(ranks))
        # Assert
        expected = ordered[sorted(ranks)].mean(dim=0)
        assert torch.allclose(got, expected, atol=1e-6), ranks


def test_gram_matrix_blocks_and_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: block size 4 with 21 entries per key = 5 blocks and a tail of 1
    monkeypatch.setattr(ops, "_GRAM_BLOCK", 4)
    gen = torch.Generator().manual_seed(0)
    columns = [
        [torch.randn(3, 7, generator=gen) for _ in range(4)],
        [torch.randn(2, generator=gen) for _ in range(4)],
    ]
    centers = [torch.randn(3, 7, generator=gen), None]
    # Execute
    gram = ops.gram_matrix(columns, centers)
    # Assert
    x = np.stack(
        [
            np.concatenate(
                [
                    (columns[0][i] - centers[0]).double().numpy().ravel(),
                    columns[1][i].double().numpy(),
                ]
            )
            for i in range(4)
        ]
    )
    assert np.allclose(gram, x @ x.T, rtol=1e-5)


def test_squared_norms() -> None:
    columns = [[torch.tensor([3.0, 4.0]), torch.tensor([1.0, 1.0])]]
    assert ops.squared_norms(columns, [None]).tolist() == pytest.approx([25.0, 2.0])
    assert ops.squared_norms(columns, [torch.tensor([1.0, 1.0])]).tolist() == pytest.approx(
        [13.0, 0.0]
    )
