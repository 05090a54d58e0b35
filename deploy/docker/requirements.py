"""Print the requirement lines of pyproject.toml that one image needs, exactly as
pyproject.toml writes them (so an image has the same version constraints as a
``pip install -e .``): ``python deploy/docker/requirements.py chaincode``."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# The distributions each slim image installs; their imports are checked by the image
# build (and by tests/deploy against the chaincode's import graph).
IMAGES = {
    "chaincode": ["pydantic", "protobuf", "grpcio", "hyperledger-fabric-protos",
                  "googleapis-common-protos", "cryptography"],
}


def requirement_name(line: str) -> str:
    return re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0].lower()


def select(image: str, pyproject: Path) -> list[str]:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    by_name = {requirement_name(d): d for d in dependencies}
    missing = [n for n in IMAGES[image] if n not in by_name]
    if missing:
        raise SystemExit(f"pyproject.toml has no dependency {missing}")
    return [by_name[n] for n in IMAGES[image]]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in IMAGES:
        print(f"usage: requirements.py {'|'.join(IMAGES)}", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[2]
    print("\n".join(select(argv[0], root / "pyproject.toml")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
