"""The committed OpenAPI specs match the code, and every 2xx response declares a schema."""

from __future__ import annotations

import json

import pytest

from fedledger.openapi import SPEC_DIR, WRITE_COMMAND, render, specs

SPECS = specs()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_committed_spec_matches_code(name: str) -> None:
    path = SPEC_DIR / f"{name}.json"
    assert path.exists(), f"{path} is missing; run {WRITE_COMMAND}"
    assert path.read_text() == render(SPECS[name]), f"{path} is stale; run {WRITE_COMMAND}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_success_response_has_a_schema(name: str) -> None:
    spec = json.loads((SPEC_DIR / f"{name}.json").read_text())
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2") or status == "204":
                    continue
                content = response.get("content") or {}
                if not content or not all(media.get("schema") for media in content.values()):
                    missing.append(f"{method.upper()} {path} {status}")
                    continue
                if all(media["schema"] == {} for media in content.values()):
                    missing.append(f"{method.upper()} {path} {status} (empty schema)")
                elif any(_untyped(media["schema"]) for media in content.values()):
                    missing.append(f"{method.upper()} {path} {status} (an untyped object)")
    assert not missing, f"{name}: responses without a schema: {missing}"


def _untyped(schema: dict) -> bool:
    """A free-form object (``dict[str, Any]``), or a list of them, as a whole answer."""
    if schema.get("type") == "array":
        return _untyped(schema.get("items") or {})
    return schema.get("type") == "object" and "properties" not in schema and \
        schema.get("additionalProperties") in (True, {})
