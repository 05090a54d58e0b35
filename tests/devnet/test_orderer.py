"""Block cutting by the channel's orderer settings, with Fabric's rules: MaxMessageCount,
PreferredMaxBytes (an oversized envelope alone), BatchTimeout from a batch's first
envelope, AbsoluteMaxBytes refused at submit; the settings read from configtx.yaml."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from fedledger.devnet.orderer import (
    BlockCutter,
    OrdererRefusal,
    OrdererSettings,
    format_duration,
    parse_byte_size,
    parse_duration,
)

CONFIGTX = Path(__file__).resolve().parents[2] / "deploy" / "fabric" / "configtx.yaml"


# -- settings ------------------------------------------------------------------------------

def test_the_deployment_settings_are_the_configtx_values():
    deployed = OrdererSettings.from_configtx(CONFIGTX)
    assert deployed == OrdererSettings.deployment()
    assert deployed == OrdererSettings(batch_timeout_s=0.25, max_message_count=100,
                                       preferred_max_bytes=512 * 1024,
                                       absolute_max_bytes=99 * 1024 * 1024)
    # Every channel profile inherits the defaults (YAML merge keys).
    for profile in ("ConsortiumChannel", "Org1PrivateChannel"):
        assert OrdererSettings.from_configtx(CONFIGTX, profile) == deployed


def test_fast_settings_differ_only_in_timing():
    fast = OrdererSettings.fast()
    assert fast.batch_timeout_s == 0.002
    assert dataclasses.replace(fast, batch_timeout_s=0.25, max_message_count=100) == \
        OrdererSettings.deployment()


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("2s", 2.0), ("1m30s", 90.0), ("1.5s", 1.5), ("500us", 0.0005),
    ("1h", 3600.0), ("0", 0.0),
])
def test_durations_in_go_syntax(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "250", "2 s", "1d", "ms", "1.2.3s"])
def test_invalid_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(0.25, "250ms"), (2, "2s"), (0.002, "2ms"),
                                               (1.5, "1500ms"), (0.0005, "500us")])
def test_durations_format_back(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "size"), [
    ("512 KB", 512 * 1024), ("99 MB", 99 * 1024 * 1024), ("10m", 10 * 1024 * 1024),
    ("2kb", 2048), ("1G", 1024**3), ("4096", 4096), (4096, 4096),
])
def test_byte_sizes_in_fabric_syntax(value, size):
    assert parse_byte_size(value) == size


@pytest.mark.parametrize("value", ["512 TB", "KB", "1.5 MB", "4 GB", -1])
def test_invalid_byte_sizes_are_refused(value):
    with pytest.raises(ValueError):
        parse_byte_size(value)


def test_inconsistent_settings_are_refused():
    with pytest.raises(ValueError):   # preferred over absolute, as channelconfig refuses
        OrdererSettings(batch_timeout_s=1, max_message_count=10, preferred_max_bytes=2048,
                        absolute_max_bytes=1024)
    for field, value in (("batch_timeout_s", 0), ("max_message_count", 0),
                         ("absolute_max_bytes", 0)):
        with pytest.raises(ValueError):
            dataclasses.replace(OrdererSettings.deployment(), **{field: value})


def test_configtx_without_an_orderer_section_is_refused(tmp_path):
    path = tmp_path / "configtx.yaml"
    path.write_text("Organizations: []\n")
    with pytest.raises(ValueError):
        OrdererSettings.from_configtx(path)
    with pytest.raises(ValueError):
        OrdererSettings.from_configtx(CONFIGTX, "NoSuchProfile")


# -- cutting -------------------------------------------------------------------------------

def settings(**overrides) -> OrdererSettings:
    return dataclasses.replace(OrdererSettings.fast(), **overrides)


async def cut(settings: OrdererSettings, sizes: list[int], *, wait: float = 0.05,
              together: bool = True) -> list[list[int]]:
    """Order envelopes of ``sizes`` bytes (all at once, or each after the last block);
    returns the blocks as lists of envelope sizes."""
    blocks: list[list[int]] = []
    committed = asyncio.Event()

    async def commit(batch: list[bytes]) -> None:
        blocks.append([len(e) for e in batch])
        committed.set()

    cutter = BlockCutter(commit, settings)
    cutter.start()
    try:
        for i, size in enumerate(sizes):
            cutter.order(bytes(size), f"tx{i}")
            if not together:
                committed.clear()
                await asyncio.wait_for(committed.wait(), 5)
        await asyncio.sleep(wait)
    finally:
        await cutter.stop()
    return blocks


def test_envelopes_within_the_batch_timeout_land_in_one_block():
    async def run() -> tuple[list[list[int]], float]:
        done: asyncio.Future = asyncio.get_running_loop().create_future()

        async def commit(batch: list[bytes]) -> None:
            done.set_result((batch, time.monotonic()))

        cutter = BlockCutter(commit, OrdererSettings.deployment())
        cutter.start()
        start = time.monotonic()
        for i in range(40):   # spread over 100 ms, inside the 250 ms timeout
            cutter.order(b"x" * 100, f"tx{i}")
            if i % 10 == 9:
                await asyncio.sleep(0.025)
        batch, at = await asyncio.wait_for(done, 5)
        await cutter.stop()
        return batch, at - start

    batch, elapsed = asyncio.run(run())
    assert len(batch) == 40
    # Cut by the timer of the first envelope: not before 250 ms, not much after.
    assert 0.24 <= elapsed < 1.0


def test_max_message_count_splits_blocks():
    blocks = asyncio.run(cut(settings(max_message_count=3), [10] * 7))
    assert blocks == [[10, 10, 10], [10, 10, 10], [10]]


def test_preferred_max_bytes_splits_blocks():
    # 40 + 40 = 80 fits 100 bytes; a third would make 120: the pending two are cut first.
    blocks = asyncio.run(cut(settings(preferred_max_bytes=100), [40, 40, 40, 40, 40]))
    assert blocks == [[40, 40], [40, 40], [40]]


def test_an_envelope_over_preferred_max_bytes_gets_a_block_of_its_own():
    blocks = asyncio.run(cut(settings(preferred_max_bytes=100), [30, 30, 150, 30]))
    assert blocks == [[30, 30], [150], [30]]


def test_the_batch_timeout_runs_from_the_first_envelope_of_the_batch():
    async def run() -> list[float]:
        times: list[float] = []

        async def commit(batch: list[bytes]) -> None:
            times.append(time.monotonic() - start)

        cutter = BlockCutter(commit, settings(batch_timeout_s=0.2))
        cutter.start()
        start = time.monotonic()
        cutter.order(b"first", "tx0")
        await asyncio.sleep(0.15)
        cutter.order(b"second", "tx1")   # does not restart the timer
        await asyncio.sleep(0.3)
        await cutter.stop()
        return times

    times = asyncio.run(run())
    assert len(times) == 1 and 0.19 <= times[0] < 0.3


def test_an_envelope_over_absolute_max_bytes_is_refused_and_not_ordered():
    async def run() -> tuple[OrdererRefusal, list[list[int]]]:
        blocks: list[list[int]] = []

        async def commit(batch: list[bytes]) -> None:
            blocks.append([len(e) for e in batch])

        cutter = BlockCutter(commit, settings(preferred_max_bytes=100, absolute_max_bytes=200))
        cutter.start()
        with pytest.raises(OrdererRefusal) as info:
            cutter.order(bytes(201), "too-big")
        cutter.order(bytes(200), "largest")
        await asyncio.sleep(0.05)
        await cutter.stop()
        return info.value, blocks

    refusal, blocks = asyncio.run(run())
    assert refusal.status == "BAD_REQUEST" and refusal.tx_id == "too-big"
    assert blocks == [[200]]


def test_a_stopped_orderer_refuses_as_unavailable():
    async def run() -> OrdererRefusal:
        cutter = BlockCutter(lambda batch: asyncio.sleep(0), OrdererSettings.fast())
        with pytest.raises(OrdererRefusal) as info:
            cutter.order(b"x", "tx")
        return info.value

    assert asyncio.run(run()).status == "SERVICE_UNAVAILABLE"
