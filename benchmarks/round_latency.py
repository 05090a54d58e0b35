"""Round latency of the protocol itself: how long the ledger steps of a federated round take
when training is negligible (the tiny random Llama, a few local steps), on the dev peer
cutting blocks with the deployment's settings (``deploy/fabric/configtx.yaml``:
BatchTimeout 250 ms, MaxMessageCount 100, PreferredMaxBytes 512 KB), for 3 and 8 orgs.

Each org count runs a whole ``fedledger up`` (:class:`fedledger.launcher.Deployment`: host
with dev peer, chaincode, embedded EVM and bridge; coordinator; one org node per org),
plain FedAvg rounds with every org in the quorum and no validator committee, one anchor
per round. Per round:

* **last submission -> final**: from the latest ``SubmitUpdate`` of the round (its
  proposal's timestamp on the ledger: when the last org submitted) to the coordinator's
  ``round N final`` log line (the majority's attestations and ``FinalizeRound`` committed,
  the model version registered);
* **POST /rounds -> final**: from just before the benchmark's ``POST /rounds``;
* **final -> anchored**: until the host's ``/anchors`` shows the round ``recorded``;
* **MVCC conflicts**: committed transactions of the run (consortium and private channels)
  whose validation code is ``MVCC_READ_CONFLICT`` or ``PHANTOM_READ_CONFLICT``, read after
  the deployment stopped from a copy of the host's dev-peer ledgers;
* **retries**: the org nodes' ``retrying in`` and the coordinator's ``will retry`` log
  lines (a ledger call that failed and is tried again), plus the bridge's ``will be
  retried`` lines that name a conflict;
* the training time (the slowest org's ``train_local``), so that "``POST /rounds`` to
  anchored <= 3 s plus training time" can be judged, and where the time goes between
  (marks from the ledger's proposal timestamps, the coordinator's log and the org nodes'
  jobs).

The block timeout in force is read back from each channel's config block (block 0) and
checked by a lone transaction's commit latency; when the host's settings have a field for
the dev peer's orderer, the deployment's values are passed there explicitly.

    python benchmarks/round_latency.py              # 3 and 8 orgs, 4 rounds each
    python benchmarks/round_latency.py --quick      # 3 orgs, 2 rounds, fewer waits (~45 s)
    python benchmarks/round_latency.py --orgs 3 --rounds 2
    python benchmarks/round_latency.py --rewrite    # plot + RESULTS.md again from the JSON
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._deployment import (
    CONFIGTX,
    bridge_log_marks,
    code_default_orderer,
    deployment_orderer,
    org_log_marks,
    pass_deployment_orderer,
    probe_commit_latency,
    read_ledgers,
    retry_lines,
)
from benchmarks.round_overhead import Stage, _f, coordinator_events, wait_quiet
from fedledger.clients import ClientError, CoordinatorClient, HostClient, OrgNodeClient

NAME = "round_latency"
GOALS = {"submit_to_final_s": 2.0, "post_to_anchored_minus_training_s": 3.0, "mvcc_retries": 0}
CONSORTIUM = "consortium"
#: the ledger writes that follow one another from the last submission to final
SUBMIT_TO_FINAL_WRITES = ("SubmitUpdate", "CloseRound", "AttestAggregate", "FinalizeRound",
                          "RegisterModelVersion")
#: ... and from POST /rounds to anchored
#: (RecordParticipationDecision commits while the org trains: off the path.)
POST_TO_ANCHORED_WRITES = ("OpenRound", *SUBMIT_TO_FINAL_WRITES, "RecordAnchorReceipt")


class BenchmarkError(RuntimeError):
    """A round did not complete as the benchmark needs (message has the services' logs)."""


def _epoch(text: str) -> float:
    """An API timestamp (ISO 8601; naive ones are UTC, as the services store them)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _logs(deployment, lines: int = 15) -> str:
    return "\n".join(f"--- {name}\n{deployment.log_tail(name, lines)}" for name in deployment.services)


# --------------------------------------------------------------------------- one deployment

def run_org_count(orgs: int, args, experiment, console, progress, stage) -> dict[str, Any]:
    """Start ``fedledger up`` with ``orgs`` orgs, run the rounds, stop, read the ledgers."""
    from fedledger.launcher import Deployment

    root = Path(tempfile.mkdtemp(prefix=f"fedledger-latency-{orgs}-")) / "up"
    deployment = Deployment(root, orgs, quick=True, experiment=experiment, poll_s=args.poll_s)
    out: dict[str, Any] = {"orgs": orgs, "root": str(root), "rounds": []}
    started = time.perf_counter()
    with stage(f"{orgs} orgs: preparing the deployment"):
        deployment.prepare()
        out["orderer_passed_as"] = pass_deployment_orderer(deployment)
    try:
        t = time.perf_counter()
        with stage(f"{orgs} orgs: starting host, coordinator and {orgs} org nodes"):
            deployment.start()
        out["startup_s"] = time.perf_counter() - t
        with stage(f"{orgs} orgs: registering the demo datasets"):
            deployment.register_demo_datasets()
        out["quiet_wait_s"] = wait_quiet(stage, f"{orgs} orgs, after start-up",
                                         timeout=args.quiet_timeout_s)
        with stage(f"{orgs} orgs: timing lone transactions (block timeout check)"):
            out["probe_commit_s"] = probe_commit_latency(deployment, args.probes)
        task = progress.add_task(f"{orgs} orgs", total=args.rounds)
        with ExitStack() as clients:
            coordinator = clients.enter_context(deployment.coordinator_client(timeout=60))
            host = clients.enter_context(deployment.host_client(timeout=60))
            nodes = {o.msp_id: clients.enter_context(deployment.org_client(o.name, timeout=60))
                     for o in deployment.orgs}
            for _ in range(args.rounds):
                with stage(f"{orgs} orgs: round {len(out['rounds']) + 1}/{args.rounds}"):
                    r = one_round(deployment, coordinator, host, nodes, orgs, args)
                out["rounds"].append(r)
                progress.advance(task)
                console.print(f"  {orgs} orgs, round {r['round_id']}: final "
                              f"{r['final_observed'] - r['post']:.2f} s, anchored "
                              f"{r['anchored'] - r['post']:.2f} s after POST /rounds")
            out["jobs"] = {msp: [j.model_dump(mode="json") for j in node.jobs()]
                           for msp, node in nodes.items()}
    finally:
        with stage(f"{orgs} orgs: stopping the deployment"):
            deployment.stop()
    with stage(f"{orgs} orgs: reading the dev peer's ledgers and the services' logs"):
        out["coordinator_log"] = coordinator_events(deployment.services["coordinator"].log)
        out["ledgers"] = read_ledgers(root / "fabric")
        out["retries"] = retry_lines(deployment.log_dir)
        out["bridge_log"] = bridge_log_marks(deployment.services["host"].log)
        out["org_log"] = org_log_marks(deployment.log_dir,
                                       {o.key: o.msp_id for o in deployment.orgs})
    out["wall_s"] = time.perf_counter() - started
    return out


def one_round(deployment, coordinator: CoordinatorClient, host: HostClient,
              nodes: dict[str, OrgNodeClient], orgs: int, args) -> dict[str, Any]:
    """Open a round, follow it to final, to anchored and to every org's attestation."""
    post = time.time()
    try:
        round_id = coordinator.open_round(deadline_s=3600, quorum=orgs).round_id
    except ClientError as exc:
        raise BenchmarkError(f"POST /rounds: {exc}\n{_logs(deployment)}") from None
    seen = {"post_returned": time.time()}
    deadline = time.monotonic() + args.round_timeout_s

    def check_deadline(what: str) -> None:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"round {round_id}: {what} after {args.round_timeout_s:.0f} s\n"
                                 f"{_logs(deployment, 30)}")

    while True:
        round_ = coordinator.get_round(round_id)
        status = round_.status
        seen.setdefault(status, time.time())
        if status == "failed":
            raise BenchmarkError(f"round {round_id} failed: {round_.model_dump_json()}\n"
                                 f"{_logs(deployment, 30)}")
        if status == "final":
            break
        check_deadline("not final")
        time.sleep(args.status_poll_s)
    final_observed = seen["final"]
    anchored: float | None = None
    on_chain: float | None = None  # the root confirmed on the EVM chain (before the receipt)
    jobs_done: dict[str, str] = {}
    next_jobs = 0.0
    while anchored is None or len(jobs_done) < orgs:
        if anchored is None:
            for anchor in host.anchors():
                if not anchor.first_round <= round_id <= anchor.last_round:
                    continue
                if on_chain is None and anchor.status in ("confirmed", "recorded"):
                    on_chain = time.time()
                if anchor.status == "recorded":
                    anchored = time.time()
        if len(jobs_done) < orgs and time.monotonic() >= next_jobs:
            next_jobs = time.monotonic() + args.job_poll_s
            for msp, node in nodes.items():
                if msp in jobs_done:
                    continue
                job = node.job_of_round(round_id)
                if job is not None and job.status in ("attested", "failed", "skipped"):
                    jobs_done[msp] = job.status
        check_deadline("not anchored, or not every org attested,")
        time.sleep(args.status_poll_s)
    done = time.time()
    time.sleep(args.gap_s)  # the org nodes' and bridge's last steps stay out of the next round
    return {"round_id": round_id, "post": post, "status_seen": seen,
            "final_observed": final_observed, "anchored": anchored, "on_chain": on_chain,
            "all_orgs_done": done,
            "window_end": time.time(), "job_outcomes": jobs_done}


