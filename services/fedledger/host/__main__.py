"""``python -m fedledger.host --config PATH``: run the host process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import sys

from fedledger.host.app import run
from fedledger.host.settings import HostSettings
from fedledger.logs import add_log_level_argument, configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedledger.host", description=__doc__)
    parser.add_argument("--config", required=True, help="host settings (JSON)")
    add_log_level_argument(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings = HostSettings.from_file(args.config)
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
