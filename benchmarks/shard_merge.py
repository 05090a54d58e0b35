"""How the served model should combine the SISA shard adapters: mean or sum.

The unlearning benchmark (``benchmarks/unlearning.py``) serves the mean of the shard
adapters' LoRA products, ``(1/S) sum_s B_s A_s``, and measures its accuracy falling with S:
with compute matched to S = 1, each shard adapter is trained for 1/S of the steps on 1/S
of the data, and averaging S such updates is, to first order, one update of 1/S of the
training. Their sum, ``sum_s B_s A_s``, is to first order the whole training (each shard's
steps applied once). This script trains the same SISA federations as the unlearning
benchmark (same settings, seeds and data, so the "mean" column reproduces its "acc
before"), serves both merges of the same shard adapters, and scores each: union test
accuracy, the accuracy difference against S = 1 paired on the same test set, and the
forget set's membership-inference AUC. The merge is ``federation.shard_merge``
(``SisaConfig.merge``); a deletion's cost and exactness do not depend on it.

    python benchmarks/shard_merge.py            # SmolLM2-135M, the unlearning run's settings
    python benchmarks/shard_merge.py --quick    # tiny random model, under a minute
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/unlearning.py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.progress import Progress

from benchmarks._results import RESULTS_DIR, machine_description, update_results_md, write_json
from benchmarks.unlearning import (
    Scorer,
    experiment,
    forget_set,
    paired_difference,
    public,
    run_arguments,
)
from fedledger.learning.simulation import Federation
from fedledger.learning.unlearning import SisaConfig, SisaFederation, merge_shard_adapters

NAME = "shard_merge"
MERGES = ("mean", "sum")
console = Console()


def main() -> None:
    args = run_arguments(__doc__)
    command = shlex.join(["python", "benchmarks/shard_merge.py", *sys.argv[1:]])
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    fed = Federation.build(experiment(args))
    forget = forget_set(fed, SisaConfig().shard_key, max(args.shard_counts), args.forget)
    scorer = Scorer(fed, forget)
    console.rule(f"{NAME}: {fed.config.model.base}, {len(fed.data.org_names)} orgs, "
                 f"{args.rounds} rounds, S in {args.shard_counts}")
    rows, correct = [], {}
    with Progress(console=console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("train and score", total=len(args.shard_counts))
        base = public(scorer(fed.initial_state))
        for shards in args.shard_counts:
            sisa = SisaFederation(fed, SisaConfig(shards=shards, slices=args.slices),
                                  checkpoint_dir=Path(tmp) / f"S{shards}")
            t0 = time.perf_counter()
            sisa.train()
            train_s = time.perf_counter() - t0
            states = [sisa.shard_state(s) for s in range(shards)]
            row = {"shards": shards, "train_s": train_s, "local_steps_per_shard": sisa.local_steps}
            for merge in MERGES:
                if shards == 1 and merge == "sum":
                    score = dict(row["mean"], correct=correct[(1, "mean")])  # one adapter: the same
                else:
                    score = scorer(merge_shard_adapters(states, merge))
                correct[(shards, merge)] = score["correct"]
                row[merge] = public(score)
            rows.append(row)
            console.print(f"S={shards}: " + ", ".join(
                f"{m}: acc {row[m]['accuracy']:.3f}, MIA AUC {row[m]['mia_auc']:.3f}" for m in MERGES))
            progress.advance(task)
    reference = correct.get((1, "mean"))
    for row in rows:
        for merge in MERGES:
            if reference is not None:
                diff, se = paired_difference(reference, correct[(row["shards"], merge)])
                row[merge]["points_lost_vs_s1"], row[merge]["points_lost_vs_s1_se"] = 100 * diff, 100 * se
    results = {
        "quick": args.quick, "command": command,
        "started_utc": started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "model": fed.config.model.base, "orgs": fed.data.org_names,
        "settings": {"rounds": args.rounds, "local_steps_at_s1": args.local_steps,
                     "batch_size": args.batch_size, "lr": args.lr,
                     "train_per_org": args.train_per_org, "test_per_org": args.test_per_org,
                     "union_test_size": len(scorer.test), "forget": len(scorer.forget)},
        "base_model": base,
        "accuracy": {m: {str(r["shards"]): r[m]["accuracy"] for r in rows} for m in MERGES},
        "points_lost_vs_s1": {m: {str(r["shards"]): r[m].get("points_lost_vs_s1") for r in rows}
                              for m in MERGES},
        "mia_auc": {m: {str(r["shards"]): r[m]["mia_auc"] for r in rows} for m in MERGES},
        "details": rows, "seconds": time.perf_counter() - started, "machine": machine_description(),
    }
    name = NAME + ("_quick" if args.quick else "")
    path = write_json(name, results)
    png = RESULTS_DIR / f"{name}.png"
    plot(results, png)
    update_results_md(name, markdown(results, png))
    console.print(f"wrote {path}, {png} and the {name} section of RESULTS.md")


def plot(res: dict, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for merge, marker in zip(MERGES, ("o-", "s--"), strict=True):
        s = [int(k) for k in res["accuracy"][merge]]
        ax1.plot(s, list(res["accuracy"][merge].values()), marker, label=f"{merge} of the shard adapters")
        ax2.plot(s, list(res["mia_auc"][merge].values()), marker, label=merge)
    ax1.axhline(res["base_model"]["accuracy"], color="grey", lw=0.8, label="base model")
    for ax, label in ((ax1, "union test accuracy"), (ax2, "forget-set MIA AUC")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(s, [str(x) for x in s])
        ax.set_xlabel("shards S")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"served model: mean vs sum of S shard adapters ({res['model']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(res: dict, png: Path) -> str:
    m, s = res["machine"], res["settings"]
    md = [
        f"## shard merge{' (quick)' if res['quick'] else ''} (`benchmarks/shard_merge.py`)",
        "",
        f"Command: `{res['command']}`",
        "",
        (f"Measured {res['started_utc']} on {m['platform']}, {m['cpu_count']} CPU cores, torch "
         f"{m['torch']} ({m['torch_threads']} threads), GPU: {m['cuda'] or 'none'}; "
         f"{res['seconds'] / 60:.1f} min. `{res['model']}`, {len(res['orgs'])} orgs "
         f"({', '.join(res['orgs'])}), {s['train_per_org']} train samples each, FedAvg, "
         f"{s['rounds']} rounds, {s['local_steps_at_s1']} local steps per org-round at S = 1 and "
         f"ceil(steps / S) per org-shard-round, batch {s['batch_size']}, lr {s['lr']}: the "
         f"settings of the unlearning run, so its shard adapters are these. Union test set "
         f"n = {s['union_test_size']}; base model accuracy {res['base_model']['accuracy']:.3f}. "
         f"MIA: the unlearning benchmark's ({s['forget']} forget samples of the first org "
         "against that org's test samples)."),
        "",
        "| S | acc, mean | points lost vs S=1 (± s.e.) | MIA AUC | acc, sum | points lost vs S=1 (± s.e.) | MIA AUC |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["details"]:
        cells = []
        for merge in MERGES:
            x = r[merge]
            lost = (f"{x['points_lost_vs_s1']:.1f} ± {x['points_lost_vs_s1_se']:.1f}"
                    if x.get("points_lost_vs_s1") is not None else "–")
            cells += [f"{x['accuracy']:.3f}", lost, f"{x['mia_auc']:.3f}"]
        md.append(f"| {r['shards']} | " + " | ".join(cells) + " |")
    md += ["", f"![shard merge: mean vs sum](results/{png.name})"]
    return "\n".join(md)


if __name__ == "__main__":
    main()
