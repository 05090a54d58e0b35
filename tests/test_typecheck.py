"""The packages type-check with the settings committed in pyproject.toml ([tool.mypy]):
the typed wire records, ledgers and clients are only worth their annotations while a
checker holds every caller to them."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_mypy_finds_nothing():
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed: pip install -e '.[test]'")
    # The files and rules come from pyproject.toml; its cache (.mypy_cache) makes reruns fast.
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-6000:]
