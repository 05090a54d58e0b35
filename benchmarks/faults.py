"""Random fault injection (issue 17): many quick rounds of one supervised ``fedledger up``
(:class:`fedledger.launcher.Deployment`, the tiny model, two SISA shard-groups), and at
random moments a ``kill -9`` of a random service (host: dev peer + embedded EVM + bridge;
coordinator; each org node; equal weights) while a round runs. The supervisor restarts it;
the benchmark then checks that nothing was lost or recorded twice.

The rounds are driven by the benchmark: it opens one (or follows the round that is already
open, e.g. a deletion's replay round the coordinator opened itself) and, while it is not yet
final and anchored, kills a service at a moment drawn uniformly from ``[0, --window-s]``
after the round opened or after the previous injection settled. Injections are
sequential: the next is drawn only once the killed service is healthy again and the round
moved on (or ``--change-timeout-s`` passed). A kill drawn for a round that finished first
is carried to the next round; rounds go on past ``--rounds`` until ``--injections`` kills
were made (at most four times as many rounds). Halfway, Org1 files a deletion request for
samples it trained in shard-group 0; the coordinator replays by itself, and kills land in
its replay rounds too.

Per injection: the service, the round, the round's state at the kill (status, submissions,
attestations, anchor status), seconds from the kill to the service healthy again (running,
started after the kill, ``GET /health`` answers) and to the round's next state change (the
first poll at which that state tuple differs; capped, timeouts counted).

After the run (every round final and anchored, the deletion completed, waited for with a
timeout), from the ledger (``ConsortiumLedger``), the chain (``Anchored`` events), the
coordinator and its blob store:

* **records_duplicated**: per final round, submissions and attestations per org beyond
  one, model versions of one kind beyond one (per unlearning job for a deletion's interim
  and unlearned versions), versions on the ledger the coordinator never registered,
  anchor receipts beyond one, bridge outbox anchors
  covering the round beyond one;
* **records_lost**: ledger submissions whose blob is not in the coordinator's blob dir;
  submissions or attestations the coordinator accepted that are not on the ledger;
  versions the coordinator registered that are not on the ledger; final (non-replay)
  rounds without a model version or never anchored; a deletion request not completed;
* **double_anchors**: on-chain ``Anchored`` events covering a round more than once;
* **proofs_failed**: a proof package for one attestation of every round, taken right
  after the round was anchored (during the run) and verified again at the end against the
  chain, a fresh one per round at the end, and the deletion's proof bundle.

"Cut the EVM RPC" is not injected: the RPC is served inside the host process, so cutting
it alone needs a proxy in front of it; killing the host cuts it along with the dev peer.

The supervisor runs with a restart window of ``--restart-window-s`` (30 s; the default
policy's 300 s would treat this many kills as a crash loop and back off up to 30 s, which
measures the policy, not the recovery): 0.5 s before a restart, doubling per exit within
the window.

    python benchmarks/faults.py              # 2 orgs, 10 rounds, 30 injections (~5 min)
    python benchmarks/faults.py --quick      # 2 orgs, 1 round, 2 injections (about a minute)
    python benchmarks/faults.py --seed 7 --rounds 12 --injections 40
    python benchmarks/faults.py --rewrite    # plot + RESULTS.md again from the JSON
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.round_overhead import Stage
from fedledger.clients import ClientError
from fedledger.errors import FedLedgerError

NAME = "faults"
GOALS = {"records_lost": 0, "records_duplicated": 0, "double_anchors": 0, "proofs_failed": 0,
         "recovery_p99_s": 10.0}
SHARDS = 2
SETTLE_ROUNDS = 2  # rounds run after the deletion, at most, to anchor its private records
T = TypeVar("T")


class BenchmarkError(FedLedgerError, RuntimeError):
    """The run could not go on (a service the supervisor gave up on, a round that never
    finished); the message carries the services' log tails."""


def _logs(d: Any, lines: int = 20) -> str:
    return "\n".join(f"--- {name}\n{d.log_tail(name, lines)}" for name in d.services)


