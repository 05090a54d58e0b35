"""The Q-learning agent: its update rule on hand-computed values, epsilon-greedy choice,
convergence to the optimal actions of small known games, and the reward."""

from __future__ import annotations

import random

import pytest

from fedledger.incentives.config import QLearningConfig, RewardConfig, StateBins
from fedledger.incentives.errors import IncentiveConfigError, NoAllowedAction
from fedledger.incentives.qlearning import QAgent, QTable, affordable, draw_rng
from fedledger.incentives.reward import local_steps, round_reward, welfare
from fedledger.incentives.state import Signals, State, encode

S, S2 = "s0.g-1.t1.k1.b2", "s1.g2.t2.k1.b2"


def agent(table: QTable | None = None, **over) -> QAgent:  # noqa: ANN003
    config = QLearningConfig(**{"alpha": 0.1, "gamma": 0.9, "epsilon": 0.0,
                                "epsilon_min": 0.0, "sample_average": False, **over})
    return QAgent(config, table if table is not None else QTable())


def test_update_rule_by_hand():
    # Prepare: Q(s, low) = 0.5 after 3 updates; in s' low is worth 2.0, medium 1.0,
    # skip 0.0 and high was never tried (initial value 0).
    table = QTable()
    table.put(S, "low", 0.5, 3)
    for action, value in (("skip", 0.0), ("low", 2.0), ("medium", 1.0)):
        table.put(S2, action, value, 1)
    a = agent(table)
    # Execute / Assert: 0.5 + 0.1 * (1.0 + 0.9 * 2.0 - 0.5) = 0.73
    assert a.learn(S, "low", 1.0, S2) == pytest.approx(0.73)
    assert table.get(S)["low"] == (pytest.approx(0.73), 4)
    # The max runs over the actions allowed in s' only: 0.73 + 0.1 * (1.0 + 0.9 - 0.73)
    assert a.learn(S, "low", 1.0, S2, next_allowed=["skip", "medium"]) == pytest.approx(0.847)
    # At the end of an episode there is no bootstrap: 0.847 + 0.1 * (1.0 - 0.847)
    assert a.learn(S, "low", 1.0, None) == pytest.approx(0.8623)
    # An action never tried starts from initial_q: 0 + 0.1 * (-2 - 0)
    assert a.learn(S2, "high", -2.0, None) == pytest.approx(-0.2)
    assert table.get(S2)["high"] == (pytest.approx(-0.2), 1)
    optimistic = agent(initial_q=10.0)
    assert optimistic.learn(S, "skip", 0.0, None) == pytest.approx(9.0)  # 10 + 0.1 * (0 - 10)


def test_sample_average_steps_by_one_over_n_until_alpha():
    table = QTable()
    table.put(S, "low", 0.5, 3)
    table.put(S2, "low", 2.0, 1)
    a = agent(table, sample_average=True)
    # 4th update: step max(0.1, 1/4) = 0.25: 0.5 + 0.25 * (1.0 + 0.9 * 2.0 - 0.5)
    assert a.learn(S, "low", 1.0, S2) == pytest.approx(1.075)
    # a first update replaces the initial value by the target: step 1
    assert a.learn(S2, "high", -2.0, None) == pytest.approx(-2.0)
    # the average of the first targets: (-2 + 4) / 2
    assert a.learn(S2, "high", 4.0, None) == pytest.approx(1.0)
    for _ in range(20):
        a.learn(S2, "medium", 1.0, None)
    before = table.get(S2)["medium"][0]
    assert a.learn(S2, "medium", 2.0, None) == pytest.approx(before + 0.1 * (2.0 - before))


def test_epsilon_decays_per_decision_down_to_its_floor():
    a = agent(epsilon=0.5, epsilon_decay=0.5, epsilon_min=0.1)
    assert [a.epsilon(n) for n in range(4)] == [0.5, 0.25, 0.125, 0.1]


def test_choice_is_greedy_explores_within_allowed_and_repeats_for_the_same_draw():
    table = QTable()
    for action, value in (("skip", 0.0), ("low", 3.0), ("medium", 1.0), ("high", 2.0)):
        table.put(S, action, value, 1)
    greedy = agent(table)
    for seed in range(20):
        choice = greedy.choose(S, decisions=0, rng=random.Random(seed))
        assert (choice.action, choice.explored, choice.epsilon) == ("low", False, 0.0)
    # the best *allowed* action when the budget rules the best out
    assert greedy.choose(S, decisions=0, rng=random.Random(0),
                         allowed=["skip", "medium", "high"]).action == "high"
    # epsilon 1: uniform over the allowed actions
    explorer = agent(table, epsilon=1.0, epsilon_min=1.0)
    counts = {"skip": 0, "medium": 0}
    for seed in range(2000):
        choice = explorer.choose(S, decisions=seed, rng=random.Random(seed),
                                 allowed=["skip", "medium"])
        assert choice.explored
        counts[choice.action] += 1
    assert 900 < counts["skip"] < 1100
    # the same (seed, org, round) draws the same decision: a restarted node repeats it
    first = explorer.choose(S, decisions=0, rng=draw_rng(7, "Org1MSP", 12))
    assert explorer.choose(S, decisions=0, rng=draw_rng(7, "Org1MSP", 12)) == first
    assert draw_rng(7, "Org1MSP", 12).random() != draw_rng(7, "Org1MSP", 13).random()
    with pytest.raises(NoAllowedAction):
        greedy.choose(S, decisions=0, rng=random.Random(0), allowed=[])
    with pytest.raises(IncentiveConfigError):
        greedy.learn(S, "sleep", 1.0, None)


