"""The host process of ``fedledger up``: the embedded Fabric dev peer (+ chaincode), the
embedded EVM served as JSON-RPC, the AnchorRegistry, and the bridge with remote org
agents. ``python -m fedledger.host --config host-config.json``; see
:mod:`fedledger.host.settings` for the config and :mod:`fedledger.host.app` for what it
writes (``host.json``) and serves (``/health``, ``/anchors``)."""
