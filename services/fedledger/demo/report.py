"""The demo's report: ``report.json`` (:func:`build_report`, the data), ``report.md``
(:func:`report_markdown`, written with the small :class:`Markdown` builder, section by
section) and ``accuracy.png`` (:mod:`fedledger.demo.plots`), all from the same data."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedledger.demo.plots import plot_accuracy
from fedledger.demo.state import DemoState, RoundResult, fmt

#: The deletion's verification metrics, as the report's table shows them.
DELETION_METRICS = (("forget_loss", "loss on the deleted tweets"),
                    ("forget_accuracy", "accuracy on the deleted tweets"),
                    ("test_accuracy", "test accuracy"),
                    ("mia_auc", "membership-inference AUC"))
#: The fields of an anchor that a round of the report keeps.
ANCHOR_FIELDS = ("tx_hash", "block_number", "first_round", "last_round", "root", "status",
                 "receipt_tx_id", "signers")

# ---------------------------------------------------------------------- report.json


def _per_org(r: RoundResult, msp_id: str) -> dict[str, Any]:
    job = r.jobs.get(msp_id)
    metrics = job.metrics if job is not None else {}
    return {
        "job_status": job.status if job else None, "global_accuracy": r.accuracy(msp_id),
        "global_loss": metrics.get("global_loss"),
        "base_accuracy": r.accuracy(msp_id, "base_accuracy"),
        "num_test": metrics.get("num_test"), "num_samples": job.num_samples if job else None,
        "update_hash": job.update_hash if job else None, "train_loss": metrics.get("mean_loss"),
        "eval_error": metrics.get("eval_error"), "error": job.error if job else None}


def _round(r: RoundResult, msp_ids: list[str]) -> dict[str, Any]:
    round_ = r.round
    per_org = {m: _per_org(r, m) for m in msp_ids}
    aggregate = round_.aggregate
    return {
        "round_id": r.round_id, "status": r.status, "seconds": r.seconds,
        "version_id": round_.version_id,
        "submissions": sorted(s.org for s in round_.submissions),
        "attestations": sorted(set(round_.attestations) | {
            m for m, p in per_org.items() if p["job_status"] == "attested"}),
        "aggregate_digest": aggregate.aggregate_digest if aggregate else None,
        "included": aggregate.included if aggregate else None,
        "per_org": per_org, "mean_accuracy": r.mean(msp_ids),
        "ledger": round_.ledger.model_dump(mode="json"),
        "anchor": {k: getattr(r.anchor, k) for k in ANCHOR_FIELDS} if r.anchor else None,
    }


def build_report(state: DemoState) -> dict[str, Any]:
    """``report.json``: the settings, the orgs, each round's scores, transactions and
    anchor, the proofs, the deletion and the problems met."""
    exp = json.loads(state.experiment.model_dump_json())
    options, info, msp_ids = state.options, state.host_info, state.msp_ids
    first = state.rounds[0] if state.rounds else None
    base = {m: first.accuracy(m, "base_accuracy") for m in msp_ids} if first else {}
    base_values = [v for v in base.values() if v is not None]
    return {
        "name": state.experiment.name, "quick": options.quick,
        "started_at": state.started_at.isoformat(timespec="seconds"),
        "duration_s": round((datetime.now(UTC) - state.started_at).total_seconds(), 1),
        "timings": state.timings,
        "settings": {"rounds": options.rounds, "orgs": options.orgs, "shards": options.shards,
                     "model": exp["model"]["base"], "lora": exp["lora"],
                     "train": exp["train"], "data": exp["data"],
                     "strategy": exp["federation"]["strategy"]},
        "orgs": [{"org": o.name, "msp_id": o.msp_id, "domain": o.domain, "url": o.url,
                  "dataset_id": (state.datasets.get(o.name) or {}).get("dataset_id"),
                  "anchor_address": o.anchor_address} for o in state.orgs],
        "evm": {"chain_id": info.chain_id if info else None,
                "registry": info.registry if info else None,
                "rpc_url": info.rpc_url if info else None,
                "threshold": info.threshold if info else None},
        "base": {"accuracy": base, "mean": sum(base_values) / len(base_values)
                 if base_values else None},
        "rounds": [_round(r, msp_ids) for r in state.rounds],
        "anchors": [a.model_dump(mode="json") for a in state.anchors],
        "proof": state.proof,
        "deletion": state.deletion,
        "deployment": {"root": str(state.root), "logs": str(state.log_dir)}
        if state.root is not None else None,
        "errors": state.errors,
    }


def write_report(data: dict[str, Any], out: Path) -> Path:
    """``report.json``, ``accuracy.png`` and ``report.md`` in ``out``; returns the last."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    plot_accuracy(data, out / "accuracy.png")
    (out / "report.md").write_text(report_markdown(data))
    return out / "report.md"


# ---------------------------------------------------------------------- report.md


