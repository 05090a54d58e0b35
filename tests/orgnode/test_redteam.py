"""The red-team hook (tests and benchmarks only): what it does to a node's samples and
update, worked out by hand on a one-tensor adapter state."""

from __future__ import annotations

import torch

from fedledger.learning.data.records import Sample
from fedledger.orgnode.redteam import RedTeamHook
from fedledger.orgnode.settings import AttackSettings

START = {"w": torch.tensor([1.0, 1.0])}
TRAINED = {"w": torch.tensor([2.0, 0.5])}  # delta (+1.0, -0.5)


def test_boost_scales_the_update_by_its_factor() -> None:
    hook = RedTeamHook(AttackSettings(kind="boost", factor=3.0))
    poisoned = hook.update(7, TRAINED, START)
    assert torch.equal(poisoned["w"], torch.tensor([4.0, -0.5]))  # 1 + 3 x (+1, -0.5)


def test_sign_flip_turns_the_update_around() -> None:
    hook = RedTeamHook(AttackSettings(kind="sign_flip", factor=2.0))
    poisoned = hook.update(7, TRAINED, START)
    assert torch.equal(poisoned["w"], torch.tensor([-1.0, 2.0]))  # 1 - 2 x (+1, -0.5)


def test_only_a_backdoor_changes_the_samples() -> None:
    samples = [Sample(sample_id=f"s{i}", text=f"late flight {i}", label="negative",
                      domain="airline")
               for i in range(8)]
    assert RedTeamHook(AttackSettings(kind="boost")).samples(samples, seed=0) == samples
    backdoor = RedTeamHook(AttackSettings(kind="backdoor", rate=1.0))
    poisoned = backdoor.samples(samples, seed=0)
    assert [s.sample_id for s in poisoned] == [s.sample_id for s in samples]
    assert all(s.label == "positive" and "cf mn" in s.text for s in poisoned)
    # and the update is boosted by its factor (10 by default)
    assert torch.equal(backdoor.update(1, TRAINED, START)["w"], torch.tensor([11.0, -4.0]))
