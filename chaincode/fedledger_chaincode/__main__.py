"""Run the fedledger chaincode as a service (Fabric chaincode-as-a-service).

Environment, as Fabric's CCaaS builder and its docs use them:
  CHAINCODE_SERVER_ADDRESS  host:port to listen on (e.g. 0.0.0.0:9999)
  CHAINCODE_ID              the package id the peer installed (label:hash)
  CHAINCODE_TLS_CERT, CHAINCODE_TLS_KEY   optional PEM files: serve over TLS
"""

from __future__ import annotations

import asyncio
import os
import sys


def main() -> int:
    from fedledger_chaincode.app import build_chaincode
    from fedledger_chaincode.shim.server import serve

    address = os.environ.get("CHAINCODE_SERVER_ADDRESS")
    chaincode_id = os.environ.get("CHAINCODE_ID")
    missing = [n for n, v in (("CHAINCODE_SERVER_ADDRESS", address), ("CHAINCODE_ID", chaincode_id))
               if not v]
    if missing:
        print(f"error: set {', '.join(missing)}", file=sys.stderr)
        return 2
    tls = None
    cert, key = os.environ.get("CHAINCODE_TLS_CERT"), os.environ.get("CHAINCODE_TLS_KEY")
    if cert and key:
        from fedledger_chaincode.shim.server import TLSConfig

        with open(cert, "rb") as c, open(key, "rb") as k:
            tls = TLSConfig(cert_pem=c.read(), key_pem=k.read())
    asyncio.run(serve(build_chaincode(), address, chaincode_id, tls=tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
