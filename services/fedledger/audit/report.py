"""A deletion request as a human-readable report: Markdown, or HTML rendered from it.

Fields a requester typed (legal basis, requester) are escaped: raw HTML is never passed
through (markdown-it with ``html`` off) and table cells cannot break their table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt

from fedledger.audit.verify import Verification

METRIC_NAMES = {
    "forget_loss": "forget-set loss", "forget_accuracy": "forget-set accuracy",
    "retain_accuracy": "retain accuracy", "test_accuracy": "test accuracy",
    "mia_auc": "membership-inference AUC (0.5 = cannot tell)",
}


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _cell(value)


def request_markdown(status: dict[str, Any], verification: Verification | None = None) -> str:
    """The report of one request (``fedledger.orgnode.audit.request_status`` output)."""
    job = status.get("coordinator") or {}
    ledger = status.get("ledger") or {}
    scope = ("the whole dataset" if status.get("whole_dataset")
             else f"{len(status.get('sample_ids') or [])} sample(s)")
    lines = [f"# Deletion request {_cell(status['request_id'])}", "",
             *_table(["field", "value"], [
                 ["organisation", status.get("org")],
                 ["status", status.get("status")],
                 ["dataset", status.get("dataset_id")],
                 ["scope", scope + (f" of data subject {status['subject_id']}"
                                    if status.get("subject_id") else "")],
                 ["legal basis", status.get("legal_basis")],
                 ["requester", status.get("requester")],
                 ["filed", status.get("created")],
                 ["affected shards", ", ".join(map(str, status.get("affected_shards") or []))
                  or "none"],
                 ["replay rounds", ", ".join(map(str, job.get("replay_rounds") or [])) or "none"],
                 ["model version before", job.get("old_version")],
                 ["served during the replay", job.get("interim_version")],
                 ["model version after", job.get("new_version")],
                 ["public notice", (ledger.get("notice") or {}).get("notice_id")],
             ]), ""]
    if status.get("error"):
        lines += [f"**Error:** {_cell(status['error'])}", ""]
    metrics = status.get("metrics") or {}
    if metrics.get("before") and metrics.get("after"):
        lines += ["## Verification metrics", "",
                  *_table(["metric", "before", "after"], [
                      [label, _number(metrics["before"].get(key)),
                       _number(metrics["after"].get(key))]
                      for key, label in METRIC_NAMES.items()]),
                  "", (f"Forget set: {metrics['after'].get('n_forget')} sample(s); retain: "
                       f"{metrics['after'].get('n_retain')}; test (held out): "
                       f"{metrics['after'].get('n_test')}."), ""]
    timings = {**(job.get("timings") or {}), **(status.get("timings") or {})}
    shown = {k: v for k, v in timings.items() if k.endswith("_s")}
    if shown:
        lines += ["## Timings (seconds)", "",
                  *_table(["phase", "seconds"], [[k.removesuffix("_s"), f"{v:.2f}"]
                                                 for k, v in sorted(shown.items())]), ""]
    history = status.get("history") or []
    if history:
        lines += ["## History", "",
                  *_table(["when", "event", "ledger transaction", "details"], [
                      [e.get("at"), e.get("event"), e.get("tx_id", ""),
                       ", ".join(f"{k}={v}" for k, v in e.items()
                                 if k not in ("at", "event", "tx_id"))[:300]]
                      for e in history]), ""]
    if verification is not None:
        verdict = "VERIFIED" if verification.ok else "NOT VERIFIED"
        lines += [f"## Proof against the public chain: {verdict}", "",
                  *_table(["check", "result", "detail"],
                          [[name, "ok" if passed else "FAILED", detail]
                           for name, passed, detail in verification.checks]), ""]
    else:
        lines += ["## How to verify", "",
                  ("Download the proof bundle (`GET /audit/requests/{id}/proof`, or "
                   "`fedledger audit proof`) and run `fedledger verify BUNDLE.json --rpc-url "
                   "URL --contract REGISTRY`: it needs nothing but the public chain."), ""]
    return "\n".join(lines)


STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
         "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em;"
         "text-align:left}")


def markdown_to_html(markdown: str, title: str) -> str:
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{safe_title}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}</body></html>\n")
