"""Server optimizers against hand-computed values, their state, FedProx, and replay with
FedAdam equal to retraining."""

from __future__ import annotations

import math

import pytest
import torch

from fedledger.learning.config import FederationConfig
from fedledger.learning.errors import ConfigError
from fedledger.learning.server_optimizers import (
    ServerOptimizerError,
    build_server_optimizer,
)
from fedledger.learning.simulation import Federation, run_rounds
from fedledger.learning.training import proximal_term, train_local
from fedledger.learning.unlearning import max_abs_diff

from .experiments import assert_replay_equals_retrain, tiny_experiment

# one tensor entry per case, start x0 = 1.0; round 1 aggregate 1.5 (d = 0.5), then
# round 2 aggregate x1 - 0.2 (d = -0.2): signs change, so momentum and v both matter
X0, D1, D2 = 1.0, 0.5, -0.2


def _two_rounds(name: str, params: dict) -> tuple[float, float, dict[str, float]]:
    opt = build_server_optimizer(name, params)
    assert opt is not None
    start = {"w": torch.tensor([X0])}
    one = opt.step(start, {"w": torch.tensor([X0 + D1])}, None)
    x1 = one.tensors["w"].item()
    two = opt.step(one.tensors, {"w": torch.tensor([x1 + D2])}, one.state)
    assert two.state["step"].item() == 2
    moments = {k: v.item() for k, v in two.state.items() if k != "step"}
    return x1, two.tensors["w"].item(), moments


def _adaptive(second, lr=0.1, b1=0.9, b2=0.99, tau=1e-3):
    m, v, x = 0.0, tau * tau, X0
    xs = []
    for d in (D1, D2):
        m = b1 * m + (1 - b1) * d
        v = second(v, d, b2)
        x = x + lr * m / (math.sqrt(v) + tau)
        xs.append(x)
    return xs[0], xs[1], {"m/w": m, "v/w": v}


def _close(a: float, b: float) -> None:
    assert a == pytest.approx(b, rel=1e-5, abs=1e-7)


def test_fedavgm_two_rounds_by_hand():
    x1, x2, moments = _two_rounds("fedavgm", {"lr": 0.5, "momentum": 0.9})
    # m1 = 0.5, x1 = 1 + 0.5 * 0.5; m2 = 0.9 * 0.5 - 0.2 = 0.25, x2 = x1 + 0.5 * 0.25
    _close(x1, 1.25)
    _close(x2, 1.375)
    _close(moments["m/w"], 0.25)


@pytest.mark.parametrize("name, second", [
    ("fedadagrad", lambda v, d, b2: v + d * d),
    ("fedadam", lambda v, d, b2: b2 * v + (1 - b2) * d * d),
    ("fedyogi", lambda v, d, b2: v - (1 - b2) * d * d * math.copysign(1.0, v - d * d)),
])
def test_adaptive_two_rounds_by_hand(name, second):
    x1, x2, moments = _two_rounds(name, {"lr": 0.1})
    e1, e2, expected = _adaptive(second)
    _close(x1, e1)
    _close(x2, e2)
    _close(moments["m/w"], expected["m/w"])
    _close(moments["v/w"], expected["v/w"])


def test_yogi_differs_from_adam_once_v_exceeds_d_squared():
    # round 2's d^2 (0.04) is below v after round 1 for Adagrad-like growth: Yogi's v
    # shrinks additively, Adam's multiplicatively, so their second rounds differ
    assert _two_rounds("fedyogi", {"lr": 0.1})[1] != _two_rounds("fedadam", {"lr": 0.1})[1]


def test_the_step_is_deterministic_and_keeps_dtype():
    opt = build_server_optimizer("fedadam", {})
    start = {"a": torch.randn(4, 3, generator=torch.Generator().manual_seed(1)),
             "b": torch.zeros(3, 4, dtype=torch.float64)}
    agg = {k: v + 0.01 for k, v in start.items()}
    one, two = opt.step(start, agg, None), opt.step(start, agg, None)
    assert all(torch.equal(one.tensors[k], two.tensors[k]) for k in start)
    assert one.tensors["b"].dtype == torch.float64


