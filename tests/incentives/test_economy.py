"""The economic simulator: its gain model by hand, welfare and compute of a policy,
determinism given a seed, calibration on known curves; and that the incentives modules
import without torch (the bridge and host use them)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from fedledger.incentives.config import QLearningConfig, RewardConfig
from fedledger.incentives.economy import EconomyConfig, GainModel, fit_gain_model, run_episode
from fedledger.incentives.policies import (
    AlwaysPolicy,
    GreedyPolicy,
    QLearningPolicy,
    RandomPolicy,
)


def test_gain_model_by_hand():
    economy = EconomyConfig(orgs=2, rounds=1, kappa=0.5, transfer=0.5, effort_exponent=1.0,
                            initial_accuracy=0.5, ceiling=0.9)
    model = GainModel(economy)
    # org 1 trains (effort 1), org 2 skips: E_1 = (1 + 0.5 * 0) / 1.5, E_2 = (0 + 0.5) / 1.5
    assert model.effective_effort([1.0, 0.0]) == pytest.approx([2 / 3, 1 / 3])
    assert model.step([0.5, 0.5], [1.0, 0.0]) == pytest.approx(
        [0.5 + 0.4 * (1 - math.exp(-1 / 3)), 0.5 + 0.4 * (1 - math.exp(-1 / 6))])
    # diminishing returns within a round: 1.5x the steps, 1.5 ** 0.7 x the effort
    damped = GainModel(economy.model_copy(update={"effort_exponent": 0.7}))
    assert damped.effective_effort([1.5, 1.5]) == pytest.approx([1.5 ** 0.7] * 2)


def test_episode_welfare_compute_and_net_reward_by_hand():
    economy = EconomyConfig(orgs=2, rounds=1, base_steps=10, kappa=0.5, transfer=0.5,
                            effort_exponent=1.0, initial_accuracy=0.5, ceiling=0.9, noise=0.0,
                            reward_tokens=2.0)
    agent = QLearningConfig(reward=RewardConfig(compute_price=0.1, gain_weight=100.0))
    result = run_episode(AlwaysPolicy(), economy, agent, episode=0, seed=0)
    gain = 0.4 * (1 - math.exp(-0.5))  # both train: E = 1 for both
    assert result.compute == 20 and result.actions["medium"] == 2
    assert result.gains == pytest.approx([gain, gain])
    assert result.welfare == pytest.approx(100 * 2 * gain - 0.1 * 20)  # tokens are transfers
    assert result.net_reward == pytest.approx([2.0 + 100 * gain - 1.0] * 2)
    assert result.accuracy == pytest.approx([0.5, 0.5 + gain])


def test_simulator_is_deterministic_and_policies_respect_the_budget():
    economy = EconomyConfig(orgs=3, rounds=12, base_steps=10, budget_steps=100)
    agent = QLearningConfig(epsilon=1.0)
    always = run_episode(AlwaysPolicy(), economy, agent, episode=3, seed=1)
    assert always.compute == 3 * 10 * 10  # 10 medium rounds fit in the budget, then skips
    assert always.actions == {"skip": 6, "low": 0, "medium": 30, "high": 0}
    for make in (lambda: RandomPolicy(seed=4), lambda: GreedyPolicy(economy, agent),
                 lambda: QLearningPolicy(agent, economy.orgs)):
        first = run_episode(make(), economy, agent, episode=5, seed=2)
        again = run_episode(make(), economy, agent, episode=5, seed=2)
        assert first == again
        assert first.compute <= 3 * 100
    # another episode draws other actions and other measurement noise
    five = run_episode(RandomPolicy(seed=4), economy, agent, episode=5, seed=2)
    six = run_episode(RandomPolicy(seed=4), economy, agent, episode=6, seed=2)
    assert five.per_round_actions != six.per_round_actions


def test_fit_recovers_a_known_gain_model():
    truth = EconomyConfig(orgs=3, rounds=8, kappa=0.4, ceiling=[0.7, 0.8, 0.9],
                          initial_accuracy=[0.3, 0.4, 0.5], noise=0.0)
    model = GainModel(truth)
    accuracy = truth.per_org(truth.initial_accuracy)
    curves = [[a] for a in accuracy]
    for _ in range(truth.rounds):
        accuracy = model.step(accuracy, [1.0] * 3)
        for curve, a in zip(curves, accuracy, strict=True):
            curve.append(a)
    fitted = fit_gain_model(curves)
    assert fitted.kappa == pytest.approx(0.4, abs=0.006)
    assert fitted.ceiling == pytest.approx([0.7, 0.8, 0.9], abs=0.005)
    assert fitted.rmse < 1e-3


def test_incentives_import_without_torch():
    code = ("import sys, json; import fedledger.incentives.qlearning, "
            "fedledger.incentives.economy, fedledger.incentives.policies, "
            "fedledger.incentives.state, fedledger.incentives.reward, "
            "fedledger.incentives.outcome; print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "fedledger.incentives.economy" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "peft", "transformers",
                                                          "sqlalchemy", "fastapi")}
