"""configure_logging: the level from the argument, else FEDLEDGER_LOG_LEVEL, else INFO;
httpx, httpcore and uvicorn's access log held at WARNING; lines with time, level, logger."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from fedledger.logs import LEVEL_ENV, QUIET, LogLevelError, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and the quietened loggers back as pytest had them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def test_level_comes_from_the_environment_when_not_given(monkeypatch) -> None:
    monkeypatch.setenv(LEVEL_ENV, "debug")
    assert configure_logging(None) == logging.DEBUG
    assert logging.getLogger().level == logging.DEBUG


def test_the_argument_wins_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(LEVEL_ENV, "DEBUG")
    assert configure_logging("warning") == logging.WARNING
    assert logging.getLogger().level == logging.WARNING


def test_info_by_default(monkeypatch) -> None:
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    assert configure_logging() == logging.INFO


def test_an_unknown_level_is_refused(monkeypatch) -> None:
    monkeypatch.setenv(LEVEL_ENV, "chatty")
    with pytest.raises(LogLevelError) as raised:
        configure_logging()
    assert raised.value.step == "logging"


def test_http_clients_are_silent_at_info_even_at_debug(monkeypatch, capsys) -> None:
    monkeypatch.setenv(LEVEL_ENV, "DEBUG")
    configure_logging()
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/rounds/current 200")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    logging.getLogger("uvicorn.access").info("127.0.0.1 - GET /health 200")
    logging.getLogger("httpx").warning("kept")
    logging.getLogger("fedledger.orgnode.worker").info("round 3 job 7: training -> uploading")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING httpx: kept", lines[0])
    assert lines[1].endswith("INFO fedledger.orgnode.worker: round 3 job 7: training -> uploading")


def test_calling_it_twice_does_not_double_the_lines(capsys) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    logging.getLogger("fedledger.test").info("once")
    assert capsys.readouterr().err.count("once") == 1
