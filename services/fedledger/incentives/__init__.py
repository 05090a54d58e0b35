"""Incentives: what a round's outcome moves on the Staking contract (:mod:`.outcome`),
and the organizations' participation agents (docs/incentives.md):

* :mod:`.config` -- the agent's settings (rewards, effort levels, state bins, exploration);
* :mod:`.state` -- the signals an org sees and the discrete state they map to;
* :mod:`.reward` -- the round's reward, effort -> local steps, welfare;
* :mod:`.qlearning` -- the tabular Q-learning agent (epsilon-greedy, one per org);
* :mod:`.economy` -- the economic simulator (a parametric model of accuracy gain versus
  participation and effort) and its calibration on measured curves;
* :mod:`.policies` -- the simulator's policies: always, random, greedy, qlearning.

Nothing here imports torch or a ledger client: the bridge, the host and the org node
use it alike.
"""