def test_none_is_no_optimizer_and_names_are_checked():
    assert build_server_optimizer("none") is None
    with pytest.raises(ConfigError, match="known: none, fedadagrad"):
        build_server_optimizer("adam")
    with pytest.raises(ConfigError, match="valid parameters: beta1, beta2, lr, tau"):
        build_server_optimizer("fedadam", {"eta": 0.1})
    with pytest.raises(ServerOptimizerError, match="momentum"):
        build_server_optimizer("fedavgm", {"momentum": 1.0})
    with pytest.raises(ValueError, match="exact_lora"):
        FederationConfig.model_validate({"strategy": {"name": "exact_lora"},
                                         "server_optimizer": {"name": "fedyogi"}})


def test_a_state_that_does_not_fit_is_refused():
    opt = build_server_optimizer("fedadam", {})
    start = {"w": torch.zeros(2, 2)}
    state = opt.initial_state(start)
    with pytest.raises(ServerOptimizerError, match="missing v/w"):
        opt.step(start, start, {k: v for k, v in state.items() if k != "v/w"})
    with pytest.raises(ServerOptimizerError, match="expected float32"):
        opt.step(start, start, {**state, "m/w": torch.zeros(3)})
    with pytest.raises(ServerOptimizerError, match="int64 scalar"):
        opt.step(start, start, {**state, "step": torch.tensor([1.0])})
    with pytest.raises(ServerOptimizerError, match="rank-changing"):
        opt.step(start, {"w": torch.zeros(4, 2)}, state)


def test_a_received_state_is_read_strictly():
    from fedledger.learning.errors import UpdateRejectedError
    from fedledger.learning.updates import AdapterSpec, update_bytes

    opt = build_server_optimizer("fedadam", {})
    assert opt is not None
    spec = AdapterSpec({"a": (2, 3), "b": (4,)})
    start = {"a": torch.ones(2, 3), "b": torch.zeros(4)}
    state = opt.step(start, {"a": torch.full((2, 3), 2.0), "b": torch.ones(4)}, None).state
    data = update_bytes(state)
    loaded = opt.load_state_bytes(data, spec)
    assert set(loaded) == set(state) and loaded["step"].dtype == torch.int64
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert len(data) <= opt.state_max_bytes(spec)
    cases = {
        "missing_key": {k: v for k, v in state.items() if k != "v/b"},
        "shape_mismatch": {**state, "m/a": torch.zeros(3, 2)},
        "dtype_mismatch": {**state, "step": torch.tensor(1.0)},
        "non_finite": {**state, "v/a": torch.full((2, 3), math.inf)},
    }
    for reason, bad in cases.items():
        with pytest.raises(UpdateRejectedError) as caught:
            opt.load_state_bytes(update_bytes(bad), spec)
        assert caught.value.reason == reason
    with pytest.raises(UpdateRejectedError) as caught:  # a FedAvgM state has no v
        build_server_optimizer("fedavgm", {}).load_state_bytes(data, spec)
    assert caught.value.reason == "unexpected_key"


def test_proximal_term_value():
    p = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    a = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    assert proximal_term(p, a, 0.5).item() == pytest.approx(0.25 * (1 + 4 + 4))


def test_fedprox_keeps_the_update_closer_to_the_start(tmp_path):
    config = tiny_experiment(tmp_path, train={"local_steps": 4, "learning_rate": 5e-2})
    fed = Federation.build(config)
    samples = fed.data.orgs[fed.data.org_names[0]].train
    start = fed.initial_state

    def distance(mu: float) -> float:
        train = config.train.model_copy(update={"prox_mu": mu})
        state = train_local(fed.model, fed.task, samples, train, start_state=start, seed=3).state
        return sum(((state[k].float() - start[k].float()) ** 2).sum().item() for k in start)

    assert distance(100.0) < distance(0.0)


def test_simulation_carries_the_server_state(tmp_path):
    base = tiny_experiment(tmp_path / "a", federation={"rounds": 2}, train={"local_steps": 1})
    adam = tiny_experiment(tmp_path / "b", federation={
        "rounds": 2, "server_optimizer": {"name": "fedadam", "params": {"lr": 1e-2}}},
        train={"local_steps": 1})
    plain, _ = run_rounds(Federation.build(base))
    stepped, _ = run_rounds(Federation.build(adam))
    assert max_abs_diff(plain, stepped) > 0


def test_replay_with_fedadam_equals_retrain(tmp_path):
    config = tiny_experiment(tmp_path, federation={
        "rounds": 2, "server_optimizer": {"name": "fedadam", "params": {"lr": 1e-2}}},
        train={"local_steps": 2}, data={"max_train_per_org": 12})
    assert_replay_equals_retrain(config)
