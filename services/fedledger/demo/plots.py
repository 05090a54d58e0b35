"""``accuracy.png``: the demo's accuracy per round, drawn from the report's data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def plot_accuracy(data: dict[str, Any], path: Path) -> Path:
    """Accuracy per round on each org's own test split: one line per org + the mean.
    Round 0 is the starting point (the base model before any training)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orgs = data["orgs"]
    xs = [0] + [r["round_id"] for r in data["rounds"]]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    means = [data["base"]["mean"]] + [r["mean_accuracy"] for r in data["rounds"]]
    for org in orgs:
        m = org["msp_id"]
        ys = [data["base"]["accuracy"].get(m)] + [r["per_org"][m]["global_accuracy"]
                                                    for r in data["rounds"]]
        ax.plot(xs, [math.nan if y is None else y for y in ys], marker=".", alpha=0.7,
                label=f"{org['org']} ({org['domain']})")
    ax.plot(xs, [math.nan if y is None else y for y in means], marker="o", color="black",
            linewidth=2.5, label="mean")
    ax.set_xlabel("round (0 = base model)")
    ax.set_ylabel("accuracy on the org's test split")
    ax.set_xticks(xs)
    ax.set_title(f"{data['name']}: global model accuracy per round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