def wait_for(what: str, probe: Callable[[], T | None], d: Any, timeout: float,
             every: float = 0.3) -> T:
    """``probe()`` until it returns something truthy; a restarting service is waited for,
    one the supervisor gave up on ends the run."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (ClientError, httpx.HTTPError) as exc:
            last = exc
        else:
            if last:
                return last
        failed = sorted(n for n, s in d.services.items() if s.state == "failed")
        if failed:
            raise BenchmarkError(f"the supervisor gave up on {failed}\n{_logs(d)}", step=what)
        time.sleep(every)
    raise BenchmarkError(f"timed out waiting for {what}; last: {last!r}\n{_logs(d)}", step=what)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# --------------------------------------------------------------------------- the deployment

def node_config(d: Any, service: str) -> dict[str, Any]:
    return json.loads(d.services[service].config.read_text())


def consortium(d: Any) -> tuple[Any, Any]:
    """A gateway (close it) and the consortium channel's ledger, as Org1's user."""
    from fedledger.fabric.gateway import Gateway
    from fedledger.fabric.identity import load_signing_identity
    from fedledger.ledgers import ConsortiumLedger

    info = d.host_info
    org = info["orgs"]["Org1"]
    gateway = Gateway.connect(info["gateway"],
                              load_signing_identity(Path(org["user_msp"]), "Org1MSP"),
                              tls_root_cert=Path(info["tls_ca_cert"]).read_bytes(),
                              server_name=info["server_name"])
    contract = gateway.network("consortium").contract("fedledger", "consortium")
    return gateway, ConsortiumLedger(contract)


def chain_anchors(d: Any) -> list[Any]:
    """Every ``Anchored`` event of the registry on the host's chain."""
    from fedledger.evm.config import EvmConfig
    from fedledger.evm.connection import connect
    from fedledger.evm.contracts import AnchorRegistryClient

    info = d.host_info
    chain = connect(EvmConfig(backend="rpc", rpc_url=info["rpc_url"], chain_id=info["chain_id"]))
    return AnchorRegistryClient(chain, info["registry"]).anchors()


def round_state(d: Any, round_id: int) -> tuple[str, int, int, str | None]:
    """(status, submissions, attestations, anchor status) of a round; raises while the
    coordinator or the host is restarting."""
    with d.coordinator_client(timeout=3) as client:
        r = client.get_round(round_id)
    with d.host_client(timeout=3) as host:
        anchor = host.anchor_for(round_id)
    return r.status, len(r.submissions), len(r.attestations), anchor.status if anchor else None


def complete(state: tuple[str, int, int, str | None]) -> bool:
    return state[0] == "final" and state[3] == "recorded"


def deletion_body(d: Any, org: str, shard: int, count: int) -> Any:
    """A deletion of ``count`` samples ``org`` trains in shard-group ``shard``."""
    from fedledger.orgnode.datasets import dataset_path, read_samples, select_training
    from fedledger.protocol.orgnode_api import DeletionCreate

    config = node_config(d, org.lower())
    with d.org_client(org) as client:
        listed = client.datasets()
    datasets = [(ds.dataset_id, read_samples(dataset_path(Path(config["data_dir"]),
                                                         ds.dataset_id))) for ds in listed]
    trained = [s for _, s in select_training(datasets, d.experiment.data, shard=shard,
                                             shards=SHARDS, key=config["shard_key"])]
    if len(trained) < count:
        raise BenchmarkError(f"{org} trains {len(trained)} samples in shard {shard}",
                             step="deletion")
    return DeletionCreate(dataset_id=datasets[0][0],
                          sample_ids=sorted(s.sample_id for s in trained[:count]),
                          legal_basis="GDPR Art. 17(1)(b)", requester="faults benchmark")


def attestation_proof(d: Any, round_id: int) -> Any:
    """A proof package for the first attestation of ``round_id`` on the ledger."""
    gateway, ledger = consortium(d)
    try:
        attestation = ledger.list_attestations(round_id)[0]
    finally:
        gateway.close()
    with d.host_client(timeout=60) as host:
        return host.proof({"kind": "attestation", "round_id": round_id,
                           "record": attestation.model_dump(mode="json")})


# --------------------------------------------------------------------------- the run

