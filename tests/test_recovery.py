"""Crash recovery of ``fedledger up`` (issue 17's acceptance), on one supervised deployment
(two org nodes, two SISA shard-groups, the tiny model).

Each of the host (dev peer, EVM, bridge), the coordinator, an org node while it trains, an
org node after it submitted and before it attested, and the host again while the bridge
waits for its anchor's confirmation, is killed with SIGKILL mid-round. The supervisor restarts it; the round
goes final and anchored with every record on the ledger once, one anchor per round on
the chain, and every upload in the blob store. Then the whole deployment is stopped and
started again on the same folder: rounds, versions, datasets and deletion requests are
there, a proof package and a deletion bundle issued before the restarts verify against
the restarted chain, and a deletion request that was replaying when it stopped completes.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fedledger.audit.bundle import verify_bundle_with_rpc
from fedledger.audit.verify import verify_with_rpc
from fedledger.clients import ClientError
from fedledger.evm.chain import Chain
from fedledger.evm.config import EvmConfig
from fedledger.evm.connection import connect
from fedledger.evm.contracts import AnchorRegistryClient
from fedledger.fabric.gateway import Gateway
from fedledger.fabric.identity import load_signing_identity
from fedledger.launcher import Deployment, experiment_config
from fedledger.ledgers import ConsortiumLedger
from fedledger.orgnode.datasets import select_training
from fedledger.protocol.orgnode_api import DeletionCreate
from fedledger.protocol.records import Attestation
from tests.test_unlearning import node_config, org_datasets

ORGS = ("Org1", "Org2")
MSPS = sorted(f"{o}MSP" for o in ORGS)
SHARDS = 2
T = TypeVar("T")

missing = [m for m in ("fedledger.coordinator.app", "fedledger.orgnode.app")
           if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.skipif(bool(missing), reason=f"not written yet: {missing}"),
              pytest.mark.timeout(1500)]


def deployment_at(root: Path) -> Deployment:
    # confirmations=2: an anchor waits in "prepared" until another block is mined, which
    # gives the test a window between sending an anchor and its receipt.
    d = Deployment(root, len(ORGS), quick=True, poll_s=0.3, confirmations=2,
                   experiment=experiment_config(quick=True, local_steps=2, shards=SHARDS))
    d.start()
    d.supervise()
    return d


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("recovery") / "up"


@pytest.fixture(scope="module")
def deployment(root: Path) -> Iterator[Deployment]:
    d = deployment_at(root)
    try:
        d.register_demo_datasets(max_samples=40)
        yield d
    finally:
        d.stop()


class Miner:
    """Mines a block on the embedded chain whenever asked (a live chain's other traffic),
    so that anchors reach their second confirmation; quiet while the host is down."""

    def __init__(self, d: Deployment) -> None:
        self.d = d
        self.on = True

    def __call__(self) -> None:
        if not self.on or not self.d.host_info:
            return
        try:
            httpx.post(self.d.host_info["rpc_url"], timeout=2,
                       json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []})
        except httpx.HTTPError:
            pass


def wait_for(what: str, probe: Callable[[], T | None], d: Deployment, timeout: float = 300,
             every: float = 0.3, miner: Miner | None = None) -> T:
    """``probe()`` until it returns something; services may restart meanwhile, but one
    the supervisor gave up on fails the test at once."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (ClientError, httpx.HTTPError) as exc:  # a service is restarting
            last = exc
        else:
            if last:
                return last
        failed = {n: s.last_log for n, s in d.services.items() if s.state == "failed"}
        assert not failed, f"the supervisor gave up on {failed}"
        if miner is not None:
            miner()
        time.sleep(every)
    logs = "\n".join(f"--- {n}\n{d.log_tail(n, 30)}" for n in d.services)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{logs}")


def open_round(d: Deployment) -> int:
    with d.coordinator_client() as client:
        return client.open_round(deadline_s=900, quorum=len(ORGS)).round_id


def round_status(d: Deployment, round_id: int) -> str:
    with d.coordinator_client(timeout=5) as client:
        status = client.get_round(round_id).status
    assert status != "failed", f"round {round_id} failed"
    return status


def job_status(d: Deployment, org: str, round_id: int) -> str | None:
    with d.org_client(org, timeout=5) as client:
        job = client.job_of_round(round_id)
    return job.status if job is not None else None


def kill_and_recover(d: Deployment, name: str) -> float:
    """SIGKILL ``name``; wait until the supervisor has it healthy again. Returns seconds."""
    killed = time.time()
    d.kill9(name)
    d.wait_healthy(name, restarted_after=killed, timeout_s=180)
    return time.time() - killed


def consortium(d: Deployment) -> tuple[Gateway, ConsortiumLedger]:
    info = d.host_info
    org = info["orgs"]["Org1"]
    gateway = Gateway.connect(info["gateway"], load_signing_identity(Path(org["user_msp"]), "Org1MSP"),
                              tls_root_cert=Path(info["tls_ca_cert"]).read_bytes(),
                              server_name=info["server_name"])
    return gateway, ConsortiumLedger(gateway.network("consortium").contract("fedledger",
                                                                            "consortium"))


def registry(d: Deployment) -> AnchorRegistryClient:
    info = d.host_info
    chain: Chain = connect(EvmConfig(backend="rpc", rpc_url=info["rpc_url"],
                                     chain_id=info["chain_id"]))
    return AnchorRegistryClient(chain, info["registry"])


def finished(d: Deployment, round_id: int, miner: Miner) -> None:
    """The round goes final and anchored; then every record of it is there exactly once."""
    wait_for(f"round {round_id} final", lambda: round_status(d, round_id) == "final", d,
             miner=miner)

    def recorded() -> bool:
        with d.host_client(timeout=5) as host:
            anchors = host.anchors()
        covering = [a for a in anchors if a.first_round <= round_id <= a.last_round]
        assert len(covering) <= 1, covering  # never a second anchor for a round
        return bool(covering) and covering[0].status == "recorded"

    wait_for(f"round {round_id} anchored", recorded, d, miner=miner)
    gateway, ledger = consortium(d)
    try:
        submissions = ledger.list_submissions(round_id)
        attestations = ledger.list_attestations(round_id)
        versions = ledger.list_model_versions(round_id)
        receipts = [r for r in ledger.list_anchor_receipts()
                    if r.first_round <= round_id <= r.last_round]
    finally:
        gateway.close()
    assert sorted(s.org for s in submissions) == MSPS  # each org's update once
    assert sorted(a.org for a in attestations) == MSPS
    assert len({a.aggregate_digest for a in attestations}) == 1
    assert len(versions) == 1 and len(receipts) == 1
    on_chain = [a for a in registry(d).anchors() if a.first_round <= round_id <= a.last_round]
    assert len(on_chain) == 1, on_chain  # anchored once on the chain
    blob_dir = Path(node_config_of(d, "coordinator")["blob_dir"])
    assert {s.update_hash for s in submissions} <= {p.name for p in blob_dir.iterdir()}


def node_config_of(d: Deployment, service: str) -> dict[str, Any]:
    import json

    return json.loads(d.services[service].config.read_text())


def forget_from_shard(d: Deployment, org: str, shard: int, count: int) -> DeletionCreate:
    datasets = org_datasets(d, org)
    trained = [s for _, s in select_training(datasets, d.experiment.data, shard=shard,
                                             shards=SHARDS, key=node_config(d, org)["shard_key"])]
    assert len(trained) >= count
    return DeletionCreate(dataset_id=datasets[0][0],
                          sample_ids=sorted(s.sample_id for s in trained[:count]),
                          legal_basis="GDPR Art. 17(1)(b)", requester=f"ticket shard {shard}")


def deletion_status(d: Deployment, org: str, request_id: str) -> str:
    with d.org_client(org, timeout=10) as client:
        status = client.deletion(request_id).status
    assert status != "failed", f"deletion {request_id} failed"
    return status


def test_every_crash_recovers_and_a_restart_keeps_every_proof(deployment: Deployment,
                                                               root: Path) -> None:
    d = deployment
    miner = Miner(d)
    recoveries: dict[str, float] = {}

    # -- an org node killed while it trains (shard-group 0, step 1)
    r1 = open_round(d)
    wait_for("Org1 training", lambda: job_status(d, "Org1", r1) == "training", d, every=0.05)
    recoveries["org1 training"] = kill_and_recover(d, "org1")
    finished(d, r1, miner)

    # -- an org node killed on its way to attest (shard-group 1, step 1): its update is
    # on the ledger; what is left of its job is to vote, recompute the aggregate and attest
    # (waiting for the round to close too left a window too short to hit on a busy machine)
    r2 = open_round(d)
    wait_for("Org2 submitted", lambda: job_status(d, "Org2", r2) == "submitted", d,
             every=0.05)
    recoveries["org2 submitted"] = kill_and_recover(d, "org2")
    finished(d, r2, miner)

    # -- a deletion (shard-group 0): the coordinator is killed during its replay round
    with d.org_client("Org1") as client:
        first = client.file_deletion(forget_from_shard(d, "Org1", 0, 2))
    r3 = wait_for("the replay round", lambda: _round_after(d, r2), d)

    def some_submitted() -> bool:
        with d.coordinator_client(timeout=5) as client:
            return bool(client.get_round(r3).submissions)

    wait_for(f"a first upload in round {r3}", some_submitted, d, every=0.05)
    recoveries["coordinator"] = kill_and_recover(d, "coordinator")
    finished(d, r3, miner)
    wait_for("the deletion completed",
             lambda: deletion_status(d, "Org1", first.request_id) == "completed", d, miner=miner)

    # -- the host (dev peer, EVM, bridge) killed while the orgs train
    r4 = open_round(d)
    wait_for("Org2 training", lambda: job_status(d, "Org2", r4) in ("training", "uploading"), d,
             every=0.05)
    recoveries["host training"] = kill_and_recover(d, "host")
    finished(d, r4, miner)

    # proofs issued now must verify after every restart below
    info = dict(d.host_info)
    gateway, ledger = consortium(d)
    try:
        attestation: Attestation = ledger.list_attestations(r1)[0]
    finally:
        gateway.close()
    with d.host_client() as host:
        package = host.proof({"kind": "attestation", "round_id": r1,
                              "record": attestation.model_dump(mode="json")})
    with d.org_client("Org1") as client:
        bundle = wait_for("the deletion's proof bundle",
                          lambda: client.anchored_proof(first.request_id), d, miner=miner)
    assert verify_with_rpc(package, info["rpc_url"], info["registry"]).ok
    assert verify_bundle_with_rpc(bundle, info["rpc_url"], info["registry"]).ok

    # -- the host killed between sending an anchor and its receipt
    miner.on = False
    r5 = open_round(d)
    wait_for(f"round {r5} final", lambda: round_status(d, r5) == "final", d)

    def anchor_sent() -> bool:
        with d.host_client(timeout=5) as host:
            found = host.anchor_for(r5)
        return found is not None and found.status in ("prepared", "confirmed")

    wait_for(f"the anchor of round {r5} sent", anchor_sent, d, every=0.05)
    recoveries["host anchoring"] = kill_and_recover(d, "host")
    miner.on = True
    finished(d, r5, miner)

    # -- a deletion (shard-group 1) replaying when the whole deployment stops
    with d.org_client("Org2") as client:
        second = client.file_deletion(forget_from_shard(d, "Org2", 1, 2))
    wait_for("the second deletion replaying",
             lambda: deletion_status(d, "Org2", second.request_id) == "replaying", d,
             every=0.1, miner=miner)
    with d.coordinator_client() as client:
        rounds_before = {r.round_id: r.status for r in client.rounds()}
        versions_before = {v.version_id for v in client.models()}
    with d.org_client("Org1") as client:
        datasets_before = {ds.dataset_id for ds in client.datasets()}
    tokens = dict(d.tokens)
    d.stop()

    again = deployment_at(root)
    try:
        assert again.tokens == tokens and again.host_info["registry"] == info["registry"]
        with again.coordinator_client() as client:
            rounds_after = {r.round_id: r.status for r in client.rounds()}
            assert {r for r, s in rounds_before.items() if s == "final"} <= set(rounds_after)
            assert versions_before <= {v.version_id for v in client.models()}
        with again.org_client("Org1") as client:
            assert datasets_before <= {ds.dataset_id for ds in client.datasets()}
            assert client.deletion(first.request_id).status == "completed"
        # the proofs handed out before verify against the restarted chain
        info = again.host_info
        assert verify_with_rpc(package, info["rpc_url"], info["registry"]).ok
        assert verify_bundle_with_rpc(bundle, info["rpc_url"], info["registry"]).ok
        # the deletion that was replaying completes
        resumed = Miner(again)
        wait_for("the second deletion completed",
                 lambda: deletion_status(again, "Org2", second.request_id) == "completed",
                 again, timeout=400, miner=resumed)
        # a scrape of the coordinator parses and shows the rounds' phases
        text = httpx.get(again.url("coordinator") + "/metrics", timeout=10).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        phases = {s.labels["phase"] for s in families["fedledger_round_phase_seconds"].samples
                  if s.name.endswith("_count") and s.value > 0}
        assert "open" in phases, phases
    finally:
        again.stop()
    print("recovery seconds:", {k: round(v, 1) for k, v in recoveries.items()})


def _round_after(d: Deployment, round_id: int) -> int | None:
    with d.coordinator_client(timeout=5) as client:
        later = [r.round_id for r in client.rounds() if r.round_id > round_id]
    return min(later) if later else None


