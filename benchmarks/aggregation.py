"""Aggregation speed and memory: every fedledger strategy next to Flower's FedAvg.

Ten client updates of two realistic LoRA sizes, float32, seeded:

* ``2.4M``: SmolLM2-135M (30 layers, hidden 576, 3 KV heads of 64, MLP 1536), r = 8
  on all seven linear modules per layer;
* ``40M``: a Llama-2-7B shape (32 layers, hidden 4096, MLP 11008), r = 16 on all
  seven linear modules per layer.

Updates are ``reference + noise`` (the reference is the global adapter the round started
from, passed to the strategies that use one). Flower's
``flwr.server.strategy.aggregate.aggregate`` runs on zero-copy numpy views of the same
tensors in the same process. Per strategy: min and median wall time over the repeats
(after one untimed warm-up), and the peak resident memory of one run above what was
resident before it (Linux VmHWM, reset through /proc/self/clear_refs), reported in bytes,
beyond the output, and as a multiple of one update's size.

    python benchmarks/aggregation.py            # full run (a few minutes)
    python benchmarks/aggregation.py --quick    # < 1 min: 2.4M and 10M, 3 repeats

Run it on an otherwise idle machine: with another process busy on a 2-core box, torch's
OpenMP threads spin-wait for each other at every op and timings inflate 2-100x
(``OMP_WAIT_POLICY=PASSIVE`` softens that). The 1-minute load average before and after
is recorded with the results.

Writes ``benchmarks/results/aggregation.json``, ``benchmarks/results/aggregation.png`` and
the ``aggregation`` section of ``benchmarks/RESULTS.md``. Needs Flower:
``pip install 'fedledger[bench]'``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make ``benchmarks._results`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from benchmarks._results import RESULTS_DIR, machine_description, update_results_md, write_json
from fedledger.learning.aggregation import (
    AggregationStrategy,
    ClientUpdate,
    CoordinateMedian,
    ExactLoRA,
    FedAvg,
    Flame,
    MultiKrum,
    NormClipping,
    TrimmedMean,
)

NAME = "aggregation"
N_CLIENTS = 10
KRUM_F = 2

# Goals set in the design brief, checked and reported.
GOAL_FEDAVG_RATIO = 2.5
GOAL_KRUM_40M_S = 0.5
GOAL_MEM_MULTIPLE = 1.0

# (layers, [(in, out) per adapted linear module], rank)
_SMOLLM2 = (
    30,
    [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)],
    8,
)
_LLAMA7B = [(4096, 4096)] * 4 + [(4096, 11008)] * 2 + [(11008, 4096)]
SIZES_FULL = {"2.4M": _SMOLLM2, "40M": (32, _LLAMA7B, 16)}
SIZES_QUICK = {"2.4M": _SMOLLM2, "10M": (8, _LLAMA7B, 16)}
SHAPES_FULL = "2.4M = SmolLM2-135M, r=8; 40M = Llama-2-7B, r=16; all 7 linear modules per layer"
SHAPES_QUICK = "2.4M = SmolLM2-135M, r=8; 10M = 8 layers of Llama-2-7B, r=16; all 7 linear modules"
_MODULE_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Case:
    label: str
    rank: int
    reference: dict[str, torch.Tensor]
    updates: list[ClientUpdate]

    @property
    def numel(self) -> int:
        return sum(t.numel() for t in self.reference.values())

    @property
    def update_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.reference.values())


def make_case(label: str, spec: tuple[int, list[tuple[int, int]], int], seed: int = 0) -> Case:
    layers, modules, r = spec
    gen = torch.Generator().manual_seed(seed)
    reference: dict[str, torch.Tensor] = {}
    for layer in range(layers):
        for name, (fan_in, fan_out) in zip(_MODULE_NAMES, modules, strict=True):
            group = (
                "self_attn" if name.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            )
            prefix = f"base_model.model.model.layers.{layer}.{group}.{name}"
            reference[f"{prefix}.lora_A.weight"] = (
                torch.randn(r, fan_in, generator=gen) / fan_in**0.5
            )
            reference[f"{prefix}.lora_B.weight"] = torch.randn(fan_out, r, generator=gen) * 1e-3
    updates = []
    for i in range(N_CLIENTS):
        tensors = {k: v + 1e-2 * torch.randn(v.shape, generator=gen) for k, v in reference.items()}
        updates.append(ClientUpdate(f"org{i}", tensors, num_samples=100 + 37 * i))
    return Case(label, r, reference, updates)


def strategies(rank: int) -> dict[str, tuple[AggregationStrategy, bool]]:
    """name -> (strategy, pass the reference?)."""
    return {
        "fedavg": (FedAvg(), False),
        "exact_lora": (ExactLoRA(rank=None), False),
        "exact_lora_rank_r": (ExactLoRA(rank=rank), False),
        "norm_clipping": (NormClipping(), True),
        "median": (CoordinateMedian(), False),
        "trimmed_mean": (TrimmedMean(beta=0.1), False),
        "multi_krum": (MultiKrum(f=KRUM_F), True),
        "flame": (Flame(), True),
    }


# --- memory ---------------------------------------------------------------------------

_LIBC = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_bytes(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Peak RSS during ``fn()`` minus RSS before it (freed heap handed back first)."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    return (peak - before) * 1024, result


def output_bytes(result: Any) -> int:
    tensors = result.tensors.values() if hasattr(result, "tensors") else result
    return int(
        sum(
            np.asarray(t).nbytes
            if not isinstance(t, torch.Tensor)
            else t.numel() * t.element_size()
            for t in tensors
        )
    )


# --- timing ---------------------------------------------------------------------------


def time_runs(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()  # warm-up: first-touch page faults, lazy kernel set-up
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(
    case: Case, repeats: int, flwr_aggregate: Callable[..., Any]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    runs: dict[str, Callable[[], Any]] = {}
    for name, (strategy, with_ref) in strategies(case.rank).items():
        ref = case.reference if with_ref else None
        runs[name] = lambda s=strategy, r=ref: s.aggregate(case.updates, reference=r)
    flwr_input = [([t.numpy() for t in u.tensors.values()], u.num_samples) for u in case.updates]
    runs["flwr_fedavg"] = lambda: flwr_aggregate(flwr_input)

    for name, fn in runs.items():
        extra, result = peak_extra_bytes(fn)
        produced = output_bytes(result)
        del result
        times = time_runs(fn, repeats)
        beyond = max(0, extra - produced)
        out[name] = {
            "min_s": min(times),
            "median_s": statistics.median(times),
            "times_s": times,
            "peak_extra_bytes": extra,
            "output_bytes": produced,
            "beyond_output_bytes": beyond,
            "beyond_output_updates": beyond / case.update_bytes,
        }
        med = statistics.median(times)
        print(
            f"  {case.label:>5} {name:<18} min {min(times):7.3f} s  median {med:7.3f} s  "
            f"beyond output {beyond / 2**20:8.1f} MiB ({beyond / case.update_bytes:.2f} updates)",
            flush=True,
        )
    return out


def check_agreement(case: Case, flwr_aggregate: Callable[..., Any]) -> float:
    """Max |fedledger FedAvg - Flower FedAvg|: the comparison is only fair if they agree."""
    ours = FedAvg().aggregate(case.updates).tensors
    theirs = flwr_aggregate(
        [([t.numpy() for t in u.tensors.values()], u.num_samples) for u in case.updates]
    )
    keys = list(case.updates[0].tensors)
    return max(float(np.max(np.abs(ours[k].numpy() - theirs[i]))) for i, k in enumerate(keys))


# --- report ---------------------------------------------------------------------------


def plot(results: dict[str, dict[str, dict[str, Any]]], sizes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    x = np.arange(len(names))
    width = 0.8 / len(sizes)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for j, size in enumerate(sizes):
        vals = [results[n][size]["median_s"] for n in names]
        bars = ax.bar(
            x + (j - (len(sizes) - 1) / 2) * width, vals, width, label=f"10 x {size} params"
        )
        for b, v in zip(bars, vals, strict=True):
            ax.annotate(
                f"{v:.2g}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7
            )
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("median wall time per aggregation (s, log)")
    ax.set_title("fedledger aggregation strategies vs Flower FedAvg (float32, CPU)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(data: dict[str, Any]) -> str:
    m, s, g = data["machine"], data["settings"], data["goals"]
    sizes = s["sizes"]
    large = sizes[-1]
    per_strategy = data["strategies"]
    quick = " — QUICK run (smaller sizes, fewer repeats)" if data["quick"] else ""
    load = data["load_average_1m"]
    lines = [
        "## Aggregation strategies (`benchmarks/aggregation.py`)",
        "",
        (
            f"Measured {data['measured_at']}{quick} on {m['platform']}: "
            f"{m['cpu_count']} CPU cores, {m.get('mem_total_gib', '?')} GiB RAM, "
            f"torch {m['torch']} ({m['torch_threads']} intra-op threads), "
            f"Flower {s['flwr_version']}. "
            f"1-minute load average before / after: {load['before']:.2f} / {load['after']:.2f}."
        ),
        "",
        (
            f"Settings: {s['clients']} client updates of float32 LoRA adapters "
            f"({s['shapes']}); {s['repeats']} timed repeats after one warm-up. "
            f"Multi-Krum f={s['krum_f']}, m=n-f, centred on the reference; trimmed mean beta=0.1; "
            "norm clipping adaptive (median norm); FLAME adaptive threshold, no noise; exact LoRA "
            "lossless (rank n·r) and truncated to the clients' rank r. Flower: "
            "`flwr.server.strategy.aggregate.aggregate` on zero-copy numpy views of the same "
            "tensors. Memory: peak RSS (VmHWM) of one run above the RSS before it, minus the "
            "output, in units of one update."
        ),
        "",
        "| strategy | "
        + " | ".join(f"{z} min (s) | {z} median (s)" for z in sizes)
        + f" | {large}: extra memory beyond output (updates) |",
        "|---|" + "---:|" * (2 * len(sizes) + 1),
    ]
    for name, per in per_strategy.items():
        cells = " | ".join(f"{per[z]['min_s']:.3f} | {per[z]['median_s']:.3f}" for z in sizes)
        lines.append(f"| {name} | {cells} | {per[large]['beyond_output_updates']:.2f} |")

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    ratio, ratio_min = data["fedavg_vs_flwr_ratio"], data["fedavg_vs_flwr_ratio_min"]
    lines += [
        "",
        (
            f"- FedAvg vs Flower on 10×{large}: Flower / fedledger = **{ratio:.2f}×** on medians "
            f"({ratio_min:.2f}× on minima). Goal ≥ {GOAL_FEDAVG_RATIO}×: "
            f"**{verdict(g['fedavg_ratio'])}**. Outputs agree to "
            f"{data['fedavg_flwr_max_abs_diff']:.1e} (max abs difference)."
        ),
    ]
    krum = data["multikrum_40m_s"]
    if krum is not None:
        lines.append(
            f"- Multi-Krum on 10×40M: **{krum:.3f} s** median. Goal < {GOAL_KRUM_40M_S} s: "
            f"**{verdict(g['multikrum_40m'])}**."
        )
    else:
        krum_large = per_strategy["multi_krum"][large]["median_s"]
        lines.append(
            f"- Multi-Krum on 10×40M: not measured in a quick run ({large}: {krum_large:.3f} s)."
        )
    worst = max(
        (per[large]["beyond_output_updates"], n)
        for n, per in per_strategy.items()
        if n != "flwr_fedavg"
    )
    flwr_mem = per_strategy["flwr_fedavg"][large]["beyond_output_updates"]
    lines.append(
        f"- Peak extra memory beyond the output ≤ {GOAL_MEM_MULTIPLE:g} update: "
        f"**{verdict(g['memory'])}** (worst fedledger strategy: {worst[1]}, {worst[0]:.2f}; "
        f"Flower's FedAvg: {flwr_mem:.2f})."
    )
    if max(load["before"], load["after"] - s["torch_threads_used"]) > 1.0:
        lines.append(
            "- Other processes were using the CPU during this run: torch's OpenMP threads wait "
            "for each other at every op, so on 2 cores the timings above are inflated, "
            "sometimes many times over."
        )
    lines += [f"- {note}" for note in data.get("notes", [])]
    lines += ["", "![aggregation timings](results/aggregation.png)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="2.4M and 10M only, 3 repeats (< 1 min)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (default 5, quick 3)"
    )
    parser.add_argument("--note", action="append", default=[], help="free-text note for RESULTS.md")
    args = parser.parse_args(argv)
    try:
        import flwr
        from flwr.server.strategy.aggregate import aggregate as flwr_aggregate
    except ImportError:
        print(
            "benchmarks/aggregation.py needs Flower to compare against: "
            "pip install 'fedledger[bench]'  (flwr==1.41.0)",
            file=sys.stderr,
        )
        return 2

    sizes = SIZES_QUICK if args.quick else SIZES_FULL
    repeats = args.repeats or (3 if args.quick else 5)
    # Other work on a 2-core machine distorts timings badly (torch's OpenMP threads wait
    # for each other at every op), so the load is recorded next to the numbers.
    load_before = os.getloadavg()[0]
    per_size: dict[str, dict[str, dict[str, Any]]] = {}
    agreement = 0.0
    case_info = {}
    for label, spec in sizes.items():
        print(f"generating 10 x {label} ...", flush=True)
        case = make_case(label, spec)
        case_info[label] = {
            "params_per_update": case.numel,
            "update_bytes": case.update_bytes,
            "keys": len(case.reference),
            "rank": case.rank,
        }
        agreement = max(agreement, check_agreement(case, flwr_aggregate))
        per_size[label] = measure(case, repeats, flwr_aggregate)
        del case
        gc.collect()

    load_after = os.getloadavg()[0]
    labels = list(sizes)
    large = labels[-1]
    strategies_out = {name: {z: per_size[z][name] for z in labels} for name in per_size[labels[0]]}
    flwr_t, ours_t = strategies_out["flwr_fedavg"][large], strategies_out["fedavg"][large]
    ratio = flwr_t["median_s"] / ours_t["median_s"]
    ratio_min = flwr_t["min_s"] / ours_t["min_s"]
    krum_40m = strategies_out["multi_krum"]["40M"]["median_s"] if "40M" in labels else None
    mem_ok = all(
        per[large]["beyond_output_updates"] <= GOAL_MEM_MULTIPLE
        for n, per in strategies_out.items()
        if n != "flwr_fedavg"
    )
    data: dict[str, Any] = {
        "quick": args.quick,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_description(),
        "load_average_1m": {"before": load_before, "after": load_after},
        "settings": {
            "clients": N_CLIENTS,
            "dtype": "float32",
            "sizes": labels,
            "cases": case_info,
            "shapes": SHAPES_QUICK if args.quick else SHAPES_FULL,
            "repeats": repeats,
            "warmup": 1,
            "krum_f": KRUM_F,
            "torch_threads_used": torch.get_num_threads(),
            "flwr_version": flwr.__version__ if hasattr(flwr, "__version__") else "unknown",
        },
        "strategies": strategies_out,
        "fedavg_vs_flwr_ratio": ratio,
        "fedavg_vs_flwr_ratio_min": ratio_min,
        "fedavg_vs_flwr_size": large,
        "fedavg_flwr_max_abs_diff": agreement,
        "multikrum_40m_s": krum_40m,
        "goals": {
            "fedavg_ratio": ratio >= GOAL_FEDAVG_RATIO,
            "multikrum_40m": None if krum_40m is None else krum_40m < GOAL_KRUM_40M_S,
            "memory": mem_ok,
        },
        "notes": args.note,
    }
    path = write_json(NAME, data)
    plot(strategies_out, labels, RESULTS_DIR / f"{NAME}.png")
    update_results_md(NAME, markdown(data))
    print(f"wrote {path}, {RESULTS_DIR / f'{NAME}.png'} and the '{NAME}' section of RESULTS.md")
    print(f"FedAvg vs Flower ({large}): {ratio:.2f}x (medians), {ratio_min:.2f}x (minima)")
    if krum_40m is not None:
        print(f"multi-Krum 10x40M: {krum_40m:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
