"""``python -m fedledger.orgnode --config PATH``: run one org node with uvicorn."""

from __future__ import annotations

import argparse
import logging

from fedledger.orgnode.app import create_app
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.web.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedledger.orgnode",
                                     description="Run a fedledger org node.")
    parser.add_argument("--config", required=True, help="org node settings (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = OrgNodeSettings.from_file(args.config)
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
