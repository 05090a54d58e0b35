"""``python -m fedledger.coordinator --config PATH``: run the coordinator with uvicorn."""

from __future__ import annotations

import argparse
import logging

from fedledger.web.server import serve

from .app import create_app
from .settings import CoordinatorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedledger.coordinator")
    parser.add_argument("--config", required=True, help="coordinator settings (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = CoordinatorSettings.from_file(args.config)
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
