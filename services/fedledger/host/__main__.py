"""``python -m fedledger.host --config PATH``: run the host process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys

from fedledger.host.app import run
from fedledger.host.settings import HostSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedledger.host", description=__doc__)
    parser.add_argument("--config", required=True, help="host settings (JSON)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = HostSettings.from_file(args.config)
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
