"""``python -m fedledger.devnet.ca``: write a cryptogen config's crypto material."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from fedledger.devnet.ca.crypto_config import CryptoConfig
from fedledger.devnet.ca.layout import write_crypto_config


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fedledger.devnet.ca --config crypto-config.yaml --output DIR``: what
    ``cryptogen generate`` (or, on an existing DIR, ``cryptogen extend``) writes."""
    parser = argparse.ArgumentParser(prog="python -m fedledger.devnet.ca",
                                     description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path, help="cryptogen config (YAML)")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    args = parser.parse_args(argv)
    crypto = write_crypto_config(CryptoConfig.from_file(args.config), args.output)
    for org in crypto.all_orgs():
        print(f"{org.msp_id}: {org.org_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
