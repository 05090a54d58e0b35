"""``python -m fedledger.bridge [--config FILE]``: the bridge as its own process, against a
peer Gateway and a JSON-RPC chain (:mod:`fedledger.bridge.standalone`). Without
``--config`` the settings come from ``FEDLEDGER_*`` environment variables."""

from __future__ import annotations

import argparse
import sys

from fedledger.bridge.standalone import StandaloneBridgeSettings, run
from fedledger.logs import add_log_level_argument, configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedledger.bridge", description=__doc__)
    parser.add_argument("--config", help="settings (JSON); default: FEDLEDGER_* variables")
    add_log_level_argument(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings = (StandaloneBridgeSettings.from_file(args.config) if args.config
                else StandaloneBridgeSettings.from_env())
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
