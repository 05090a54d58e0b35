"""Write the services' OpenAPI specs to ``docs/openapi/{coordinator,orgnode,host}.json``.

``python -m fedledger.openapi --write`` rewrites them; without ``--write`` it exits 1 when a
committed spec differs from the code's. Apps are built without a server or their lifespan.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from fedledger.coordinator.app import create_app as create_coordinator_app
from fedledger.coordinator.settings import CoordinatorSettings
from fedledger.host.app import Host, create_status_app
from fedledger.orgnode.app import create_app as create_orgnode_app
from fedledger.orgnode.settings import OrgNodeSettings

SPEC_DIR = Path(__file__).resolve().parents[2] / "docs" / "openapi"
WRITE_COMMAND = "python -m fedledger.openapi --write"
S = TypeVar("S", bound=BaseModel)


def _placeholder(cls: type[S], **values: Any) -> S:
    """Settings left unvalidated: building the routes reads none of them."""
    return cls.model_construct(**values)


def specs() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, from placeholder settings (routes do not read them)."""
    coordinator = create_coordinator_app(_placeholder(CoordinatorSettings))
    orgnode = create_orgnode_app(_placeholder(OrgNodeSettings, msp_id="Org1MSP"),
                                 start_worker=False)
    host = create_status_app(cast(Host, None))
    return {"coordinator": coordinator.openapi(), "orgnode": orgnode.openapi(), "host": host.openapi()}


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite docs/openapi/*.json")
    args = parser.parse_args(argv)
    stale = []
    for name, spec in specs().items():
        path = SPEC_DIR / f"{name}.json"
        text = render(spec)
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(name)
    if stale:
        print(f"stale specs: {', '.join(stale)}; run {WRITE_COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
