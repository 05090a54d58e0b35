"""Chaincode events through the gateway: commit order, resuming from a checkpoint, and
replay from block 0 (the channel's config block, which holds no events)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import dataset_record


@pytest.fixture(scope="module")
def org1(devnet):
    with devnet.connect("Org1") as gateway:
        gateway.network("org1-private").contract("fedledger", "private").submit("Init")
        yield gateway


def take(events, count: int) -> list:
    received = []
    for event in events:
        received.append(event)
        if len(received) == count:
            break
    return received


def test_events_arrive_in_commit_order_and_resume_after_a_checkpoint(org1, devnet):
    network = org1.network("org1-private")
    contract = network.contract("fedledger", "private")
    # From the current height: no race with a listener that has not subscribed yet.
    start = devnet.network.peer.channels["org1-private"].ledger.height
    with ThreadPoolExecutor(1) as pool, network.chaincode_events("fedledger", start_block=start) as events:
        listening = pool.submit(take, events, 6)
        # Three at once land in one block, three one by one in later blocks.
        submitted = [contract.submit_async("RegisterDataset", dataset_record(f"ev-{i}"))
                     for i in range(3)]
        statuses = [s.status() for s in submitted]
        for i in range(3, 6):
            submitted.append(contract.submit_async("RegisterDataset", dataset_record(f"ev-{i}")))
            statuses.append(submitted[-1].status())
        received = listening.result(timeout=30)

    commit_order = sorted(range(6), key=lambda i: (statuses[i].block_number,
                                                   [e.tx_id for e in received].index(submitted[i].tx_id)))
    assert [e.tx_id for e in received] == [submitted[i].tx_id for i in commit_order]
    assert all(e.event_name == "DatasetRegistered" for e in received)
    assert [e.block_number for e in received] == sorted(e.block_number for e in received)
    assert all(e.block_number == statuses[[s.tx_id for s in submitted].index(e.tx_id)].block_number
               for e in received)
    assert json.loads(received[0].payload)["dataset_id"].startswith("ev-")

    # A listener that stopped after event 2 resumes exactly at event 3.
    checkpoint = received[2]
    with network.chaincode_events("fedledger", start_block=checkpoint.block_number,
                                  after_tx_id=checkpoint.tx_id) as resumed:
        again = take(resumed, 3)
    assert [e.tx_id for e in again] == [e.tx_id for e in received[3:]]


def test_replay_from_block_zero_passes_over_the_config_block(org1, devnet):
    network = org1.network("org1-private")
    network.contract("fedledger", "private").submit("RegisterDataset", dataset_record("ev-replay"))
    with network.chaincode_events("fedledger", start_block=0) as events:
        from_zero = take(events, 2)
    with network.chaincode_events("fedledger", start_block=1) as events:
        from_one = take(events, 2)
    assert [e.tx_id for e in from_zero] == [e.tx_id for e in from_one]
    assert all(e.block_number >= 1 for e in from_zero)


def test_events_of_other_channels_members_are_refused(devnet):
    from fedledger.fabric.errors import FabricError

    with devnet.connect("Org2") as gateway:
        events = gateway.network("org1-private").chaincode_events("fedledger", start_block=0)
        with pytest.raises(FabricError) as info:
            take(events, 1)
        assert (info.value.step, info.value.grpc_code) == ("events", "PERMISSION_DENIED")
        unknown = gateway.network("no-such-channel").chaincode_events("fedledger")
        with pytest.raises(FabricError) as info:
            take(unknown, 1)
        assert info.value.grpc_code == "PERMISSION_DENIED"
