"""fedledger.loop.BackgroundLoop: a named daemon thread that steps, waits, wakes, stops,
and survives a failing step."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from fedledger.loop import BackgroundLoop


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_steps_on_a_named_daemon_thread_until_stopped():
    threads: list[threading.Thread] = []
    loop = BackgroundLoop(lambda: threads.append(threading.current_thread()),
                          name="test-loop", interval_s=0.01).start()
    wait_for(lambda: len(threads) >= 3)
    loop.stop()
    assert not loop.is_alive() and loop.stopping
    assert {t.name for t in threads} == {"test-loop"} and threads[0].daemon
    count = len(threads)
    time.sleep(0.05)
    assert len(threads) == count  # no step after stop


def test_wake_runs_the_next_step_before_the_interval_ends():
    steps: list[float] = []
    loop = BackgroundLoop(lambda: steps.append(time.monotonic()), name="wake",
                          interval_s=60).start()
    wait_for(lambda: len(steps) == 1)
    loop.wake()
    wait_for(lambda: len(steps) == 2, timeout=2)
    assert loop.last_woken > 0
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 2  # stop wakes the waiting loop too


def test_a_shared_wake_event_wakes_it():
    wake = threading.Event()
    steps: list[int] = []
    loop = BackgroundLoop(lambda: steps.append(1), name="shared", interval_s=60,
                          wake=wake).start()
    wait_for(lambda: len(steps) == 1)
    wake.set()
    wait_for(lambda: len(steps) == 2, timeout=2)
    loop.stop()


def test_survives_and_logs_a_failing_step(caplog):
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="fedledger.loop"):
        loop = BackgroundLoop(step, name="flaky", interval_s=0.01).start()
        wait_for(lambda: len(calls) >= 3)
        loop.stop()
    failures = [r for r in caplog.records if "flaky: step failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info[1].args == ("boom",)


def test_step_and_on_error_choose_the_next_delay():
    errors: list[Exception] = []
    calls: list[float] = []

    def step() -> float:
        calls.append(time.monotonic())
        if len(calls) % 2:
            raise ValueError("odd")
        return 0.0

    def on_error(exc: Exception) -> float:
        errors.append(exc)
        return 0.0

    loop = BackgroundLoop(step, name="delays", interval_s=60, on_error=on_error).start()
    wait_for(lambda: len(calls) >= 4, timeout=2)  # never waits the 60 s interval
    loop.stop()
    assert errors and all(isinstance(e, ValueError) for e in errors)


def test_before_runs_once_first_and_its_failure_is_logged(caplog):
    order: list[str] = []

    def before() -> None:
        order.append("before")
        raise RuntimeError("cold")

    with caplog.at_level(logging.ERROR, logger="fedledger.loop"):
        loop = BackgroundLoop(lambda: order.append("step"), name="warm", interval_s=0.01,
                              before=before).start()
        wait_for(lambda: order.count("step") >= 2)
        loop.stop()
    assert order[0] == "before" and order.count("before") == 1
    assert any("warm: preparing failed" in r.getMessage() for r in caplog.records)


def test_on_stop_unblocks_a_step_and_a_shared_stop_event_stops_it():
    release = threading.Event()
    stop = threading.Event()
    loop = BackgroundLoop(lambda: release.wait(10), name="blocking", interval_s=0.01,
                          stop_event=stop, on_stop=release.set).start()
    time.sleep(0.05)
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 2 and stop.is_set() and not loop.is_alive()


def test_run_in_the_calling_thread_and_no_second_start():
    stop = threading.Event()
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if len(calls) == 3:
            stop.set()

    BackgroundLoop(step, name="inline", interval_s=0, stop_event=stop).run()
    assert len(calls) == 3
    loop = BackgroundLoop(lambda: None, name="once", interval_s=1).start()
    with pytest.raises(RuntimeError, match="already started"):
        loop.start()
    loop.stop()
