"""The chaincode-as-a-service external builder the repository ships
(deploy/fabric/builders/ccaas/bin/{detect,build,release}), run as a Fabric peer runs it
(Fabric's external builder contract) on a package deploy/chaincode/package.sh made
(plaintext, and mutual TLS as the compose deployment's): the peer unpacks metadata.json
into a metadata folder and code.tar.gz into a source folder, then calls detect, build and
release with those folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from fedledger.devnet.ca import write_network_crypto

from .compose import DEPLOY, need

BUILDER = DEPLOY / "fabric/builders/ccaas/bin"


def step(name: str, *folders: Path) -> subprocess.CompletedProcess[str]:
    # The peer gives a builder only PATH (and LD_LIBRARY_PATH, LIBPATH, TMPDIR) unless
    # propagateEnvironment names more.
    return subprocess.run([str(BUILDER / name), *map(str, folders)], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60, check=False)


def _unpacked(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[Path, Path]:
    """(source, metadata) folders of a package package.sh made, as the peer unpacks it."""
    need("jq", shutil.which("jq") is not None, "the builder reads JSON with it (apt-get install jq)")
    out = tmp_path / "fedledger.tar.gz"
    subprocess.run(["bash", str(DEPLOY / "chaincode/package.sh"), "127.0.0.1:9999",
                    "fedledger_1.0", str(out)], check=True, capture_output=True, timeout=60,
                   env={"PATH": "/usr/bin:/bin", **(env or {})})
    source, metadata = tmp_path / "src", tmp_path / "metadata"
    source.mkdir(), metadata.mkdir()
    with tarfile.open(out) as outer:
        outer.extract("metadata.json", metadata)
        outer.extract("code.tar.gz", tmp_path)
    with tarfile.open(tmp_path / "code.tar.gz") as code:
        code.extractall(source)
    return source, metadata


@pytest.fixture
def package(tmp_path: Path) -> tuple[Path, Path]:
    """A plaintext package."""
    return _unpacked(tmp_path)


@pytest.fixture
def tls_package(tmp_path: Path) -> tuple[Path, Path]:
    """A mutual-TLS package, as chaincode.sh makes it (dev CA material)."""
    crypto = write_network_crypto(tmp_path / "crypto", ["Org1"]).org("Org1")
    return _unpacked(tmp_path, {"CHAINCODE_TLS_ROOT_CERT": str(crypto.tls_ca_cert),
                                "CHAINCODE_TLS_CLIENT_CERT": str(crypto.peer.tls_cert),
                                "CHAINCODE_TLS_CLIENT_KEY": str(crypto.peer.tls_key)})


def test_the_programs_are_executable_bash() -> None:
    for name in ("detect", "build", "release"):
        path = BUILDER / name
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")


def test_detect_takes_ccaas_packages_only(package: tuple[Path, Path], tmp_path: Path) -> None:
    source, metadata = package
    assert step("detect", source, metadata).returncode == 0
    for other in ({"type": "golang", "label": "x"}, {"type": "CCAAS", "label": "x"}, {"label": "x"}):
        folder = tmp_path / f"m-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "metadata.json").write_text(json.dumps(other))
        expected = 0 if other.get("type", "").lower() == "ccaas" else 1
        assert step("detect", source, folder).returncode == expected, other
    assert step("detect", source, tmp_path / "missing").returncode == 1
    assert step("detect", source).returncode == 2


def test_build_then_release_give_the_peer_the_connection(package: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    source, metadata = package
    build, release = tmp_path / "build", tmp_path / "release"
    build.mkdir(), release.mkdir()
    result = step("build", source, metadata, build)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in build.iterdir()) == ["connection.json", "metadata.json"]
    assert (build / "connection.json").read_bytes() == (source / "connection.json").read_bytes()
    result = step("release", build, release)
    assert result.returncode == 0, result.stderr
    served = json.loads((release / "chaincode/server/connection.json").read_text())
    assert served == {"address": "127.0.0.1:9999", "dial_timeout": "10s", "tls_required": False}
    assert not (release / "statedb").exists()


def test_meta_inf_and_state_database_indexes_are_carried(package: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    source, metadata = package
    index = source / "META-INF/statedb/couchdb/indexes/byRound.json"
    index.parent.mkdir(parents=True)
    index.write_text('{"index": {"fields": ["round_id"]}}')
    build, release = tmp_path / "build", tmp_path / "release"
    assert step("build", source, metadata, build).returncode == 0
    assert (build / "META-INF/statedb/couchdb/indexes/byRound.json").read_text() == index.read_text()
    assert step("release", build, release).returncode == 0
    assert (release / "statedb/couchdb/indexes/byRound.json").read_text() == index.read_text()


@pytest.mark.parametrize("connection", [
    None, "not json", {"dial_timeout": "10s"}, {"address": "no-port"},
    {"address": "{{.peername}}:9999"},
])
def test_build_refuses_a_package_without_a_usable_connection(package: tuple[Path, Path],
                                                             tmp_path: Path, connection) -> None:
    source, metadata = package
    target = source / "connection.json"
    if connection is None:
        target.unlink()
    else:
        target.write_text(connection if isinstance(connection, str) else json.dumps(connection))
    result = step("build", source, metadata, tmp_path / "build")
    assert result.returncode == 1
    assert not (tmp_path / "build" / "connection.json").exists()


def test_a_tls_connection_reaches_the_peer_as_written(tls_package: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    source, metadata = tls_package
    build, release = tmp_path / "build", tmp_path / "release"
    assert step("build", source, metadata, build).returncode == 0
    assert step("release", build, release).returncode == 0
    served = release / "chaincode/server/connection.json"
    assert served.read_bytes() == (source / "connection.json").read_bytes()
    connection = json.loads(served.read_text())
    assert (connection["tls_required"], connection["client_auth_required"]) == (True, True)
    for field in ("root_cert", "client_key", "client_cert"):
        assert connection[field].startswith("-----BEGIN "), field


@pytest.mark.parametrize("change", [
    {"root_cert": None}, {"root_cert": "not a certificate"}, {"client_key": None},
    {"client_cert": ""}, {"tls_required": "yes"}, {"client_auth_required": 1},
])
def test_build_refuses_tls_without_what_the_peer_then_needs(tls_package: tuple[Path, Path],
                                                            tmp_path: Path, change) -> None:
    # Fabric's peer would fail only when it launches the chaincode ("chaincode tls root
    # cert not provided", "malformed chaincode info"); the builder refuses at install.
    source, metadata = tls_package
    target = source / "connection.json"
    connection = json.loads(target.read_text())
    for key, value in change.items():
        if value is None:
            connection.pop(key)
        else:
            connection[key] = value
    target.write_text(json.dumps(connection))
    result = step("build", source, metadata, tmp_path / "build")
    assert result.returncode == 1, change
    assert not (tmp_path / "build" / "connection.json").exists()


def test_mutual_tls_is_optional(tls_package: tuple[Path, Path], tmp_path: Path) -> None:
    # TLS without a client certificate (client_auth_required false) is a valid connection.
    source, metadata = tls_package
    target = source / "connection.json"
    connection = json.loads(target.read_text())
    for key in ("client_key", "client_cert"):
        connection.pop(key)
    connection["client_auth_required"] = False
    target.write_text(json.dumps(connection))
    assert step("build", source, metadata, tmp_path / "build").returncode == 0


def test_release_refuses_an_empty_build(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    assert step("release", tmp_path / "build", tmp_path / "release").returncode == 1
