"""``python -m fedledger.serve SERVICE``: run one service with its settings from the
``FEDLEDGER_*`` environment variables, as the docker-compose containers do.

    python -m fedledger.serve coordinator   # CoordinatorSettings.from_env() -> create_app
    python -m fedledger.serve orgnode       # OrgNodeSettings.from_env()     -> create_app
    python -m fedledger.serve bridge        # StandaloneBridgeSettings.from_env()

The apps are the ones ``python -m fedledger.coordinator --config FILE`` and
``python -m fedledger.orgnode --config FILE`` run (``fedledger up``): only where the
settings come from differs. ``--check`` builds the settings, prints them without secrets
and exits (a configuration check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from fedledger.logs import add_log_level_argument, configure_logging


def _coordinator() -> tuple[Any, Callable[[Any], None]]:
    from fedledger.coordinator.app import create_app
    from fedledger.coordinator.settings import CoordinatorSettings
    from fedledger.web.server import serve

    settings = CoordinatorSettings.from_env()
    return settings, lambda s: serve(create_app(s), s.host, s.port, tls=s.tls)


def _orgnode() -> tuple[Any, Callable[[Any], None]]:
    from fedledger.orgnode.app import create_app
    from fedledger.orgnode.settings import OrgNodeSettings
    from fedledger.web.server import serve

    settings = OrgNodeSettings.from_env()
    return settings, lambda s: serve(create_app(s), s.host, s.port, tls=s.tls)


def _bridge() -> tuple[Any, Callable[[Any], None]]:
    from fedledger.bridge.standalone import StandaloneBridgeSettings, run

    return StandaloneBridgeSettings.from_env(), run


SERVICES = {"coordinator": _coordinator, "orgnode": _orgnode, "bridge": _bridge}
SECRET_FIELDS = {"shard_key", "operator_token", "operator_token_sha256",
                 "bootstrap_admin_token_sha256", "db_url"}


def _redacted(settings: Any) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    data = settings.model_dump(mode="json")
    for name in SECRET_FIELDS & set(data):
        if name == "db_url" and data[name]:
            data[name] = make_url(data[name]).render_as_string(hide_password=True)
        elif data[name] is not None:
            data[name] = "***"
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedledger.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("--check", action="store_true",
                        help="build the settings from the environment, print them, exit")
    add_log_level_argument(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings, run = SERVICES[args.service]()
    if args.check:
        import json

        print(json.dumps(_redacted(settings), indent=2))
        return 0
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
