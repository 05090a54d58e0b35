"""Participation policies for the economic simulator (and the benchmark's real run):
the Q-learning agents and the baselines they are compared with.

* ``always``: every org participates with medium effort every round (the default policy
  of an org node);
* ``random``: a uniformly random affordable action;
* ``greedy``: a myopic oracle -- it knows the simulator's gain model and the true
  accuracies, assumes the others repeat their last efforts, and takes the action with
  the best expected reward for this round alone;
* ``qlearning``: one :class:`~fedledger.incentives.qlearning.QAgent` per org, seeing only
  its own signals (:mod:`fedledger.incentives.state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedledger.incentives.config import QLearningConfig
from fedledger.incentives.economy import EconomyConfig, GainModel, Observation
from fedledger.incentives.qlearning import QAgent, QTable, draw_rng
from fedledger.incentives.reward import local_steps, round_reward
from fedledger.incentives.state import encode


class AlwaysPolicy:
    name = "always"

    def __init__(self, action: str = "medium") -> None:
        self.action = action

    def begin_episode(self, episode: int) -> None:
        pass

    def act(self, obs: Observation) -> str:
        return self.action if self.action in obs.allowed else "skip"

    def feedback(self, org: int, reward: float, next_obs: Observation | None) -> None:
        pass


class RandomPolicy:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.episode = 0

    def begin_episode(self, episode: int) -> None:
        self.episode = episode

    def act(self, obs: Observation) -> str:
        rng = draw_rng(self.seed, "random", self.episode, obs.org, obs.step)
        return obs.allowed[int(rng.random() * len(obs.allowed))]

    def feedback(self, org: int, reward: float, next_obs: Observation | None) -> None:
        pass


class GreedyPolicy:
    """The myopic oracle described in the module docs."""

    name = "greedy"

    def __init__(self, economy: EconomyConfig, agent: QLearningConfig) -> None:
        self.economy, self.agent = economy, agent
        self.model = GainModel(economy)

    def begin_episode(self, episode: int) -> None:
        pass

    def act(self, obs: Observation) -> str:
        base, reward = self.economy.base_steps, self.agent.reward

        def expected(action: str) -> float:
            steps = local_steps(action, base, self.agent.effort)
            efforts = list(obs.last_efforts)
            efforts[obs.org] = steps / base
            gain = self.model.step(obs.accuracy, efforts)[obs.org] - obs.accuracy[obs.org]
            tokens = self.economy.reward_tokens if steps else 0.0
            return round_reward(tokens, steps, gain, reward)

        return max(obs.allowed, key=expected)

    def feedback(self, org: int, reward: float, next_obs: Observation | None) -> None:
        pass


@dataclass
class _Pending:
    state: str
    action: str


@dataclass
class QLearningPolicy:
    """Independent learners: one Q-table per org, learning across episodes.
    ``explore=False`` acts greedily; ``learn=False`` freezes the tables."""

    config: QLearningConfig
    orgs: int
    explore: bool = True
    learn: bool = True
    name: str = "qlearning"
    tables: list[QTable] = field(default_factory=list)
    decisions: list[int] = field(default_factory=list)
    episode: int = 0
    _pending: dict[int, _Pending] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tables = self.tables or [QTable() for _ in range(self.orgs)]
        self.decisions = self.decisions or [0] * self.orgs
        self.agents = [QAgent(self.config, t) for t in self.tables]

    def begin_episode(self, episode: int) -> None:
        self.episode = episode
        self._pending.clear()

    def state_of(self, obs: Observation) -> str:
        return encode(obs.signals, self.config.bins).key

    def act(self, obs: Observation) -> str:
        agent = self.agents[obs.org]
        state = self.state_of(obs)
        rng = draw_rng(self.config.seed, "org", obs.org, "episode", self.episode, obs.step)
        choice = agent.choose(state, decisions=self.decisions[obs.org], rng=rng,
                              allowed=obs.allowed, explore=self.explore)
        self.decisions[obs.org] += 1
        self._pending[obs.org] = _Pending(state, choice.action)
        return choice.action

    def feedback(self, org: int, reward: float, next_obs: Observation | None) -> None:
        pending = self._pending.pop(org)
        if not self.learn:
            return
        if next_obs is None:
            self.agents[org].learn(pending.state, pending.action, reward, None)
        else:
            self.agents[org].learn(pending.state, pending.action, reward,
                                   self.state_of(next_obs), next_obs.allowed)

    def frozen(self) -> QLearningPolicy:
        """The learned greedy policy (shares the tables, neither explores nor learns)."""
        return QLearningPolicy(self.config, self.orgs, explore=False, learn=False,
                               tables=self.tables, decisions=self.decisions)
