"""``python -m fedledger.coordinator --config PATH``: run the coordinator with uvicorn."""

from __future__ import annotations

import argparse

from fedledger.logs import add_log_level_argument, configure_logging
from fedledger.web.server import serve

from .app import create_app
from .settings import CoordinatorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedledger.coordinator")
    parser.add_argument("--config", required=True, help="coordinator settings (JSON)")
    add_log_level_argument(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings = CoordinatorSettings.from_file(args.config)
    serve(create_app(settings), settings.host, settings.port, tls=settings.tls)


if __name__ == "__main__":
    main()
