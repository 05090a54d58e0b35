"""``python -m fedledger.orgnode --config PATH``: run one org node with uvicorn."""

from __future__ import annotations

import argparse

from fedledger.logs import add_log_level_argument, configure_logging
from fedledger.orgnode.app import create_app
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.web.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedledger.orgnode",
                                     description="Run a fedledger org node.")
    parser.add_argument("--config", required=True, help="org node settings (JSON)")
    add_log_level_argument(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings = OrgNodeSettings.from_file(args.config)
    serve(create_app(settings), settings.host, settings.port, tls=settings.tls)


if __name__ == "__main__":
    main()
