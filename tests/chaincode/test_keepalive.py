"""HTTP/2 keepalive between the peer and the chaincode server (issue 15, defect 1).

A Fabric peer pings its CCaaS connection every 60 s, also on a quiet stream; a chaincode
server with gRPC's default ping policy answers the third early ping with GOAWAY
ENHANCE_YOUR_CALM "too_many_pings" and the shim stream ends. The dev peer pings the same
way, here every PING_S seconds, so an idle stream of a few seconds shows the difference.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fedledger.devnet.chaincode import KEEPALIVE_INTERVAL_S, ChaincodeClient
from fedledger.devnet.peer import DevPeer, PeerSettings
from fedledger.fabric.msp import MSPManager
from fedledger_chaincode.shim import ChaincodeServer
from fedledger_chaincode.shim.server import SERVER_KEEPALIVE, KeepalivePolicy
from tests.chaincode.test_shim import CC_NAME, FakeSimulator, KVChaincode, call, run

# gRPC core's server defaults (doc/keepalive.md): what the server had before the fix.
GRPC_DEFAULT_KEEPALIVE = KeepalivePolicy(
    permit_without_calls=False, min_ping_interval_s=300.0, max_ping_strikes=2,
    ping_interval_s=7200.0, ping_timeout_s=20.0)

PING_S = 1.5      # the dev peer's keepalive interval in this test (a real peer: 60 s)
# gRPC's default server counts a strike from the 2nd ping on and sends GOAWAY at the
# 3rd strike (max_ping_strikes=2), i.e. at the 4th ping, ~4 * PING_S after connecting.
IDLE_S = 6 * PING_S


def test_the_server_accepts_a_fabric_peers_keepalive() -> None:
    # The peer pings with no stream open too, every 60 s: the server must permit both,
    # with room for timer jitter.
    assert KEEPALIVE_INTERVAL_S == 60.0
    assert SERVER_KEEPALIVE.permit_without_calls
    assert SERVER_KEEPALIVE.min_ping_interval_s <= KEEPALIVE_INTERVAL_S / 10
    assert SERVER_KEEPALIVE.min_ping_interval_s <= PING_S   # and the dev peer's test pings
    options = dict(SERVER_KEEPALIVE.grpc_options())
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 1000
    assert options["grpc.http2.max_ping_strikes"] == 2


def test_an_idle_stream_survives_the_peers_keepalive_pings(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = ChaincodeServer(KVChaincode(), "127.0.0.1:0", CC_NAME)
        # The control: the same server with gRPC's default ping policy must drop its
        # stream in the same idle time, which shows the pings really flow.
        control = ChaincodeServer(KVChaincode(), "127.0.0.1:0", CC_NAME,
                                  keepalive=GRPC_DEFAULT_KEEPALIVE)
        await server.start()
        await control.start()
        # The dev peer dials the chaincode with the keepalive interval of its settings.
        peer = DevPeer(PeerSettings(
            ledger_dir=tmp_path / "ledgers", channels=[], peer_identities={},
            chaincode_addresses={CC_NAME: f"127.0.0.1:{server.port}"},
            chaincode_keepalive=PING_S), MSPManager([]))
        control_client = ChaincodeClient(f"127.0.0.1:{control.port}", CC_NAME,
                                         keepalive_interval=PING_S)
        try:
            await peer.start()
            client = peer.chaincodes[CC_NAME]
            assert client.keepalive_interval == PING_S
            await control_client.connect()
            sim = FakeSimulator()
            assert (await call(client, sim, "put", "a", "1")).response.status == 200
            assert (await call(control_client, sim, "put", "a", "1")).response.status == 200

            await asyncio.sleep(IDLE_S)     # no data either way, only pings

            assert not control_client.connected        # GOAWAY too_many_pings
            assert client.connected
            res = await call(client, sim, "get", "a")
            assert (res.response.status, res.response.payload) == (200, b"1")
            assert server.connections == 1             # the same stream, no re-dial
            # without the fix, the next transaction pays a reconnect
            assert (await call(control_client, sim, "get", "a")).response.status == 200
            assert control.connections == 2
        finally:
            await peer.stop()
            await control_client.close()
            await server.stop(0)
            await control.stop(0)
    run(scenario)