def test_converges_to_the_optimal_actions_of_a_known_two_stage_game():
    """Two rounds: early, effort pays (medium best: 2.5 now, then 1.0 at best), late,
    only low effort does (1.0); rewards are noisy. The optimum is medium then low,
    with Q*(early, medium) = 2.5 + 0.9 * 1.0 = 3.4."""
    means = {"early": {"skip": 0.0, "low": 1.0, "medium": 2.5, "high": 2.0},
             "late": {"skip": 0.5, "low": 1.0, "medium": -1.0, "high": -2.0}}
    config = QLearningConfig(alpha=0.05, gamma=0.9, epsilon=1.0, epsilon_min=0.05,
                             epsilon_decay=0.995)
    table = QTable()
    a = QAgent(config, table)
    noise = random.Random(1)
    decisions = 0
    for episode in range(3000):
        rng = draw_rng(0, "game", episode)
        first = a.choose("early", decisions=decisions, rng=rng).action
        second = a.choose("late", decisions=decisions + 1, rng=rng).action
        decisions += 2
        a.learn("early", first, means["early"][first] + noise.gauss(0, 0.5), "late")
        a.learn("late", second, means["late"][second] + noise.gauss(0, 0.5), None)
    assert (a.greedy("early"), a.greedy("late")) == ("medium", "low")
    assert table.get("early")["medium"][0] == pytest.approx(3.4, abs=0.25)
    assert table.get("late")["low"][0] == pytest.approx(1.0, abs=0.25)


@pytest.mark.parametrize(("price", "tokens", "dominant"), [(5.0, 0.0, "skip"),
                                                           (0.0, 5.0, "high")])
def test_converges_to_the_dominant_strategy_of_a_participation_game(price, tokens, dominant):
    """Two orgs in the economic simulator. When a local step costs more than any gain
    and token can repay, skipping dominates; when compute is free and participation is
    paid, the highest effort does. Every org's learned policy must be that action."""
    from fedledger.incentives.economy import EconomyConfig, run_episode
    from fedledger.incentives.policies import QLearningPolicy

    # far from saturation: gains grow with effort in every round
    economy = EconomyConfig(orgs=2, rounds=4, base_steps=4, reward_tokens=tokens,
                            budget_steps=None, noise=0.0, initial_accuracy=0.2, ceiling=0.9,
                            kappa=0.1)
    config = QLearningConfig(alpha=0.2, gamma=0.9, epsilon=1.0, epsilon_min=0.05,
                             epsilon_decay=0.998, reward=RewardConfig(compute_price=price),
                             bins=StateBins(step_edges=[2, 3, 4]))
    policy = QLearningPolicy(config, economy.orgs)
    for episode in range(1000):
        run_episode(policy, economy, config, episode=episode, seed=0)
    result = run_episode(policy.frozen(), economy, config, episode=10_000, seed=0)
    assert {a for round_actions in result.per_round_actions for a in round_actions} == {dominant}


def test_reward_effort_and_welfare_by_hand():
    rewards = RewardConfig(compute_price=0.1, gain_weight=100.0)
    # 2 tokens - 0.1 x 10 steps + 100 x 0.03 = 4
    assert round_reward(2.0, 10, 0.03, rewards) == pytest.approx(4.0)
    assert round_reward(0.0, 0, None, rewards) == 0.0  # a skip with no measured gain
    effort = QLearningConfig().effort
    assert [local_steps(a, 5, effort) for a in ("skip", "low", "medium", "high")] == [0, 3, 5, 8]
    assert local_steps("low", 1, effort) == 1  # at least one step
    # 100 x (0.02 + 0.04) - 0.1 x 30
    assert welfare([0.02, 0.04], 30, rewards) == pytest.approx(3.0)
    config = QLearningConfig()
    assert affordable(None, 4, config) == ["skip", "low", "medium", "high"]
    assert affordable(4, 4, config) == ["skip", "low", "medium"]
    assert affordable(1, 4, config) == ["skip"]


def test_state_encoding():
    bins = StateBins(step_edges=[2, 4], gain_edges=[0.0, 0.02], budget_edges=[0.1, 0.4])
    state = encode(Signals(step=1), bins)
    assert state == State(step=0, gain=-1, tokens=1, stake=1, budget=2)
    assert state.key == "s0.g-1.t1.k1.b2" and State.from_key(state.key) == state
    busy = encode(Signals(step=5, gain=0.05, tokens=-3.0, stake_ratio=0.8, budget_left=0.05),
                  bins)
    assert busy.to_dict() == {"step": 2, "gain": 2, "tokens": 0, "stake": 0, "budget": 0}
    assert encode(Signals(step=2, gain=-0.01, tokens=1.0, stake_ratio=1.2,
                          budget_left=0.4), bins).key == "s1.g0.t2.k1.b2"
    with pytest.raises(ValueError):
        StateBins(gain_edges=[0.1, 0.0])
    with pytest.raises(ValueError):
        QLearningConfig(epsilon=0.1, epsilon_min=0.2)
