"""Human-facing output of a simulation: a markdown report and a PNG of accuracy per round
(global model, and per org on each org's own test slice)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI
import matplotlib.pyplot as plt

from fedledger.learning.simulation import SimulationResult


def plot_accuracy(result: SimulationResult, path: Path) -> Path:
    scored = [r for r in result.rounds if r.accuracy is not None]
    rounds = [r.round for r in scored]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for org in result.orgs:
        ax.plot(rounds, [r.per_org[org] for r in scored], marker=".", alpha=0.6, label=org)
    ax.plot(rounds, [r.accuracy for r in scored if r.accuracy is not None], marker="o", color="black", linewidth=2.5,
            label="global (union test)")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy")
    ax.set_xticks(rounds)
    ax.set_title(f"{result.name}: accuracy per round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(result: SimulationResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_accuracy(result, out_dir / "accuracy.png")
    cfg = result.config
    orgs = list(result.orgs)
    lines = [
        f"# {result.name}",
        "",
        f"Model `{cfg['model']['base']}`, LoRA r={cfg['lora']['r']} on {', '.join(cfg['lora']['target_modules'])}; "
        f"dataset `{cfg['data']['dataset']}` partitioned by `{cfg['data']['partition']}`; "
        f"strategy `{cfg['federation']['strategy']['name']}`; {cfg['train']['local_steps']} local steps "
        f"x batch {cfg['train']['batch_size']} per round.",
        "",
        "| org | train | val | test |",
        "|---|---:|---:|---:|",
        *[f"| {org} | {n['train']} | {n['val']} | {n['test']} |" for org, n in result.orgs.items()],
        "",
        "| round | union acc | loss | " + " | ".join(orgs) + " | accepted |",
        "|---:|---:|---:|" + "---:|" * len(orgs) + "---|",
    ]
    for r in result.rounds:
        if r.accuracy is None:
            continue
        per_org = " | ".join(f"{r.per_org[o]:.3f}" for o in orgs)
        accepted = ", ".join(r.accepted) if r.round else "(initial)"
        lines.append(f"| {r.round} | {r.accuracy:.3f} | {r.loss:.3f} | {per_org} | {accepted} |")
    lines += ["", f"![accuracy per round]({plot.name})", "",
              f"Global adapters (PEFT format) per round: `{result.adapter_dir}`.", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
