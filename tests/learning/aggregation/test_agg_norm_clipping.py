"""Norm clipping against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.aggregation import ClientUpdate, NormClipping

DELTAS = {
    "a": [[3.0, 4.0], [0.0, 0.0]],
    "b": [[0.0, 0.0], [1.0, 0.0]],
    "c": [[0.0, 0.0], [0.0, 2.0]],
}
# norms 5, 1, 2; with bound 2, a is scaled by 0.4 to [[1.2, 1.6], [0, 0]]; equal weights
EXPECTED_DELTA = torch.tensor([[0.4, 1.6 / 3], [1.0 / 3, 2.0 / 3]])


def _round(reference: torch.Tensor) -> list[ClientUpdate]:
    return [ClientUpdate(cid, {"w": reference + torch.tensor(d)}, 1) for cid, d in DELTAS.items()]


def test_fixed_bound_by_hand_relative_to_reference() -> None:
    # Prepare
    reference = torch.full((2, 2), 10.0)
    # Execute
    result = NormClipping(max_norm=2.0).aggregate(_round(reference), reference={"w": reference})
    # Assert
    assert torch.allclose(result.tensors["w"], reference + EXPECTED_DELTA, atol=1e-6)
    assert result.details["clip_factors"] == pytest.approx({"a": 0.4, "b": 1.0, "c": 1.0})
    assert result.details["norms"] == pytest.approx({"a": 5.0, "b": 1.0, "c": 2.0})
    assert result.details["clipped"] == ["a"]
    assert result.accepted == ["a", "b", "c"] and result.rejected == {}


def test_adaptive_bound_is_the_median_norm() -> None:
    result = NormClipping().aggregate(_round(torch.zeros(2, 2)), reference={"w": torch.zeros(2, 2)})
    assert result.details["max_norm"] == pytest.approx(2.0)
    assert result.details["adaptive"] is True
    assert torch.allclose(result.tensors["w"], EXPECTED_DELTA, atol=1e-6)


def test_without_reference_the_updates_themselves_are_clipped() -> None:
    result = NormClipping(max_norm=2.0).aggregate(_round(torch.zeros(2, 2)))
    assert torch.allclose(result.tensors["w"], EXPECTED_DELTA, atol=1e-6)
    assert result.details["relative_to_reference"] is False


def test_no_clipping_is_fedavg() -> None:
    updates = [
        ClientUpdate("a", {"w": torch.tensor([1.0, 0.0])}, 1),
        ClientUpdate("b", {"w": torch.tensor([0.0, 1.0])}, 3),
    ]
    result = NormClipping(max_norm=100.0).aggregate(updates, reference={"w": torch.zeros(2)})
    assert torch.allclose(result.tensors["w"], torch.tensor([0.25, 0.75]))
