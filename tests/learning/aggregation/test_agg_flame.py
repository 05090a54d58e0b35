"""FLAME-like filtering against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.aggregation import ClientUpdate, Flame
from fedledger.learning.errors import AggregationError

# Four honest deltas along +x (norms 1..4) and one orthogonal (cosine distance 1).
DELTAS = {"h1": [1.0, 0.0], "h2": [2.0, 0.0], "h3": [3.0, 0.0], "h4": [4.0, 0.0], "m": [0.0, -5.0]}


def _round(reference: torch.Tensor) -> list[ClientUpdate]:
    return [ClientUpdate(cid, {"w": reference + torch.tensor([d])}, 1) for cid, d in DELTAS.items()]


def test_by_hand() -> None:
    # Prepare
    reference = torch.tensor([[5.0, -1.0]])
    # Execute
    result = Flame().aggregate(_round(reference), reference={"w": reference})
    # Assert: crowd distances 0,0,0,0 and 1; core h1..h3 with diameter 0; m rejected.
    assert result.accepted == ["h1", "h2", "h3", "h4"]
    assert list(result.rejected) == ["m"]
    assert "median cosine distance to the others 1 > threshold 0" in result.rejected["m"]
    assert result.details["labels"] == {"h1": 0, "h2": 0, "h3": 0, "h4": 0, "m": -1}
    assert result.details["core"] == ["h1", "h2", "h3"]
    # bound = median norm of all five (1, 2, 3, 4, 5) = 3: h4 is scaled to (3, 0)
    assert result.details["clip_bound"] == pytest.approx(3.0)
    assert result.details["clip_factors"]["h4"] == pytest.approx(0.75)
    # mean of (1, 2, 3, 3) along x
    assert torch.allclose(result.tensors["w"], reference + torch.tensor([[2.25, 0.0]]))


def test_boosted_update_in_the_right_direction_is_clipped_not_rejected() -> None:
    reference = torch.zeros(1, 2)
    updates = [ClientUpdate(f"h{i}", {"w": torch.tensor([[1.0, 0.1 * i]])}, 1) for i in range(4)]
    updates.append(ClientUpdate("boost", {"w": torch.tensor([[100.0, 0.0]])}, 1))
    result = Flame().aggregate(updates, reference={"w": reference})
    assert "boost" in result.accepted
    assert result.details["clip_factors"]["boost"] < 0.02
    assert result.tensors["w"][0, 0].item() < 1.1


def test_fixed_threshold() -> None:
    result = Flame(distance_threshold=1.5).aggregate(
        _round(torch.zeros(1, 2)), reference={"w": torch.zeros(1, 2)}
    )
    assert result.rejected == {}
    assert result.details["threshold_adaptive"] is False


def test_noise_is_seeded() -> None:
    reference = {"w": torch.zeros(1, 2)}
    quiet = Flame().aggregate(_round(torch.zeros(1, 2)), reference=reference).tensors["w"]
    a = Flame(noise_lambda=0.1, seed=1).aggregate(_round(torch.zeros(1, 2)), reference=reference)
    b = Flame(noise_lambda=0.1, seed=1).aggregate(_round(torch.zeros(1, 2)), reference=reference)
    c = Flame(noise_lambda=0.1, seed=2).aggregate(_round(torch.zeros(1, 2)), reference=reference)
    assert a.details["noise_sigma"] == pytest.approx(0.3)
    assert torch.equal(a.tensors["w"], b.tensors["w"])
    assert not torch.equal(a.tensors["w"], c.tensors["w"])
    assert not torch.equal(a.tensors["w"], quiet)


def test_zero_delta_is_orthogonal_to_everyone() -> None:
    reference = torch.zeros(1, 2)
    updates = [ClientUpdate(f"h{i}", {"w": torch.tensor([[1.0 + i, 0.0]])}, 1) for i in range(4)]
    updates.append(ClientUpdate("idle", {"w": reference.clone()}, 1))
    result = Flame().aggregate(updates, reference={"w": reference})
    assert list(result.rejected) == ["idle"]


def test_single_client() -> None:
    result = Flame().aggregate(
        [ClientUpdate("a", {"w": torch.ones(2)}, 1)], reference={"w": torch.zeros(2)}
    )
    assert result.accepted == ["a"]
    assert torch.allclose(result.tensors["w"], torch.ones(2))


def test_seed_must_be_an_int() -> None:
    with pytest.raises(AggregationError, match="seed must be an int"):
        Flame(seed="x")  # type: ignore[arg-type]
