"""deploy/scripts/crypto.sh run for real without Fabric's binaries: a ``cryptogen``
stand-in (``python crypto_standin.py generate|extend --config=FILE --output|--input=DIR``)
writes the dev CA's material, which has cryptogen's layout (test_crypto_layout.py), and
crypto.sh then issues the chaincode servers' TLS certificates with the host's openssl, as
it does in the fabric-tools container.

The stand-in checks that crypto.sh calls cryptogen as cryptogen's CLI expects it: the
subcommand, then ``--config=`` and ``--output=`` (generate) or ``--input=`` (extend)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# Run as a program (the stand-in) it imports nothing of the tests' package.
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CRYPTO_SH = DEPLOY / "scripts/crypto.sh"
CONFIG_DIR = DEPLOY / "fabric"


def install(bin_dir: Path) -> Path:
    """Write the ``cryptogen`` stand-in into ``bin_dir`` (put it first on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "cryptogen"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def run_crypto_sh(crypto_dir: Path, *, bin_dir: Path, config_dir: Path = CONFIG_DIR,
                  env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """crypto.sh as the compose ``crypto`` service runs it, on ``crypto_dir``, owned by
    this user (SERVICES_UID/GID) instead of the containers' uid 10001."""
    from .compose import need

    need("openssl", shutil.which("openssl") is not None,
         "crypto.sh signs the chaincode servers' certificates with it (apt-get install openssl)")
    full = {"PATH": f"{install(bin_dir)}:/usr/bin:/bin", "HOME": str(crypto_dir.parent),
            "FABRIC_CFG_DIR": str(config_dir), "CRYPTO_DIR": str(crypto_dir),
            "SERVICES_UID": str(os.getuid()), "SERVICES_GID": str(os.getgid()),
            **(env or {})}
    result = subprocess.run(["bash", str(CRYPTO_SH)], capture_output=True, text=True,
                            env=full, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("generate", "extend"):
        print(f"cryptogen stand-in: unknown command {argv[:1]}", file=sys.stderr)
        return 1
    options = dict(a.removeprefix("--").split("=", 1) for a in argv[1:] if "=" in a)
    folder = options.get("output" if argv[0] == "generate" else "input")
    if "config" not in options or folder is None or len(options) != len(argv) - 1:
        print(f"cryptogen stand-in: bad arguments {argv}", file=sys.stderr)
        return 1
    from fedledger.devnet.ca import CryptoConfig, write_crypto_config

    write_crypto_config(CryptoConfig.from_file(options["config"]), Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
