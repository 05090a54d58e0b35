"""Module boundaries from docs/architecture.md, checked on the import graph of a fresh
interpreter: the learning core never pulls in a ledger client or a web framework."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN_IN_LEARNING = ("fastapi", "starlette", "uvicorn", "grpc", "web3", "eth_tester", "sqlalchemy",
                         "fedledger.fabric", "fedledger.evm", "fedledger.coordinator", "fedledger.orgnode")


def imported_modules(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_learning_core_imports_no_ledger_or_web_code():
    modules = imported_modules(
        "import fedledger.learning.simulation, fedledger.learning.report, fedledger.learning.updates"
    )
    leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN_IN_LEARNING or
                    any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IN_LEARNING))
    assert leaked == []
    assert "torch" in modules and "peft" in modules  # the check itself can see imports