# --------------------------------------------------------------------------- analysis

def orderer_in_force(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The block settings the dev peer cut by: its channels' config blocks (one set for
    every channel and run, else an error), or the dev network's code default."""
    configs = {(r["orgs"], ch): cfg for r in runs for ch, cfg in r["ledgers"].orderer.items()}
    recorded = {tuple(sorted((k, v) for k, v in cfg.items())) for cfg in configs.values() if cfg}
    probes = [p for r in runs for p in r["probe_commit_s"]]
    info: dict[str, Any] = {
        "configtx": deployment_orderer(),
        "configtx_file": str(CONFIGTX.relative_to(CONFIGTX.parents[2])),
        # the HostSettings field the benchmark set ("None": the host has no such knob)
        "passed_to_host_as": sorted({str(r["orderer_passed_as"]) for r in runs}),
        "probe_commit_s": [round(p, 4) for p in probes],
    }
    if len(recorded) > 1:
        raise BenchmarkError(f"the channels' config blocks disagree: {configs}")
    if recorded and all(configs.values()):
        info["in_force"] = dict(next(iter(recorded)))
        info["source"] = "the channels' config blocks (block 0 of every channel ledger)"
    else:
        default = code_default_orderer()
        if default is None:
            raise BenchmarkError("no config block and no DevNetwork default: cannot tell the "
                                 "batch timeout in force")
        info["source"] = default.pop("source")
        info["in_force"] = default
    timeout = info["in_force"]["batch_timeout_s"]
    info["matches_configtx"] = all(info["in_force"].get(k) == info["configtx"][k]
                                   for k in ("batch_timeout_s", "max_message_count",
                                             "preferred_max_bytes"))
    # A lone transaction waits the whole timeout before its block is cut.
    info["probe_consistent"] = bool(probes) and min(probes) >= 0.9 * timeout
    return info


