"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep the converted-model cache inside the test session unless the caller chose one
    (CI sets none, so the GGUF -> checkpoint conversion is exercised there)."""
    if "FEDLEDGER_CACHE" not in os.environ:
        os.environ["FEDLEDGER_CACHE"] = str(tmp_path_factory.mktemp("fedledger-cache"))
    return Path(os.environ["FEDLEDGER_CACHE"])
