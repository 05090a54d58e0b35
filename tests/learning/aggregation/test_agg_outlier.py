"""One planted outlier moves FedAvg far; every robust strategy stays near the honest mean."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.aggregation import (
    AggregationStrategy,
    ClientUpdate,
    CoordinateMedian,
    FedAvg,
    Flame,
    MultiKrum,
    NormClipping,
    TrimmedMean,
)

KEYS = {"l0.q_proj.lora_A.weight": (4, 16), "l0.q_proj.lora_B.weight": (12, 4)}


def _round() -> tuple[list[ClientUpdate], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Nine honest clients = reference + common direction + small noise; one attacker
    sends the direction flipped and boosted 50 times."""
    gen = torch.Generator().manual_seed(42)
    reference = {k: torch.randn(*s, generator=gen) for k, s in KEYS.items()}
    direction = {k: torch.randn(*s, generator=gen) for k, s in KEYS.items()}
    updates = [
        ClientUpdate(
            f"honest{i}",
            {
                k: reference[k] + direction[k] + 0.05 * torch.randn(*s, generator=gen)
                for k, s in KEYS.items()
            },
            100,
        )
        for i in range(9)
    ]
    honest_mean = {k: sum(u.tensors[k] for u in updates) / 9 for k in KEYS}
    updates.insert(
        3, ClientUpdate("attacker", {k: reference[k] - 50 * direction[k] for k in KEYS}, 100)
    )
    return updates, reference, honest_mean


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in KEYS)))


@pytest.mark.parametrize(
    "strategy",
    [CoordinateMedian(), TrimmedMean(beta=0.1), MultiKrum(f=1), NormClipping(), Flame()],
    ids=lambda s: s.name,
)
def test_robust_result_stays_near_the_honest_mean(strategy: AggregationStrategy) -> None:
    # Prepare
    updates, reference, honest_mean = _round()
    scale = _distance(honest_mean, reference)  # size of the honest step
    # Execute
    robust = strategy.aggregate(updates, reference=reference)
    naive = FedAvg().aggregate(updates, reference=reference)
    # Assert: FedAvg is dragged 5 honest steps away (0.9 d - 0.1 * 50 d); robust ones are not
    assert _distance(naive.tensors, honest_mean) > 4.5 * scale
    assert _distance(robust.tensors, honest_mean) < 0.25 * scale


@pytest.mark.parametrize("strategy", [MultiKrum(f=1), Flame()], ids=lambda s: s.name)
def test_filters_reject_exactly_the_attacker(strategy: AggregationStrategy) -> None:
    updates, reference, _ = _round()
    result = strategy.aggregate(updates, reference=reference)
    assert list(result.rejected) == ["attacker"]
    assert result.accepted == [u.client_id for u in updates if u.client_id != "attacker"]


def test_norm_clipping_scales_the_attacker_only() -> None:
    updates, reference, _ = _round()
    result = NormClipping().aggregate(updates, reference=reference)
    factors = result.details["clip_factors"]
    assert factors["attacker"] < 0.05
    assert "attacker" in result.details["clipped"]
    assert min(f for cid, f in factors.items() if cid != "attacker") > 0.9