def round_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per round of ``run``: the figures, the marks (epoch s, shown relative to
    ``POST /rounds``), the phases between them, conflicts and retries in its window."""
    orgs = run["orgs"]
    txs = run["ledgers"].transactions
    events = run["coordinator_log"]
    jobs = {msp: {j["round_id"]: j for j in js} for msp, js in run["jobs"].items()}
    rows = []
    for r in run["rounds"]:
        rid, w0, w1 = r["round_id"], r["post"], r["window_end"]
        ev = events.get(rid, {})
        mine = [t for t in txs if rid in t.rounds()]
        in_window = [t for t in txs if w0 <= t.timestamp <= w1]

        def ts(function: str, *, channel: str = CONSORTIUM, pool: list = mine) -> list[float]:
            return sorted(t.timestamp for t in pool
                          if t.function == function and t.valid and t.channel == channel)

        submissions, attestations = ts("SubmitUpdate"), ts("AttestAggregate")
        majority = orgs // 2 + 1
        finalize, receipts = ts("FinalizeRound"), ts("RecordAnchorReceipt")
        round_jobs = {msp: j[rid] for msp, j in jobs.items() if rid in j}
        org_log = run["org_log"].get(rid, {})
        decided = org_log.get("decided", {})
        # the job's creation: the node's "queued" log line, else the job's created time
        queued = {msp: org_log.get("queued", {}).get(msp, _epoch(j["created"]))
                  for msp, j in round_jobs.items()}
        train = {msp: (j.get("metrics") or {}).get("seconds") for msp, j in round_jobs.items()}
        own_submission = {t.creator: t.timestamp for t in mine if t.function == "SubmitUpdate"
                          and t.valid and t.channel == CONSORTIUM}
        org_stage = {msp: round(own_submission[msp] - queued[msp], 4)
                     for msp in queued if msp in own_submission}
        final = ev.get("final", r["final_observed"])
        last_sub = submissions[-1] if submissions else None
        marks = {
            "opened": ev.get("opened"),
            "all_orgs_saw_it": max(decided.values()) if decided else None,
            "all_orgs_queued": max(queued.values()) if queued else None,
            "last_submission": last_sub, "closed": ev.get("closed"),
            "aggregated": ev.get("aggregated"),
            "majority_attestation": attestations[majority - 1] if len(attestations) >= majority else None,
            "last_attestation": attestations[-1] if attestations else None,
            "finalize_round": finalize[0] if finalize else None, "final": final,
            "final_observed": r["final_observed"],
            "anchor_receipt": receipts[0] if receipts else None, "anchored": r["anchored"],
            **run["bridge_log"].get(rid, {}),  # anchor_built, anchor_signed
        }
        rel = {k: (None if v is None else round(v - w0, 4)) for k, v in marks.items()}
        marks["post"] = w0

        def seg(a: str, b: str, marks: dict[str, float | None] = marks) -> float | None:
            x, y = marks.get(a), marks.get(b)
            return None if x is None or y is None else round(y - x, 4)

        segments = {
            "post -> round open (OpenRound)": seg("post", "opened"),
            "open -> every org saw it (org nodes' poll)": seg("opened", "all_orgs_saw_it"),
            "RecordParticipationDecision -> every job queued": seg("all_orgs_saw_it",
                                                                   "all_orgs_queued"),
            "org stage: -> last SubmitUpdate (train, eval, upload)": seg("all_orgs_queued",
                                                                        "last_submission"),
            "SubmitUpdate commit + CloseRound -> closed": seg("last_submission", "closed"),
            "aggregate": seg("closed", "aggregated"),
            "orgs fetch + recompute -> majority AttestAggregate": seg("aggregated", "majority_attestation"),
            "attestation commit -> FinalizeRound": seg("majority_attestation", "finalize_round"),
            "FinalizeRound + RegisterModelVersion commits -> final": seg("finalize_round", "final"),
            "bridge: event, batch, signatures, EVM -> RecordAnchorReceipt": seg("final", "anchor_receipt"),
            "receipt commit -> /anchors recorded": seg("anchor_receipt", "anchored"),
        }
        bridge = {name: seg(a, b) for name, (a, b) in BRIDGE_DETAIL.items()}
        conflicts = [t for t in {id(t): t for t in mine + in_window}.values() if t.conflict]
        retries = [x for x in run["retries"] if w0 <= x.time <= w1]
        counted = [x for x in retries if x.kind != "bridge" or x.names_conflict]
        consortium_blocks = Counter(t.block for t in mine if t.channel == CONSORTIUM)
        per_block = Counter((t.function, t.block) for t in mine if t.channel == CONSORTIUM)
        training = max((v for v in train.values() if v is not None), default=None)
        post_to_anchored = r["anchored"] - w0
        post_to_on_chain = r["on_chain"] - w0
        rows.append({
            "orgs": orgs, "round_id": rid,
            "submit_to_final_s": None if last_sub is None else round(final - last_sub, 4),
            "post_to_final_s": round(final - w0, 4),
            "final_to_anchored_s": round(r["anchored"] - final, 4),
            "post_to_anchored_s": round(post_to_anchored, 4),
            "training_s": training,
            "post_to_anchored_minus_training_s": (None if training is None
                                                  else round(post_to_anchored - training, 4)),
            "final_to_on_chain_s": round(r["on_chain"] - final, 4),
            "post_to_on_chain_minus_training_s": (None if training is None
                                                  else round(post_to_on_chain - training, 4)),
            "train_local_s": train,
            "org_stage_s": org_stage,
            "slowest_org_stage_s": max(org_stage.values(), default=None),
            "post_to_anchored_minus_org_stage_s": (
                None if not org_stage else round(post_to_anchored - max(org_stage.values()), 4)),
            "mvcc_conflicts": len(conflicts),
            "mvcc_retries": len(counted),
            "conflicts": [{"channel": t.channel, "function": t.function, "code": t.code,
                           "block": t.block, "creator": t.creator,
                           "s_after_post": round(t.timestamp - w0, 4),
                           "before_final": t.timestamp < final,
                           "after_in_block": valid_before_in_block(txs, t)} for t in conflicts],
            "retries": [{"service": x.service, "kind": x.kind, "s_after_post": round(x.time - w0, 3),
                         "text": x.text, "names_conflict": x.names_conflict} for x in retries],
            "marks_s_after_post": rel, "segments_s": segments, "bridge_segments_s": bridge,
            "ledger": {
                "submissions": len(submissions), "attestations": len(attestations),
                "consortium_blocks": len(consortium_blocks),
                "max_round_txs_in_one_block": max(consortium_blocks.values(), default=0),
                "max_in_one_block": {f: max((n for (g, _b), n in per_block.items() if g == f), default=0)
                                     for f in ("SubmitUpdate", "AttestAggregate")},
                "functions": dict(Counter(t.function for t in mine)),
            },
            "job_outcomes": r["job_outcomes"],
            "status_seen_s_after_post": {k: round(v - w0, 4) for k, v in r["status_seen"].items()},
        })
    return rows


def valid_before_in_block(txs: list, tx) -> list[str]:
    """The functions of the valid transactions ahead of ``tx`` in its block: the writes
    that made its reads stale."""
    return [t.function for t in txs
            if t.channel == tx.channel and t.block == tx.block and t.index < tx.index and t.valid]


def add_conflict_context(results: dict[str, Any]) -> bool:
    """Fill ``after_in_block`` of conflicts recorded without it, from the run's ledgers
    when its deployment folder is still there. Returns whether anything changed."""
    changed = False
    for key, details in results["details"].items():
        todo = [c for r in results["rounds"] if str(r["orgs"]) == key for c in r["conflicts"]
                if "after_in_block" not in c]
        root = Path(details["deployment_root"]) / "fabric"
        if not todo or not root.exists():
            continue
        txs = read_ledgers(root).transactions
        for c in todo:
            tx = next(t for t in txs if t.channel == c["channel"] and t.block == c["block"]
                      and t.function == c["function"] and t.code == c["code"]
                      and t.creator == c["creator"])
            c["after_in_block"] = valid_before_in_block(txs, tx)
            changed = True
    return changed


def outside_rounds(run: dict[str, Any]) -> dict[str, Any]:
    """Conflicts and retries of the run that fall in no round (start-up, registration)."""
    windows = [(r["post"], r["window_end"]) for r in run["rounds"]]
    ids = {r["round_id"] for r in run["rounds"]}

    def inside(t: float) -> bool:
        return any(a <= t <= b for a, b in windows)

    conflicts = [t for t in run["ledgers"].transactions
                 if t.conflict and not inside(t.timestamp) and not (set(t.rounds()) & ids)]
    retries = [x for x in run["retries"] if not inside(x.time)]
    return {"mvcc_conflicts": len(conflicts),
            "conflicts_by_function": dict(Counter(f"{t.channel}/{t.function}/{t.code}"
                                                  for t in conflicts)),
            "retries": len(retries), "retries_by_service": dict(Counter(x.service for x in retries)),
            "retry_examples": [x.text for x in retries[:5]]}


def summarise(args, experiment, runs: list[dict[str, Any]], machine: dict[str, Any],
              elapsed: float, command: str) -> dict[str, Any]:
    import json

    orderer = orderer_in_force(runs)
    rows = [row for run in runs for row in round_rows(run)]
    figures, details, conflicts = {}, {}, {}
    for run in runs:
        key = str(run["orgs"])
        mine = [r for r in rows if r["orgs"] == run["orgs"]]

        def m(name: str, rs: list = mine) -> float | None:
            v = _mean([r[name] for r in rs])
            return None if v is None else round(v, 4)

        figures[key] = {"submit_to_final_s": m("submit_to_final_s"),
                        "post_to_final_s": m("post_to_final_s"),
                        "final_to_anchored_s": m("final_to_anchored_s"),
                        "mvcc_retries": m("mvcc_retries")}
        seg_names = list(mine[0]["segments_s"]) if mine else []
        details[key] = {
            "rounds": len(mine), "post_to_anchored_s": m("post_to_anchored_s"),
            "training_s": m("training_s"),
            "post_to_anchored_minus_training_s": m("post_to_anchored_minus_training_s"),
            "final_to_on_chain_s": m("final_to_on_chain_s"),
            "post_to_on_chain_minus_training_s": m("post_to_on_chain_minus_training_s"),
            "slowest_org_stage_s": m("slowest_org_stage_s"),
            "post_to_anchored_minus_org_stage_s": m("post_to_anchored_minus_org_stage_s"),
            "worst": {k: max((r[k] for r in mine if r[k] is not None), default=None)
                      for k in ("submit_to_final_s", "post_to_final_s", "final_to_anchored_s",
                                "post_to_anchored_minus_training_s",
                                "post_to_on_chain_minus_training_s", "mvcc_retries",
                                "mvcc_conflicts")},
            "segments_mean_s": {s: _mean([r["segments_s"][s] for r in mine]) for s in seg_names},
            "bridge_segments_mean_s": {s: _mean([r["bridge_segments_s"][s] for r in mine])
                                       for s in BRIDGE_DETAIL},
            "startup_s": round(run["startup_s"], 1), "wall_s": round(run["wall_s"], 1),
            "quiet_wait_s": round(run["quiet_wait_s"], 1), "deployment_root": run["root"],
            "ledger_read_with": run["ledgers"].read_with,
            "transactions": len(run["ledgers"].transactions),
            "outside_rounds": outside_rounds(run),
        }
        conflicts[key] = {"per_round_mean": m("mvcc_conflicts"),
                          "in_rounds": sum(r["mvcc_conflicts"] for r in mine),
                          "outside_rounds": details[key]["outside_rounds"]["mvcc_conflicts"],
                          "by_function": dict(Counter(f"{c['channel']}/{c['function']}/{c['code']}"
                                                      for r in mine for c in r["conflicts"]))}
    goals = {}
    for key in figures:
        mine = [r for r in rows if str(r["orgs"]) == key]
        d = details[key]
        goals[key] = {
            "no_mvcc_retries_or_conflicts": all(r["mvcc_retries"] == 0 and r["mvcc_conflicts"] == 0
                                                for r in mine),
            "submit_to_final_le_2s": (figures[key]["submit_to_final_s"] or 1e9)
            <= GOALS["submit_to_final_s"],
            "submit_to_final_le_2s_every_round": all((r["submit_to_final_s"] or 1e9)
                                                     <= GOALS["submit_to_final_s"] for r in mine),
            "post_to_anchored_le_3s_plus_training": (d["post_to_anchored_minus_training_s"] or 1e9)
            <= GOALS["post_to_anchored_minus_training_s"],
            "post_to_anchored_le_3s_plus_training_every_round": all(
                (r["post_to_anchored_minus_training_s"] or 1e9)
                <= GOALS["post_to_anchored_minus_training_s"] for r in mine),
            # anchored = the root confirmed on the public chain, before the bridge's receipt
            # on the consortium channel (what an auditor's proof checks against)
            "post_to_on_chain_le_3s_plus_training": (d["post_to_on_chain_minus_training_s"]
                                                     or 1e9)
            <= GOALS["post_to_anchored_minus_training_s"],
            # the lenient reading: the org nodes' whole local stage counted as training
            "post_to_anchored_le_3s_plus_org_stage": (d["post_to_anchored_minus_org_stage_s"]
                                                      or 1e9)
            <= GOALS["post_to_anchored_minus_training_s"],
        }
    cfg = json.loads(experiment.model_dump_json())
    return {
        "orgs": figures,
        "batch_timeout_ms": round(orderer["in_force"]["batch_timeout_s"] * 1000, 3),
        "orderer": orderer,
        "mvcc_conflicts": conflicts,
        "rounds": rows,
        "details": details,
        "goals": {"targets": GOALS, **goals},
        "quick": args.quick,
        "machine": machine,
        "settings": {
            "model": cfg["model"]["base"], "org_counts": args.orgs, "rounds": args.rounds,
            "local_steps": cfg["train"]["local_steps"], "batch_size": cfg["train"]["batch_size"],
            "max_text_tokens": cfg["train"]["max_text_tokens"],
            "max_train_per_org": cfg["data"]["max_train_per_org"],
            "strategy": cfg["federation"]["strategy"], "validator_committee": None,
            "quorum": "every org", "anchoring_batch_rounds": 1,
            "services_poll_s": args.poll_s, "benchmark_status_poll_s": args.status_poll_s,
            "benchmark_job_poll_s": args.job_poll_s, "gap_between_rounds_s": args.gap_s,
        },
        "command": command,
        "measured_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_seconds": round(elapsed, 1),
    }


# --------------------------------------------------------------------------- output

#: the bridge phase (final -> RecordAnchorReceipt) split by the bridge's log lines
BRIDGE_DETAIL = {
    "final -> anchor built (AggregateFinal event, bridge poll)": ("final", "anchor_built"),
    "built -> signed (every org's node asked at once)": ("anchor_built", "anchor_signed"),
    "signed -> RecordAnchorReceipt (EVM transaction, confirmation)": ("anchor_signed",
                                                                      "anchor_receipt"),
}

SHORT = {
    "post -> round open (OpenRound)": "open",
    "open -> every org saw it (org nodes' poll)": "orgs see the round",
    "RecordParticipationDecision -> every job queued": "participation decision tx",
    "org stage: -> last SubmitUpdate (train, eval, upload)": "org stage (train...)",
    "SubmitUpdate commit + CloseRound -> closed": "submit commit + close",
    "aggregate": "aggregate",
    "orgs fetch + recompute -> majority AttestAggregate": "recompute + attest",
    "attestation commit -> FinalizeRound": "attest commit",
    "FinalizeRound + RegisterModelVersion commits -> final": "finalize + version",
    "bridge: event, batch, signatures, EVM -> RecordAnchorReceipt": "bridge to receipt",
    "receipt commit -> /anchors recorded": "receipt commit",
}


def plot_results(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["orgs"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [("submit_to_final_s", "last submission → final"), ("post_to_final_s", "POST → final"),
             ("final_to_anchored_s", "final → anchored")]
    w = 0.2
    for i, (k, label) in enumerate(names):
        left.bar([x + (i - 1.5) * w for x in range(len(keys))],
                 [results["orgs"][o][k] or 0 for o in keys], w, label=label)
    left.bar([x + 1.5 * w for x in range(len(keys))],
             [results["details"][o]["post_to_anchored_minus_training_s"] or 0 for o in keys], w,
             label="POST → anchored − training")
    left.axhline(GOALS["submit_to_final_s"], color="grey", ls="--", lw=1)
    left.axhline(GOALS["post_to_anchored_minus_training_s"], color="grey", ls=":", lw=1)
    left.text(-0.45, GOALS["submit_to_final_s"], "goal: submission → final 2 s", fontsize=7,
              va="bottom")
    left.text(-0.45, GOALS["post_to_anchored_minus_training_s"], "goal: POST → anchored 3 s + "
              "training", fontsize=7, va="bottom")
    tallest = max([v or 0 for o in keys for v in (*results["orgs"][o].values(),
                   results["details"][o]["post_to_anchored_minus_training_s"])] + [3.0])
    left.set_ylim(0, tallest * 1.45)  # room for the legend
    left.set_xticks(range(len(keys)), [f"{o} orgs" for o in keys])
    left.set_ylabel("s (mean over rounds)")
    left.set_title("round latency")
    left.legend(fontsize=7, loc="upper right")
    segs = list(SHORT)
    colors = plt.get_cmap("tab20").colors
    bottom = [0.0] * len(keys)
    for i, s in enumerate(segs):
        vals = [results["details"][o]["segments_mean_s"].get(s) or 0.0 for o in keys]
        right.bar(range(len(keys)), vals, 0.5, bottom=bottom, label=SHORT[s],
                  color=colors[i % len(colors)])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    right.set_xticks(range(len(keys)), [f"{o} orgs" for o in keys])
    right.set_ylabel("s from POST /rounds (mean over rounds)")
    right.set_title("where the time goes, POST → anchored")
    right.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(f"Protocol round latency ({results['settings']['model']}, dev peer, "
                 f"BatchTimeout {results['batch_timeout_ms']:g} ms, "
                 f"{results['machine']['cpu_count']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _met(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def write_markdown(results: dict[str, Any], plot: Path, name: str) -> None:
    from benchmarks._results import update_results_md

    s, m, o = results["settings"], results["machine"], results["orderer"]
    keys = list(results["orgs"])
    inf = o["in_force"]
    walls = "; ".join(f"{k} orgs: {results['details'][k]['wall_s'] / 60:.1f} min, of it "
                      f"{results['details'][k]['startup_s']:.0f} s start-up" for k in keys)
    md = [
        (f"## Round latency of the protocol{' (quick)' if results['quick'] else ''} "
         "(`benchmarks/round_latency.py`)"),
        "",
        (f"Measured {results['measured_utc']} on {m['platform']}, "
        f"{m['cpu_count']} CPUs, {m.get('mem_total_gib', '?')} GiB RAM, torch {m['torch']}, "
        f"GPU: {m['cuda'] or 'none'}. Whole run {results['wall_seconds'] / 60:.1f} min "
        f"({walls}; start-up is in no round)."),
        "",
        (f"Settings: `fedledger up` as separate processes (host: dev peer + chaincode, embedded "
        f"EVM, bridge; coordinator; one org node per org), `{s['model']}`, "
        f"{s['local_steps']} local steps, batch {s['batch_size']}, {s['max_train_per_org']} "
        f"train samples max per org, FedAvg, quorum = every org, no validator committee, one "
        f"anchor per round, {s['rounds']} rounds per org count, services' poll interval "
        f"{s['services_poll_s']} s (`fedledger up`'s), benchmark status poll "
        f"{s['benchmark_status_poll_s']} s. **Dev peer block cutting in force**: BatchTimeout "
        f"**{results['batch_timeout_ms']:g} ms**, MaxMessageCount {inf.get('max_message_count')}, "
        f"PreferredMaxBytes {inf.get('preferred_max_bytes')} (from {o['source']}; "
        f"{'the same as' if o['matches_configtx'] else 'NOT the same as'} "
        f"`{o['configtx_file']}`: {o['configtx']['batch_timeout_s'] * 1000:g} ms / "
        f"{o['configtx']['max_message_count']} / {o['configtx']['preferred_max_bytes']}; passed "
        f"to the host as: {', '.join(o['passed_to_host_as'])}). A lone transaction committed in "
        f"{', '.join(f'{p * 1000:.0f}' for p in o['probe_commit_s'])} ms "
        f"({'consistent with' if o['probe_consistent'] else 'FASTER than'} that timeout)."),
        "",
        ("| orgs | rounds | last submission → final (s) | POST → final (s) | final → anchored (s) | "
        "POST → anchored (s) | training (slowest org's `train_local`, s) | POST → anchored − "
        "training (s) | slowest org stage, job → `SubmitUpdate` (s) | POST → anchored − org "
        "stage (s) | MVCC conflicts / round | retries / round |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in keys:
        f, d, c = results["orgs"][k], results["details"][k], results["mvcc_conflicts"][k]
        md.append(f"| {k} | {d['rounds']} | {_f(f['submit_to_final_s'])} | "
                  f"{_f(f['post_to_final_s'])} | {_f(f['final_to_anchored_s'])} | "
                  f"{_f(d['post_to_anchored_s'])} | {_f(d['training_s'])} | "
                  f"{_f(d['post_to_anchored_minus_training_s'])} | "
                  f"{_f(d['slowest_org_stage_s'])} | {_f(d['post_to_anchored_minus_org_stage_s'])} | "
                  f"{_f(c['per_round_mean'])} | "
                  f"{_f(f['mvcc_retries'])} |")
    md += ["", "Goals (issue 15), per org count (mean over rounds; worst round in brackets):", "",
           "| goal | " + " | ".join(f"{k} orgs" for k in keys) + " |",
           "|---|" + "---|" * len(keys)]
    g = results["goals"]
    md.append("| 0 MVCC retries (and conflicts) in a normal round | " + " | ".join(
        f"{_met(g[k]['no_mvcc_retries_or_conflicts'])} "
        f"({results['details'][k]['worst']['mvcc_retries']:.0f} retries, "
        f"{results['details'][k]['worst']['mvcc_conflicts']:.0f} conflicts)" for k in keys) + " |")
    md.append("| last submission → final ≤ 2 s | " + " | ".join(
        f"{_met(g[k]['submit_to_final_le_2s'])} {_f(results['orgs'][k]['submit_to_final_s'])} s "
        f"({_f(results['details'][k]['worst']['submit_to_final_s'])})" for k in keys) + " |")
    md.append("| `POST /rounds` → anchored ≤ 3 s + training | " + " | ".join(
        f"{_met(g[k]['post_to_anchored_le_3s_plus_training'])} "
        f"{_f(results['details'][k]['post_to_anchored_minus_training_s'])} s + training "
        f"({_f(results['details'][k]['worst']['post_to_anchored_minus_training_s'])})"
        for k in keys) + " |")
    md.append("| the same, anchored = root confirmed on the EVM chain (before the receipt "
              "on the consortium channel) | " + " | ".join(
                  f"{'met' if g[k]['post_to_on_chain_le_3s_plus_training'] else 'not met'} "
                  f"{_f(results['details'][k]['post_to_on_chain_minus_training_s'])} s + training "
                  f"({_f(results['details'][k]['worst']['post_to_on_chain_minus_training_s'])})"
                  for k in keys) + " |")
    md.append("| the same, counting the org nodes' whole local stage (job → `SubmitUpdate`) as "
              "training | " + " | ".join(
                  f"{'met' if g[k]['post_to_anchored_le_3s_plus_org_stage'] else 'not met'} "
                  f"{_f(results['details'][k]['post_to_anchored_minus_org_stage_s'])} s + org stage"
                  for k in keys) + " |")
    md += ["", ("Where the time goes (s, mean over rounds; marks: proposal timestamps of the "
           "ledger's transactions, the coordinator's log, the org nodes' jobs, the benchmark's "
           "`/anchors` poll):"), "",
           "| phase | " + " | ".join(f"{k} orgs" for k in keys) + " |",
           "|---|" + "---:|" * len(keys)]
    for seg in SHORT:
        md.append(f"| {seg} | " + " | ".join(
            _f(results["details"][k]["segments_mean_s"].get(seg)) for k in keys) + " |")
        if seg.startswith("bridge:"):
            for part in BRIDGE_DETAIL:
                values = [results["details"][k].get("bridge_segments_mean_s", {}).get(part)
                          for k in keys]
                if any(v is not None for v in values):
                    md.append(f"| ↳ {part} | " + " | ".join(_f(v) for v in values) + " |")
    md += ["", "Per round:", "",
           ("| orgs | round | last submission → final | POST → final | final → anchored | "
            "training | slowest org stage | POST → anchored − training | conflicts | retries | "
            "SubmitUpdate / AttestAggregate most in one block |"),
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["rounds"]:
        most = r["ledger"]["max_in_one_block"]
        md.append(f"| {r['orgs']} | {r['round_id']} | {_f(r['submit_to_final_s'])} | "
                  f"{_f(r['post_to_final_s'])} | {_f(r['final_to_anchored_s'])} | "
                  f"{_f(r['training_s'])} | {_f(r['slowest_org_stage_s'])} | "
                  f"{_f(r['post_to_anchored_minus_training_s'])} | "
                  f"{r['mvcc_conflicts']} | {r['mvcc_retries']} | "
                  f"{most['SubmitUpdate']} / {most['AttestAggregate']} |")
    md += ["", *notes(results), "", f"Command: `{results['command']}`", "",
           f"![round latency](results/{plot.name})"]
    update_results_md(name, "\n".join(md))


def notes(results: dict[str, Any]) -> list[str]:
    """Plain-language reading of the numbers (filled from them)."""
    out = []
    for k in results["orgs"]:
        d = results["details"][k]
        segs = {s: v for s, v in d["segments_mean_s"].items() if v is not None}
        names = list(SHORT)
        after_submit = names[names.index("SubmitUpdate commit + CloseRound -> closed"):
                             names.index("bridge: event, batch, signatures, EVM -> "
                                         "RecordAnchorReceipt")]
        biggest = sorted(((segs.get(s, 0.0), s) for s in after_submit), reverse=True)[:2]
        outside = d["outside_rounds"]
        bridge = [d.get("bridge_segments_mean_s", {}).get(p) for p in BRIDGE_DETAIL]
        bridge_text = ("" if None in bridge else
                       f": {bridge[0]:.2f} s until the anchor batch is built, {bridge[1]:.2f} s "
                       f"collecting the orgs' signatures (every org's node asked at once; "
                       f"each recomputes the batch from its own ledger view, on CPU cores it "
                       f"shares with the other services), {bridge[2]:.2f} s EVM transaction "
                       f"to receipt")
        conflicts = Counter(
            (c["function"], c["code"], " + ".join(c["after_in_block"]) if "after_in_block" in c
             else None, c.get("before_final"))
            for r in results["rounds"] if str(r["orgs"]) == k for c in r["conflicts"])
        if conflicts:
            parts = [f"{n}× `{f}` {code}" + (f" behind `{after}` in its block" if after else "")
                     + ("" if before is None else " (before final: on the way to final)"
                        if before else " (after final)")
                     for (f, code, after, before), n in sorted(conflicts.items())]
            retried = Counter(x["service"] for r in results["rounds"] if str(r["orgs"]) == k
                              for x in r["retries"])
            out.append(f"- {k} orgs, conflicting transactions in the rounds: "
                       + "; ".join(parts) + ". Retried by: "
                       + ", ".join(f"{svc} {n}×" for svc, n in sorted(retried.items())) + ".")
        out.append(
            f"- {k} orgs: of last submission → final ({_f(results['orgs'][k]['submit_to_final_s'])} s) "
            f"the largest phases are " + " and ".join(f"{SHORT[s]} {v:.2f} s" for v, s in biggest)
            + f"; final → anchored {_f(results['orgs'][k]['final_to_anchored_s'])} s "
            f"(bridge to receipt {_f(segs.get(names[-2]))} s{bridge_text}, receipt commit "
            f"{_f(segs.get(names[-1]))} s); the slowest org's stage from its job to its "
            f"`SubmitUpdate` took {_f(d['slowest_org_stage_s'])} s, of which `train_local` "
            f"{_f(d['training_s'])} s. Outside the rounds (start-up, registration): "
            f"{outside['mvcc_conflicts']} conflicting transaction(s), {outside['retries']} "
            f"retry line(s){' ' + str(outside['conflicts_by_function']) if outside['conflicts_by_function'] else ''}.")
    timeout = results["batch_timeout_ms"] / 1000
    poll = results["settings"]["services_poll_s"]
    out.append(
        f"- Block cutting sets a floor: each ledger write on the critical path waits for its "
        f"block, {timeout * 1000:g} ms when it is the first in it. Last submission → final "
        f"holds {len(SUBMIT_TO_FINAL_WRITES)} such writes one after another "
        f"({', '.join(f'`{w}`' for w in SUBMIT_TO_FINAL_WRITES)}): "
        f"{len(SUBMIT_TO_FINAL_WRITES) * timeout:.2f} s of the 2 s; `POST /rounds` → anchored "
        f"holds {len(POST_TO_ANCHORED_WRITES)} (also `OpenRound` and `RecordAnchorReceipt`; "
        f"the orgs' `RecordParticipationDecision` commits while they train, and their "
        f"`RecordTrainingRecord` in the same block time as `SubmitUpdate`): "
        f"{len(POST_TO_ANCHORED_WRITES) * timeout:.2f} s of the 3 s. The rest is the "
        f"services' reaction time (the org nodes and the bridge wake on the ledger's "
        f"events; the org nodes then poll the coordinator every 0.1 s for 2 s, and every "
        f"{poll} s otherwise), the bridge's signature collection (all orgs at once) and EVM "
        f"transaction, and the org nodes' local work besides `train_local` (model load in "
        f"a node's first round, base evaluation, upload), all on {results['machine']['cpu_count']} "
        f"CPU cores shared by every service.")
    if results["quick"]:
        walls = ", ".join(f"{k} orgs {results['details'][k]['wall_s']:.0f} s (start-up "
                          f"{results['details'][k]['startup_s']:.0f} s)" for k in results["orgs"])
        out.append(f"- `--quick` wall time per org count: {walls}; most of it is starting the "
                   f"services (one Python process per org node, on "
                   f"{results['machine']['cpu_count']} CPUs), not the rounds.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds per org count, 2 local steps, shorter waits")
    parser.add_argument("--orgs", type=int, nargs="+", default=None,
                        help="org counts to run (3 and 8; quick: 3, so it stays near a minute: "
                             "8 org nodes take 45 s to start on 2 cores)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per org count (4; quick 2)")
    parser.add_argument("--local-steps", type=int, default=None, help="default 4, quick 2")
    parser.add_argument("--poll-s", type=float, default=0.5,
                        help="poll interval of the org nodes, coordinator and bridge "
                             "(`fedledger up`'s default)")
    parser.add_argument("--status-poll-s", type=float, default=0.05,
                        help="how often the benchmark reads the round status and /anchors")
    parser.add_argument("--job-poll-s", type=float, default=0.5,
                        help="how often the benchmark reads the org nodes' jobs after final")
    parser.add_argument("--gap-s", type=float, default=None,
                        help="pause after a round is anchored and attested by all (1; quick 0.5)")
    parser.add_argument("--probes", type=int, default=3, help="lone transactions timed per run")
    parser.add_argument("--round-timeout-s", type=float, default=120.0)
    parser.add_argument("--rewrite", action="store_true",
                        help="run nothing: rewrite the plot and RESULTS.md section from the "
                             "existing results JSON (of --quick with --quick)")
    parser.add_argument("--quiet-timeout-s", type=float, default=None,
                        help="longest wait for an idle CPU before the rounds (60; quick 10)")
    args = parser.parse_args()
    args.orgs = args.orgs or ([3] if args.quick else [3, 8])
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.gap_s = args.gap_s if args.gap_s is not None else (0.5 if args.quick else 1.0)
    if args.quiet_timeout_s is None:
        args.quiet_timeout_s = 10.0 if args.quick else 60.0
    command = "python benchmarks/round_latency.py" + "".join(f" {a}" for a in sys.argv[1:])

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from benchmarks._results import RESULTS_DIR, machine_description, write_json
    from fedledger.launcher import experiment_config

    console = Console()
    name = NAME + ("_quick" if args.quick else "")
    if args.rewrite:
        import json

        path = RESULTS_DIR / f"{name}.json"
        results = json.loads(path.read_text())
        results.setdefault("measured_utc", time.strftime(  # written at the end of its run
            "%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime)))
        if add_conflict_context(results):
            write_json(name, results)
        write_markdown(results, plot_results(results, RESULTS_DIR / f"{name}.png"), name)
        console.print(f"rewrote benchmarks/results/{name}.png and its RESULTS.md section")
        return
    experiment = experiment_config(quick=True, local_steps=args.local_steps
                                   or (2 if args.quick else 4))
    console.rule(f"{NAME}: {experiment.model.base}, orgs {args.orgs}, {args.rounds} rounds x "
                 f"{experiment.train.local_steps} steps")
    started = time.perf_counter()
    runs = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as progress:
        stage = Stage(progress)
        for orgs in args.orgs:
            runs.append(run_org_count(orgs, args, experiment, console, progress, stage))
    elapsed = time.perf_counter() - started
    results = summarise(args, experiment, runs, machine_description(), elapsed, command)
    write_json(name, results)
    plot = plot_results(results, RESULTS_DIR / f"{name}.png")
    write_markdown(results, plot, name)
    for k, f in results["orgs"].items():
        d = results["details"][k]
        console.print(f"{k} orgs: last submission -> final {_f(f['submit_to_final_s'])} s, "
                      f"POST -> final {_f(f['post_to_final_s'])} s, final -> anchored "
                      f"{_f(f['final_to_anchored_s'])} s, POST -> anchored - training "
                      f"{_f(d['post_to_anchored_minus_training_s'])} s, retries/round "
                      f"{_f(f['mvcc_retries'], 1)}, conflicts/round "
                      f"{_f(results['mvcc_conflicts'][k]['per_round_mean'], 1)}")
    console.print(f"BatchTimeout in force {results['batch_timeout_ms']:g} ms "
                  f"({results['orderer']['source']}); wrote benchmarks/results/{name}.json, "
                  f"{name}.png and RESULTS.md ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