class Run:
    """One deployment, its rounds and its injections."""

    def __init__(self, d: Any, args: argparse.Namespace, console: Any, progress: Any,
                 stage: Stage) -> None:
        self.d, self.args, self.console, self.stage = d, args, console, stage
        self.rng = random.Random(args.seed)
        self.targets = ["host", "coordinator", *(o.key for o in d.orgs)]
        self.injections: list[dict[str, Any]] = []
        self.rounds: list[dict[str, Any]] = []  # followed rounds, in order
        self.packages: dict[int, Any] = {}      # round -> proof package taken when anchored
        self.proof_errors: list[str] = []
        self.deletion: dict[str, Any] | None = None
        self.aborted: str | None = None  # why the rounds stopped before the plan
        self.progress = progress
        self.inj_task = progress.add_task("injections", total=args.injections)
        self.round_task = progress.add_task("rounds", total=args.rounds)

    # -- rounds

    def active_round(self, after: int) -> int | None:
        with self.d.coordinator_client(timeout=5) as client:
            active = [r.round_id for r in client.rounds()
                      if r.round_id > after and r.status in ("opening", "open", "closed",
                                                             "aggregated")]
        return min(active) if active else None

    def next_round(self, last: int) -> tuple[int, bool]:
        """The round to follow: the coordinator's own (a replay), else a new one. Opening
        is retried while the coordinator answers 5xx (its ledger was just restarted) or
        409 (it opened a replay round meanwhile), as an operator would."""

        def found_or_opened() -> tuple[int, bool] | None:
            found = self.active_round(last)
            if found is not None:
                return found, False
            with self.d.coordinator_client(timeout=60) as client:
                return client.open_round(deadline_s=900, quorum=len(self.d.orgs)).round_id, True

        return wait_for("a round to follow", found_or_opened, self.d, 120)

    def follow(self, round_id: int, opened_by_us: bool, quota: int) -> int:
        """Follow ``round_id`` to final and anchored, injecting up to ``quota`` kills;
        returns the kills made."""
        started = time.monotonic()
        made = 0
        next_kill = started + self.rng.uniform(0, self.args.window_s)
        deadline = started + self.args.round_timeout_s
        state = None
        while True:
            try:
                state = round_state(self.d, round_id)
            except ClientError:
                state = None
            if state is not None and state[0] == "failed":
                # a finding, not the end of the run: the audit lists failed rounds
                self.console.print(f"  [red]round {round_id} failed[/red]")
                self.rounds.append({"round_id": round_id, "failed": True,
                                    "opened_by": "benchmark" if opened_by_us else "coordinator",
                                    "seconds": time.monotonic() - started, "injections": made})
                return made
            if state is not None and complete(state):
                break
            if state is not None and made < quota and time.monotonic() >= next_kill:
                self.inject(round_id, state)
                made += 1
                next_kill = time.monotonic() + self.rng.uniform(0, self.args.window_s)
                continue
            if time.monotonic() > deadline:
                raise BenchmarkError(f"round {round_id} not anchored in "
                                     f"{self.args.round_timeout_s:.0f} s (last {state})\n"
                                     f"{_logs(self.d)}", step="round")
            time.sleep(self.args.poll_s)
        self.rounds.append({"round_id": round_id, "opened_by": "benchmark" if opened_by_us
                            else "coordinator", "seconds": time.monotonic() - started,
                            "injections": made})
        # the proof handed out right after anchoring, verified again after every later kill
        try:
            self.packages[round_id] = wait_for(
                f"a proof package of round {round_id}",
                lambda: attestation_proof(self.d, round_id), self.d, 60)
        except BenchmarkError as exc:
            self.proof_errors.append(f"round {round_id} (during the run): {exc.step}")
        return made

    def inject(self, round_id: int, state: tuple[str, int, int, str | None]) -> None:
        """Kill a random service; time it healthy again and the round's next change."""
        d, args = self.d, self.args
        name = self.rng.choice(self.targets)
        healthy: dict[str, Any] = {}

        def wait() -> None:
            try:
                d.wait_healthy(name, restarted_after=killed, timeout_s=args.healthy_timeout_s)
                healthy["at"] = time.time()
            except FedLedgerError as exc:
                healthy["error"] = str(exc).splitlines()[0]

        self.stage(f"round {round_id}: kill -9 {name} ({state[0]}, {state[1]} submissions, "
                   f"{state[2]} attestations, anchor {state[3]})")
        killed = time.time()
        d.kill9(name)
        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        changed: float | None = None
        new_state = None
        while time.time() - killed < args.change_timeout_s:
            try:
                now_state = round_state(d, round_id)
            except ClientError:
                now_state = None
            if now_state is not None and now_state != state:
                changed, new_state = time.time(), now_state
                break
            time.sleep(0.1)
        waiter.join(args.healthy_timeout_s + 5)
        record = {
            "service": name, "kind": "org" if name.startswith("org") else name,
            "round_id": round_id, "at_kill": {"status": state[0], "submissions": state[1],
                                              "attestations": state[2], "anchor": state[3]},
            "healthy_s": healthy["at"] - killed if "at" in healthy else None,
            "healthy_error": healthy.get("error"),
            "state_change_s": changed - killed if changed is not None else None,
            "state_after": list(new_state) if new_state is not None else None,
            "restarts": d.services[name].restarts,
        }
        self.injections.append(record)
        self.progress.advance(self.inj_task)
        self.console.print(
            f"  #{len(self.injections)} round {round_id}: kill -9 {name:<11} at {state[0]:<10} "
            f"-> healthy {_s(record['healthy_s'])}, next state {_s(record['state_change_s'])}"
            + (f" {tuple(new_state)}" if new_state is not None else " (timed out)"))
        if "error" in healthy:
            raise BenchmarkError(f"{name} did not recover: {healthy['error']}\n{_logs(d)}",
                                 step="recover")

    def file_deletion(self, last_round: int) -> None:
        body = deletion_body(self.d, "Org1", 0, 2)
        with self.d.org_client("Org1") as client:
            filed = client.file_deletion(body)
        self.deletion = {"request_id": filed.request_id, "after_round": last_round,
                         "filed": time.time(), "samples": body.sample_ids}
        self.console.print(f"  deletion {filed.request_id} filed by Org1 after round "
                           f"{last_round} (samples of shard-group 0)")
        wait_for("the deletion's replay round", lambda: self.active_round(last_round),
                 self.d, self.args.round_timeout_s)

    def drive(self) -> None:
        args = self.args
        last, ours = 0, 0
        with self.d.coordinator_client() as client:
            last = max((r.round_id for r in client.rounds()), default=0)
        while ours < args.rounds or (len(self.injections) < args.injections
                                     and ours < 4 * args.rounds):
            round_id, opened = self.next_round(last)
            # the kills still to make, spread over this round and the benchmark's rounds
            # after it (a kill a round did not take, because it finished first, is owed
            # to the next ones)
            left = args.injections - len(self.injections)
            rounds_left = max(1, args.rounds - ours - opened + 1)
            due = min(left, math.ceil(left / rounds_left))
            ours += opened
            self.stage(f"round {round_id} ({'ours' if opened else 'the coordinator’s'}), "
                       f"{due} kill(s) due")
            self.follow(round_id, opened, due)
            self.progress.update(self.round_task, completed=ours)
            if not self.rounds[-1].get("failed"):
                self.console.print(f"round {round_id} final and anchored "
                                   f"({self.rounds[-1]['seconds']:.1f} s, "
                                   f"{self.rounds[-1]['injections']} kill(s))")
            last = round_id
            if self.deletion is None and not args.no_deletion and ours >= max(1, args.rounds // 2):
                self.file_deletion(last)


def _s(value: float | None) -> str:
    return "   -   " if value is None else f"{value:6.2f}s"


# --------------------------------------------------------------------------- the audit

def settle_bundle(run: Run, request_id: str, last: int) -> Any:
    """The deletion's proof bundle, as its org's admin would get it: its private records
    are anchored with the next round's anchor, so while the bundle is not anchored yet,
    run a round (no kills) and ask again; None after ``SETTLE_ROUNDS`` rounds."""
    d = run.d

    def bundle() -> Any:
        with d.org_client("Org1", timeout=120) as client:
            return client.anchored_proof(request_id)

    for _ in range(SETTLE_ROUNDS):
        got = bundle()
        if got is not None:
            return got
        round_id, opened = run.next_round(last)
        run.stage(f"round {round_id}: anchors the deletion's private records (no kills)")
        run.follow(round_id, opened, 0)
        last = round_id
    return bundle()


def audit(run: Run) -> dict[str, Any]:
    """Lost and duplicated records, double anchors and failed proofs (see module docs)."""
    from fedledger.audit.bundle import verify_bundle_with_rpc
    from fedledger.audit.verify import verify_with_rpc

    d, args = run.d, run.args
    detail: dict[str, list[str]] = {"lost": [], "duplicated": [], "double_anchors": [],
                                    "proofs_failed": list(run.proof_errors)}
    bundle: Any = None
    # the deletion completes (its replay rounds are among the rounds followed or later)
    if run.deletion is not None:
        request_id = run.deletion["request_id"]

        def deletion_done() -> bool:
            with d.org_client("Org1", timeout=10) as client:
                status = client.deletion(request_id).status
            if status == "failed":
                raise BenchmarkError(f"deletion {request_id} failed", step="deletion")
            return status == "completed"

        last = max(r["round_id"] for r in run.rounds)
        deadline = time.monotonic() + args.round_timeout_s * 3
        while time.monotonic() < deadline:
            try:
                if deletion_done():
                    break
            except ClientError:
                pass
            except BenchmarkError:
                break
            follow = run.active_round(last)
            if follow is not None:  # a replay round still to come: let it finish
                run.follow(follow, False, 0)
                last = follow
            time.sleep(0.5)
        try:
            done = deletion_done()
        except (ClientError, BenchmarkError):
            done = False
        run.deletion["completed"] = done
        if not done:
            detail["lost"].append(f"deletion {request_id} not completed")
        else:
            bundle = settle_bundle(run, request_id, last)
            if bundle is None:
                detail["proofs_failed"].append(f"deletion {request_id}: no bundle")
    with d.coordinator_client() as client:
        rounds = {r.round_id: r for r in client.rounds()}
        served = client.models()
    with d.host_client() as host:
        outbox = host.anchors()
    on_chain = chain_anchors(d)
    blob_dir = Path(node_config(d, "coordinator")["blob_dir"])
    blobs = {p.name for p in blob_dir.iterdir()} if blob_dir.exists() else set()
    final = sorted(r for r, x in rounds.items() if x.status == "final")
    failed_rounds = sorted(r for r, x in rounds.items() if x.status == "failed")
    unfinished = sorted(r for r, x in rounds.items() if x.status not in ("final", "failed"))
    gateway, ledger = consortium(d)
    try:
        receipts = ledger.list_anchor_receipts()
        for r in final:
            subs = ledger.list_submissions(r)
            atts = ledger.list_attestations(r)
            versions = ledger.list_model_versions(r)
            for what, counts in (("submission", Counter(s.org for s in subs)),
                                 ("attestation", Counter(a.org for a in atts))):
                detail["duplicated"] += [f"round {r}: {n - 1} extra {what}(s) of {org}"
                                         for org, n in counts.items() if n > 1]
            # a round registers one version of kind "round"; a deletion filed after it
            # registers its interim (and, replayed, its unlearned) version under the round
            # that was served, so those count once per unlearning job
            kinds = Counter((v.kind, v.unlearning_id) for v in served if v.round_id == r)
            detail["duplicated"] += [f"round {r}: {n - 1} extra {kind} model version(s)"
                                     + (f" of unlearning job {job}" if job is not None else "")
                                     for (kind, job), n in kinds.items() if n > 1]
            ledger_ids = {v.version_id for v in versions}
            mine = {v.version_id for v in served if v.round_id == r}
            detail["lost"] += [f"round {r}: model version {v} not on the ledger"
                               for v in sorted(mine - ledger_ids)]
            detail["duplicated"] += [f"round {r}: model version {v} on the ledger only"
                                     for v in sorted(ledger_ids - mine)]
            covering = {
                "anchor receipt": sum(x.first_round <= r <= x.last_round for x in receipts),
                "outbox anchor": sum(x.first_round <= r <= x.last_round for x in outbox),
            }
            detail["duplicated"] += [f"round {r}: {n - 1} extra {what}(s)"
                                     for what, n in covering.items() if n > 1]
            if rounds[r].replay_of is None and not any(
                    v.kind == "round" for v in served if v.round_id == r):
                detail["lost"].append(f"round {r}: final without a model version on the ledger")
            if not covering["anchor receipt"] or not any(
                    x.first_round <= r <= x.last_round and x.status == "recorded" for x in outbox):
                detail["lost"].append(f"round {r}: final, never anchored")
            chain_n = sum(x.first_round <= r <= x.last_round for x in on_chain)
            if chain_n > 1:
                detail["double_anchors"].append(f"round {r}: {chain_n} Anchored events")
            elif chain_n == 0:
                detail["lost"].append(f"round {r}: no Anchored event on the chain")
            ledger_hashes = {s.update_hash for s in subs}
            detail["lost"] += [f"round {r}: blob {h[:12]} of a ledger submission missing"
                               for h in sorted(ledger_hashes - blobs)]
            accepted = rounds[r]
            detail["lost"] += [f"round {r}: {s.org}'s accepted upload {s.update_hash[:12]} "
                               f"not on the ledger"
                               for s in accepted.submissions if s.update_hash not in ledger_hashes]
            on_ledger_orgs = {a.org for a in atts}
            detail["lost"] += [f"round {r}: {org}'s attestation not on the ledger"
                               for org in accepted.attestations if org not in on_ledger_orgs]
    finally:
        gateway.close()
    # proofs: the ones taken during the run, again; a fresh one per round; the bundle
    info = d.host_info
    checked = 0
    for r in final:
        fresh: Any = None
        try:
            fresh = wait_for(f"a fresh proof of round {r}",
                             lambda r=r: attestation_proof(d, r), d, 60)  # type: ignore[misc]
        except BenchmarkError as exc:
            detail["proofs_failed"].append(f"round {r} (fresh): {exc.step}")
        for when, package in (("during the run", run.packages.get(r)), ("fresh", fresh)):
            if package is None:
                if when == "during the run":
                    detail["proofs_failed"].append(f"round {r}: no package taken when anchored")
                continue
            checked += 1
            if not verify_with_rpc(package, info["rpc_url"], info["registry"]).ok:
                detail["proofs_failed"].append(f"round {r} ({when}): does not verify")
    if bundle is not None:
        checked += 1
        if not verify_bundle_with_rpc(bundle, info["rpc_url"], info["registry"]).ok:
            detail["proofs_failed"].append(f"deletion {request_id}: bundle does not verify")
    return {"final_rounds": final, "failed_rounds": failed_rounds,
            "unfinished_rounds": unfinished, "proofs_checked": checked, "detail": detail,
            "records_lost": len(detail["lost"]),
            "records_duplicated": len(detail["duplicated"]),
            "double_anchors": len(detail["double_anchors"]),
            "proofs_failed": len(detail["proofs_failed"])}


# --------------------------------------------------------------------------- results

def summarise(run: Run, checks: dict[str, Any], args: argparse.Namespace,
              machine: dict[str, Any], startup_s: float, elapsed: float,
              command: str) -> dict[str, Any]:
    inj = run.injections
    healthy = [i["healthy_s"] for i in inj if i["healthy_s"] is not None]
    change = [i["state_change_s"] for i in inj if i["state_change_s"] is not None]
    per_service: dict[str, Any] = {}
    for kind in sorted({i["kind"] for i in inj}):
        mine = [i for i in inj if i["kind"] == kind]
        h = [i["healthy_s"] for i in mine if i["healthy_s"] is not None]
        c = [i["state_change_s"] for i in mine if i["state_change_s"] is not None]
        per_service[kind] = {"injections": len(mine),
                             "recovery_p50_s": percentile(h, 50), "recovery_p99_s": percentile(h, 99),
                             "state_change_p50_s": percentile(c, 50),
                             "state_change_p99_s": percentile(c, 99),
                             "state_change_timeouts": len(mine) - len(c)}
    results = {
        "injections": len(inj),
        "rounds_completed": len(checks["final_rounds"]),
        "records_lost": checks["records_lost"],
        "records_duplicated": checks["records_duplicated"],
        "double_anchors": checks["double_anchors"],
        "proofs_failed": checks["proofs_failed"],
        "proofs_checked": checks["proofs_checked"],
        "recovery_p50_s": percentile(healthy, 50),
        "recovery_p99_s": percentile(healthy, 99),
        "recovery_max_s": max(healthy) if healthy else None,
        "state_change_p50_s": percentile(change, 50),
        "state_change_p99_s": percentile(change, 99),
        "state_change_timeouts": len(inj) - len(change),
        "per_service": per_service,
        "failed_rounds": checks["failed_rounds"], "unfinished_rounds": checks["unfinished_rounds"],
        "detail": checks["detail"],
        "deletion": run.deletion, "aborted": run.aborted,
        "rounds": run.rounds,
        "injection_log": inj,
        "goals": GOALS,
        "settings": {"orgs": args.orgs, "rounds": args.rounds, "target_injections": args.injections,
                     "seed": args.seed, "window_s": args.window_s, "shards": SHARDS,
                     "local_steps": args.local_steps, "services_poll_s": args.services_poll_s,
                     "confirmations": 1, "restart_window_s": args.restart_window_s,
                     "change_timeout_s": args.change_timeout_s, "deletion": not args.no_deletion,
                     "targets": run.targets},
        "startup_s": startup_s, "wall_s": elapsed, "quick": args.quick,
        "machine": machine, "command": command,
        "measured_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    results["goals_met"] = met(results)
    return results


def met(results: dict[str, Any]) -> dict[str, bool]:
    out = {k: results[k] == 0 for k in ("records_lost", "records_duplicated", "double_anchors",
                                         "proofs_failed")}
    p99 = results["recovery_p99_s"]
    out["recovery_p99_s"] = p99 is not None and p99 < GOALS["recovery_p99_s"]
    return out


def plot_results(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inj = results["injection_log"]
    kinds = sorted({i["kind"] for i in inj}) or ["(none)"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    rng = random.Random(0)
    for ax, key, title in ((axes[0], "healthy_s", "kill -9 -> service healthy again"),
                           (axes[1], "state_change_s", "kill -9 -> round's next state change")):
        for x, kind in enumerate(kinds):
            ys = [i[key] for i in inj if i["kind"] == kind and i[key] is not None]
            if ys:
                ax.boxplot([ys], positions=[x], widths=0.5, showfliers=False)
                ax.scatter([x + rng.uniform(-0.15, 0.15) for _ in ys], ys, s=14, alpha=0.7)
        ax.set_xticks(range(len(kinds)), kinds)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("seconds")
        ax.grid(axis="y", alpha=0.3)
    axes[0].axhline(GOALS["recovery_p99_s"], color="red", ls="--", lw=1, label="goal: p99 < 10 s")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"faults: {results['injections']} kills over {results['rounds_completed']} "
                 f"rounds ({results['settings']['orgs']} orgs)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_markdown(results: dict[str, Any], plot: Path, name: str) -> None:
    from benchmarks._results import update_results_md

    s, m, g = results["settings"], results["machine"], results["goals_met"]
    ok = {True: "met", False: "**not met**"}
    md = [f"## Fault injection ({'quick' if results['quick'] else 'full'}; `benchmarks/faults.py`)",
          "",
          f"Measured {results['measured_utc']} on {m['platform']}, {m['cpu_count']} CPUs, "
          f"Python {m['python']}, torch {m['torch']}. One supervised `fedledger up` with "
          f"{s['orgs']} orgs, {s['shards']} SISA shard-groups, the tiny model, "
          f"{s['local_steps']} local steps, services polling every {s['services_poll_s']} s, "
          f"{s['confirmations']} confirmation; a `kill -9` of a random one of "
          f"{', '.join(s['targets'])} at a moment uniform in [0, {s['window_s']} s] after the "
          f"round opened or the previous kill settled (seed {s['seed']}); restart window "
          f"{s['restart_window_s']} s. "
          + ("Org1 filed a deletion request (shard-group 0) halfway." if s["deletion"] else ""),
          "",
          "| figure | value | goal |", "|---|---:|---|",
          f"| injections | {results['injections']} | ≥ {s['target_injections']} |",
          f"| rounds completed (final and anchored) | {results['rounds_completed']} | ≥ {s['rounds']} |",
          f"| records lost | {results['records_lost']} | 0: {ok[g['records_lost']]} |",
          f"| records duplicated | {results['records_duplicated']} | 0: {ok[g['records_duplicated']]} |",
          f"| anchors made twice | {results['double_anchors']} | 0: {ok[g['double_anchors']]} |",
          f"| proofs failing after the run (of {results['proofs_checked']}) | "
          f"{results['proofs_failed']} | 0: {ok[g['proofs_failed']]} |",
          f"| kill → healthy p50 / p99 (max) | {_f(results['recovery_p50_s'])} / "
          f"{_f(results['recovery_p99_s'])} ({_f(results['recovery_max_s'])}) s | p99 < 10 s: "
          f"{ok[g['recovery_p99_s']]} |",
          f"| kill → round's next state change p50 / p99 | {_f(results['state_change_p50_s'])} / "
          f"{_f(results['state_change_p99_s'])} s ({results['state_change_timeouts']} timed out "
          f"after {s['change_timeout_s']:g} s) | |",
          "", "Per service kind:", "",
          "| service | kills | kill → healthy p50 / p99 (s) | kill → next state p50 / p99 (s) | "
          "no change within the cap |", "|---|---:|---:|---:|---:|"]
    for kind, v in results["per_service"].items():
        md.append(f"| {kind} | {v['injections']} | {_f(v['recovery_p50_s'])} / "
                  f"{_f(v['recovery_p99_s'])} | {_f(v['state_change_p50_s'])} / "
                  f"{_f(v['state_change_p99_s'])} | {v['state_change_timeouts']} |")
    at_kill = Counter(i["at_kill"]["status"] for i in results["injection_log"])
    md += ["", "Round state at the kills: " + ", ".join(f"{k} {n}" for k, n in sorted(at_kill.items()))
           + f". Wall time {results['wall_s'] / 60:.1f} min (start-up {results['startup_s']:.0f} s).",
           ""]
    problems = [f"- {kind}: {line}" for kind, lines in results["detail"].items() for line in lines]
    if problems:
        md += ["Findings:", "", *problems[:20], ""]
    if results.get("aborted"):
        md += [f"The run stopped early: `{results['aborted'].splitlines()[0]}`.", ""]
    if results["failed_rounds"] or results["unfinished_rounds"]:
        md += [f"Rounds failed: {results['failed_rounds']}; not final at the end: "
               f"{results['unfinished_rounds']}.", ""]
    md += [f"Command: `{results['command']}`", "", f"![faults](results/{plot.name})"]
    update_results_md(name, "\n".join(md))


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round, 2 injections")
    parser.add_argument("--orgs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="rounds the benchmark opens "
                        "(10; quick 1); replay rounds come on top")
    parser.add_argument("--injections", type=int, default=None, help="kills (30; quick 2)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--window-s", type=float, default=2.5,
                        help="a kill comes uniformly within this many seconds of the round's "
                             "start or the previous kill settling")
    parser.add_argument("--local-steps", type=int, default=2)
    parser.add_argument("--services-poll-s", type=float, default=0.3)
    parser.add_argument("--poll-s", type=float, default=0.2, help="the benchmark's own poll")
    parser.add_argument("--restart-window-s", type=float, default=30.0,
                        help="the supervisor's crash-loop window (the default policy: 300)")
    parser.add_argument("--change-timeout-s", type=float, default=60.0)
    parser.add_argument("--healthy-timeout-s", type=float, default=180.0)
    parser.add_argument("--round-timeout-s", type=float, default=300.0)
    parser.add_argument("--no-deletion", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the deployment's folder")
    parser.add_argument("--rewrite", action="store_true",
                        help="run nothing: plot + RESULTS.md again from the results JSON")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 10)
    args.injections = args.injections if args.injections is not None else (2 if args.quick else 30)
    command = "python benchmarks/faults.py" + "".join(f" {a}" for a in sys.argv[1:])

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from benchmarks._results import RESULTS_DIR, machine_description, write_json

    console = Console()
    name = NAME + ("_quick" if args.quick else "")
    if args.rewrite:
        results = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        write_markdown(results, plot_results(results, RESULTS_DIR / f"{name}.png"), name)
        console.print(f"rewrote benchmarks/results/{name}.png and its RESULTS.md section")
        return

    import shutil

    from fedledger.launcher import Deployment, experiment_config
    from fedledger.supervisor import RestartPolicy

    # ~40 s start-up, ~10 s a round, ~6 s per kill (the host's restart replays its journal)
    estimate = 40 + 10 * (args.rounds + 2) + 6 * args.injections
    console.rule(f"{NAME}: {args.orgs} orgs, {args.rounds} rounds, {args.injections} kills, "
                 f"seed {args.seed} (roughly {estimate / 60:.0f} min)")
    root = Path(tempfile.mkdtemp(prefix="fedledger-faults-")) / "up"
    d = Deployment(root, args.orgs, quick=True, poll_s=args.services_poll_s, confirmations=1,
                   experiment=experiment_config(quick=True, local_steps=args.local_steps,
                                                shards=SHARDS),
                   restart_policy=RestartPolicy(window_s=args.restart_window_s))
    started = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as progress:
        stage = Stage(progress)
        try:
            with stage("starting host, coordinator and org nodes"):
                d.start()
                d.supervise()
                d.register_demo_datasets(max_samples=40)
            startup_s = time.perf_counter() - started
            run = Run(d, args, console, progress, stage)
            try:
                run.drive()
            except BenchmarkError as exc:
                # a round that never finished or a service that never came back: the
                # audit below still counts what was lost by then
                run.aborted = str(exc)
                console.print(f"[red]run stopped early[/red]: {exc}")
            with stage("checking ledger, chain, blobs and proofs"):
                checks = audit(run)
        finally:
            with stage("stopping the deployment"):
                d.stop()
    elapsed = time.perf_counter() - started
    results = summarise(run, checks, args, machine_description(), startup_s, elapsed, command)
    results["root"] = str(root)
    write_json(name, results)
    write_markdown(results, plot_results(results, RESULTS_DIR / f"{name}.png"), name)
    if not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)
    console.print(
        f"{results['injections']} kills, {results['rounds_completed']} rounds: lost "
        f"{results['records_lost']}, duplicated {results['records_duplicated']}, double anchors "
        f"{results['double_anchors']}, proofs failed {results['proofs_failed']}/"
        f"{results['proofs_checked']}; kill -> healthy p50 {_f(results['recovery_p50_s'])} s, "
        f"p99 {_f(results['recovery_p99_s'])} s; kill -> next state p50 "
        f"{_f(results['state_change_p50_s'])} s, p99 {_f(results['state_change_p99_s'])} s "
        f"({elapsed / 60:.1f} min); wrote benchmarks/results/{name}.json, {name}.png, RESULTS.md")
    for kind, lines in results["detail"].items():
        for line in lines:
            console.print(f"  [red]{kind}[/red]: {line}")


if __name__ == "__main__":
    main()