class Markdown:
    """A Markdown document built block by block; each block ends with a blank line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def heading(self, level: int, text: str) -> Markdown:
        return self.block(f"{'#' * level} {text}")

    def block(self, *lines: str) -> Markdown:
        """Lines of one paragraph, list or code fence, then a blank line."""
        self.lines += [*lines, ""]
        return self

    def bullets(self, items: Iterable[str]) -> Markdown:
        return self.block(*(f"- {item}" for item in items))

    def table(self, header: Sequence[str], align: str, rows: Iterable[Sequence[str | None]]
              ) -> Markdown:
        """``align``: one letter per column, ``l`` (``---``) or ``r`` (``---:``). A cell of
        ``None`` is blank (``| |``)."""
        return self.block(self.row(header), "|" + "".join(
            "---:|" if a == "r" else "---|" for a in align), *(self.row(r) for r in rows))

    @staticmethod
    def row(cells: Sequence[str | None]) -> str:
        return "|" + "|".join(" " if c is None else f" {c} " for c in cells) + "|"

    def render(self) -> str:
        return "\n".join(self.lines)


def _code(text: object) -> str:
    return f"`{text}`"


def _verified(ok: bool) -> str:
    return f"**{'verified' if ok else 'NOT verified'}**"


def _intro(md: Markdown, data: dict[str, Any]) -> None:
    s = data["settings"]
    train, lora, dset = s["train"], s["lora"], s["data"]
    md.heading(1, data["name"])
    md.block(f"Started {data['started_at']}, took {data['duration_s']:.0f} s. {s['orgs']} org "
             "nodes, a coordinator and a host (dev Fabric peer, embedded EVM, anchoring bridge), "
             "each its own process; every step below went over their HTTP APIs.")
    md.heading(2, "Settings")
    md.bullets([
        f"model `{s['model']}`, LoRA r={lora['r']} on {', '.join(lora['target_modules'])}",
        f"{s['rounds']} rounds, strategy `{s['strategy']['name']}`; per org and round "
        f"{train['local_steps']} local steps x batch {train['batch_size']}, learning rate "
        f"{train['learning_rate']}, texts cut to {train['max_text_tokens']} tokens",
        f"data `{dset['dataset']}`, one domain per org; at most {dset['max_train_per_org']} "
        f"training and {dset['max_test_per_org']} test samples per org",
        f"timings: {', '.join(f'{k} {v}' for k, v in data['timings'].items())}",
    ])
    md.table(("org", "MSP id", "domain", "dataset", "node"), "lllll",
             [(o["org"], o["msp_id"], o["domain"], o["dataset_id"], o["url"])
              for o in data["orgs"]])


def _accuracy(md: Markdown, data: dict[str, Any]) -> None:
    msp_ids = [o["msp_id"] for o in data["orgs"]]
    md.heading(2, "Accuracy per round")
    md.block("Each org node scores the attested global model on its own test split (its own "
             "domain); round 0 is the base model before any training.")
    base = data["base"]
    rows: list[list[str | None]] = [
        ["0", *(fmt(base["accuracy"].get(m)) for m in msp_ids), fmt(base["mean"]), "base", None]]
    rows += [[str(r["round_id"]), *(fmt(r["per_org"][m]["global_accuracy"]) for m in msp_ids),
              fmt(r["mean_accuracy"]), r["version_id"] or "-", f"{r['seconds']:.0f}"]
             for r in data["rounds"]]
    md.table(("round", *msp_ids, "mean", "model", "seconds"), "r" * (len(msp_ids) + 2) + "lr",
             rows)
    md.block("![accuracy per round](accuracy.png)")


def _job_cell(p: dict[str, Any]) -> str:
    job = p["job_status"] or "-"
    if p.get("eval_error"):
        job += f" (eval error: {p['eval_error']})"
    if p.get("error"):
        job += f" ({p['error']})"
    return job


def _anchor_cell(anchor: dict[str, Any]) -> str:
    cell = _code(anchor.get("tx_hash") or "not recorded")
    if anchor:
        cell += (f", block {anchor.get('block_number')}, rounds {anchor.get('first_round')}-"
                 f"{anchor.get('last_round')}, root `{anchor.get('root')}`")
    return cell


def _per_round(md: Markdown, data: dict[str, Any]) -> None:
    msp_ids = [o["msp_id"] for o in data["orgs"]]
    md.heading(2, "Per round and org")
    for r in data["rounds"]:
        md.heading(3, f"Round {r['round_id']} ({r['status']}, model {r['version_id']})")
        md.block(f"Aggregate digest `{r['aggregate_digest']}`; submitted: "
                 f"{', '.join(r['submissions']) or '-'}; attested: "
                 f"{', '.join(r['attestations']) or '-'}.")
        orgs = [(m, r["per_org"][m]) for m in msp_ids]
        md.table(("org", "job", "samples", "train loss", "accuracy before", "global accuracy",
                  "global loss", "test n", "update"), "llrrrrrrl",
                 [(m, _job_cell(p), str(p["num_samples"] or "-"), fmt(p["train_loss"]),
                   fmt(p["base_accuracy"]), fmt(p["global_accuracy"]), fmt(p["global_loss"]),
                   str(p["num_test"] or "-"), _code((p["update_hash"] or "-")[:16]))
                  for m, p in orgs])
        ledger = r["ledger"]
        md.table(("record", "transaction"), "ll", [
            ("OpenRound (Fabric tx id)", _code(ledger.get("open_tx") or "-")),
            ("CloseRound (Fabric tx id)", _code(ledger.get("close_tx") or "-")),
            ("RegisterModelVersion (Fabric tx id)", _code(ledger.get("model_tx") or "-")),
            ("anchor on the EVM chain (tx hash)", _anchor_cell(r["anchor"] or {})),
        ])


def _deletion(md: Markdown, deletion: dict[str, Any]) -> None:
    job = deletion.get("coordinator") or {}
    metrics = deletion.get("metrics") or {}
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    proof = deletion.get("proof") or {}
    md.heading(2, "A deletion request, executed by exact unlearning")
    md.block(
        f"{deletion['org']}'s data subject `{deletion['subject_id']}` asked to be forgotten: "
        f"{len(deletion['sample_ids'])} tweets of `{deletion['dataset_id']}`, in shard-group "
        f"{deletion['shard']}. Request `{deletion['request_id']}`, done in "
        f"{deletion['seconds']} s: the coordinator served `{job.get('interim_version')}` "
        f"(without shard-group {deletion['shard']}) at once, replayed round(s) "
        f"{job.get('replay_rounds')} with the same seeds and participants and without the "
        f"tweets, and registered `{job.get('new_version')}`; round "
        f"{deletion.get('proof_round')} anchored the records.")
    md.table(("metric (Org's own data)", "before", "after"), "lrr",
             [(label, fmt(before.get(key)), fmt(after.get(key)))
              for key, label in DELETION_METRICS])
    if proof.get("file"):
        md.block(f"Proof bundle `{proof['file']}` (request and unlearning record under "
                 "anchored roots, non-membership proofs of the deleted tweets in the new "
                 f"version's commitments): {_verified(proof['verified'])} against the chain "
                 f"alone ({len(proof['checks'])} checks). Check it again with `fedledger verify "
                 f"{proof['file']} --rpc-url RPC --contract REGISTRY` while a chain with the "
                 "anchors runs.")


def _anchors(md: Markdown, data: dict[str, Any]) -> None:
    evm = data["evm"]
    md.heading(2, "Public-chain anchors")
    md.block(f"AnchorRegistry `{evm['registry']}` on chain id {evm['chain_id']} (JSON-RPC "
             f"{evm['rpc_url']} while the demo ran); an anchor needs {evm['threshold']} of "
             f"{len(data['orgs'])} org signatures.")
    md.table(("rounds", "status", "tx hash", "block", "signers"), "lllrl",
             [(f"{a['first_round']}-{a['last_round']}", a["status"], _code(a.get("tx_hash") or "-"),
               str(a.get("block_number") or "-"), ", ".join(a.get("signers") or []))
              for a in data["anchors"]])


def _how_to_verify(md: Markdown, data: dict[str, Any]) -> None:
    evm = data["evm"]
    md.heading(2, "How to verify")
    proof = data.get("proof") or {}
    if proof.get("file"):
        md.block(f"`{proof['file']}` is the proof package of {proof['org']}'s attestation of "
                 f"round {proof['round_id']}: the record, its Merkle path to the anchored root "
                 "and the anchor's round range. The demo checked it against the chain alone: "
                 f"{_verified(proof['verified'])} "
                 f"({', '.join(c['check'] for c in proof['checks'])}).")
    md.block("With a deployment running (`fedledger up`, or this demo while it runs), get a "
             "record's proof package from the host and check it with the public chain alone:")
    md.block("```bash",
             "curl -s -X POST $HOST/proofs -H 'content-type: application/json' \\",
             "     -d '{\"leaf\": {\"kind\": \"attestation\", \"round_id\": N, \"record\": {...}}}' "
             "> proof.json",
             f"fedledger verify proof.json --rpc-url {evm['rpc_url']} --contract {evm['registry']}",
             "```")
    md.block("(`$HOST` is the host's status URL; `GET $HOST/anchors/N` lists round N's leaves, "
             "records included.) The demo's embedded chain lives in the host process, so its "
             "JSON-RPC URL is gone once the demo stops; against a live chain the same command "
             "needs only its RPC URL and the registry address.")


def report_markdown(data: dict[str, Any]) -> str:
    """``report.md`` from :func:`build_report`'s data."""
    md = Markdown()
    _intro(md, data)
    _accuracy(md, data)
    _per_round(md, data)
    if data.get("deletion"):
        _deletion(md, data["deletion"])
    _anchors(md, data)
    _how_to_verify(md, data)
    if data["errors"]:
        md.heading(2, "Problems").bullets(data["errors"])
    if data.get("deployment"):
        md.block(f"Service logs: `{data['deployment']['logs']}`.")
    return md.render()
