"""``python -m fedledger.bridge [--config FILE]``: the bridge as its own process, against a
peer Gateway and a JSON-RPC chain (:mod:`fedledger.bridge.standalone`). Without
``--config`` the settings come from ``FEDLEDGER_*`` environment variables."""

from __future__ import annotations

import argparse
import logging
import sys

from fedledger.bridge.standalone import StandaloneBridgeSettings, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedledger.bridge", description=__doc__)
    parser.add_argument("--config", help="settings (JSON); default: FEDLEDGER_* variables")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = (StandaloneBridgeSettings.from_file(args.config) if args.config
                else StandaloneBridgeSettings.from_env())
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
