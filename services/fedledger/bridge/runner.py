"""What the host process and the standalone bridge share: a bridge run on a thread of its
own, with the org agents and the Fabric gateway it owns, and the status the host's
status API serves (:func:`fedledger.host.app.create_status_app`: ``/health``,
``/anchors``, ``/anchors/{round}``, ``/proofs``, ``/info``).

:class:`BridgeHost` is the base of :class:`fedledger.host.app.Host` (dev peer, embedded
EVM and bridge in one process) and :class:`fedledger.bridge.standalone.StandaloneBridge`
(a real peer and any JSON-RPC chain); each one's ``start()`` connects, builds the
:class:`~fedledger.bridge.service.Bridge` and hands it to :meth:`BridgeHost.run_bridge`.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from fedledger.bridge.outbox import Anchor
from fedledger.bridge.remote import RemoteAnchorAgent
from fedledger.bridge.service import Bridge
from fedledger.evm.chain import Chain
from fedledger.evm.contracts import AnchorRegistryClient
from fedledger.fabric.gateway import Gateway
from fedledger.loop import BackgroundLoop
from fedledger.web.errors import NotFound


def anchor_json(anchor: Anchor, *, leaves: bool = False) -> dict[str, Any]:
    """An outbox anchor as the status API shows it (``AnchorPublic``/``AnchorWithLeaves``)."""
    data = {
        "first_round": anchor.first_round, "last_round": anchor.last_round, "root": anchor.root,
        "status": anchor.status.value, "tx_hash": anchor.tx_hash,
        "block_number": anchor.block_number, "receipt_tx_id": anchor.receipt_tx_id,
        "signers": sorted(anchor.signatures), "attempts": anchor.attempts,
        "last_error": anchor.last_error,
        "created_at": anchor.created_at.isoformat() if anchor.created_at else None,
        "updated_at": anchor.updated_at.isoformat() if anchor.updated_at else None,
    }
    if leaves:
        data["leaves"] = anchor.leaves
    return data


class BridgeHost:
    """A running bridge and what it owns; subclasses connect in ``start()``."""

    #: The ``service`` named by ``/health``.
    service: ClassVar[str] = "bridge"

    def __init__(self) -> None:
        self.chain: Chain | None = None
        self.registry: AnchorRegistryClient | None = None
        self.bridge: Bridge | None = None
        self.agents: list[RemoteAnchorAgent] = []
        #: What ``/info`` serves (host.json for the host process).
        self.info: dict[str, Any] = {}
        self._gateway: Gateway | None = None
        self._stop = threading.Event()
        self._loop: BackgroundLoop | None = None

    def run_bridge(self, bridge: Bridge, agents: list[RemoteAnchorAgent],
                   gateway: Gateway) -> None:
        """Own ``bridge`` (and its ``agents`` and ``gateway``), and run it on a thread:
        failures (an org node down, a refusal) are logged and retried."""
        self.bridge, self.agents, self._gateway = bridge, agents, gateway
        bridge.start()
        self._loop = bridge.loop(self._stop).start()

    def stop(self) -> None:
        """Stop the bridge and close what it owns (a subclass stops the rest after)."""
        self._stop.set()
        if self.bridge is not None:
            self.bridge.stop()
        if self._loop is not None:
            self._loop.stop()
        for agent in self.agents:
            agent.close()
        if self._gateway is not None:
            self._gateway.close()

    # ------------------------------------------------------------------ status

    def health(self) -> dict[str, Any]:
        assert self.chain is not None and self.registry is not None
        return {"status": "ok", "service": self.service, "org": None,
                "chain_id": self.chain.chain_id, "block": self.chain.block_number(),
                "registry": self.registry.address,
                "gateway": self.info.get("gateway"), "rpc_url": self.info.get("rpc_url"),
                "bridge": {"running": self._loop is not None and self._loop.is_alive(),
                           "agents": [a.msp_id for a in self.agents],
                           "last_error": self.bridge.last_error if self.bridge else None}}

    def anchors(self) -> list[dict[str, Any]]:
        assert self.bridge is not None
        return [anchor_json(a) for a in self.bridge.outbox.anchors()]

    def anchor(self, round_id: int) -> Anchor:
        assert self.bridge is not None
        anchor = self.bridge.outbox.anchor_for_round(round_id)
        if anchor is None:
            raise NotFound(f"no anchor covers round {round_id} yet")
        return anchor


__all__ = ["BridgeHost", "anchor_json"]
