"""What an outside auditor runs (``fedledger.audit``) and the leaf encoding it shares with
the bridge (``fedledger.protocol.leaves``) load no ledger client, ORM or web framework."""

from __future__ import annotations

from tests.test_boundaries import imported_modules

FORBIDDEN_IN_AUDIT = ("fastapi", "starlette", "uvicorn", "grpc", "sqlalchemy", "torch",
                      "fedledger.fabric", "fedledger.ledgers", "fedledger.bridge",
                      "fedledger.coordinator", "fedledger.orgnode")


def _leaked(modules: set[str]) -> list[str]:
    return sorted(m for m in modules
                  if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IN_AUDIT))


def test_audit_imports_no_ledger_client_or_orm():
    modules = imported_modules("import fedledger.audit.bundle, fedledger.audit.report, "
                               "fedledger.audit.verify, fedledger.audit.proofs")
    assert _leaked(modules) == []
    assert "fedledger.protocol.leaves" in modules  # the check itself can see imports


def test_leaf_encoding_is_pure():
    modules = imported_modules("import fedledger.protocol.leaves")
    assert _leaked(modules) == []
    assert "web3" not in modules and "eth_account" not in modules
