"""The deployment's shell scripts: shellcheck passes on every one, and the chaincode
package they install is reproducible (the same package id on every run)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from .compose import DEPLOY, REPO, need

# The *.sh scripts and the external builder's bin/ programs (no suffix, as Fabric names them).
SCRIPTS = sorted([p for p in DEPLOY.rglob("*.sh") if "node_modules" not in p.parts]
                 + list(DEPLOY.glob("fabric/builders/*/bin/*")))


def test_shellcheck_passes_on_every_script() -> None:
    need("shellcheck", shutil.which("shellcheck") is not None,
         "bash deploy/scripts/install-check-tools.sh installs Debian's package")
    assert {p.name for p in SCRIPTS} >= {"lib.sh", "crypto.sh", "channels.sh", "chaincode.sh",
                                         "network.sh", "add-org.sh", "init-secrets.sh",
                                         "chaincode-entrypoint.sh", "install-check-tools.sh",
                                         "package.sh", "init-databases.sh",
                                         "detect", "build", "release"}
    # -x follows `source` into lib.sh (its directive names it from the repository root).
    result = subprocess.run(["shellcheck", "-x", "--severity=style",
                             *(str(p.relative_to(REPO)) for p in SCRIPTS)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _package(tmp_path: Path, name: str, address: str) -> Path:
    out = tmp_path / name
    subprocess.run(["bash", str(DEPLOY / "chaincode/package.sh"), address, "fedledger_1.0",
                    str(out)], check=True, capture_output=True, timeout=60)
    return out


def test_chaincode_package_is_reproducible(tmp_path: Path) -> None:
    a = _package(tmp_path, "a.tar.gz", "chaincode.org1.example.com:9999")
    b = _package(tmp_path, "b.tar.gz", "chaincode.org1.example.com:9999")
    other = _package(tmp_path, "c.tar.gz", "chaincode.org2.example.com:9999")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != other.read_bytes()   # each org's package names its own server
    # Fabric's package id: label ":" sha256 of the package file.
    package_id = f"fedledger_1.0:{hashlib.sha256(a.read_bytes()).hexdigest()}"
    assert package_id.startswith("fedledger_1.0:")
    with tarfile.open(a) as outer:
        assert sorted(outer.getnames()) == ["code.tar.gz", "metadata.json"]
        metadata = json.load(outer.extractfile("metadata.json"))
        code = outer.extractfile("code.tar.gz").read()
    assert metadata == {"type": "ccaas", "label": "fedledger_1.0"}
    with tarfile.open(fileobj=io.BytesIO(code)) as inner:
        connection = json.load(inner.extractfile("connection.json"))
    assert connection["address"] == "chaincode.org1.example.com:9999"
    assert connection["tls_required"] is False


def test_init_secrets_writes_each_secret_once(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "FEDLEDGER_SECRETS_DIR": str(tmp_path / "s")}
    script = str(DEPLOY / "scripts/init-secrets.sh")
    subprocess.run(["bash", script], check=True, capture_output=True, env=env, timeout=60)
    first = {p.name: p.read_text() for p in (tmp_path / "s").iterdir()}
    subprocess.run(["bash", script], check=True, capture_output=True, env=env, timeout=60)
    assert {p.name: p.read_text() for p in (tmp_path / "s").iterdir()} == first
    assert (tmp_path / "s").stat().st_mode & 0o077 == 0
    token = first["operator_token"].strip()
    assert first["operator_token_sha256"].strip() == hashlib.sha256(token.encode()).hexdigest()
    from eth_account import Account

    for org in ("org1", "org2", "org3"):
        Account.from_key("0x" + first[f"{org}_anchor_key"].strip())  # a valid key
    assert len({first[f"{o}_anchor_key"] for o in ("org1", "org2", "org3")}) == 3
