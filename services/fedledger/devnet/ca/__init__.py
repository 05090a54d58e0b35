"""Dev CA: crypto material for an N-org network, in cryptogen's folder layout.

The files are what ``cryptogen generate`` writes for Fabric 2.5 (NodeOUs enabled,
ECDSA P-256 keys named ``priv_sk``), so the same folders work for the embedded dev
peer and for a real Fabric network started from them::

    peerOrganizations/org1.example.com/
        ca/{ca.org1.example.com-cert.pem, priv_sk}
        tlsca/{tlsca.org1.example.com-cert.pem, priv_sk}
        msp/{cacerts/, tlscacerts/, config.yaml}
        peers/peer0.org1.example.com/{msp/, tls/{ca.crt, server.crt, server.key}}
        users/{Admin,User1}@org1.example.com/{msp/, tls/{ca.crt, client.crt, client.key}}
        services/org1-node/tls/{ca.crt, server.crt, server.key}   (write_service_tls)
    ordererOrganizations/example.com/
        ca/ tlsca/ msp/ orderers/orderer.example.com/{msp/, tls/} users/Admin@example.com/

The layout follows a cryptogen config (:class:`CryptoConfig`, the same YAML file
``cryptogen generate --config`` reads): ``write_crypto_config(config, root)`` or
``python -m fedledger.devnet.ca --config crypto-config.yaml --output DIR``;
``write_network_crypto`` writes :func:`default_crypto_config` for N orgs, which for
Org1..Org3 is ``deploy/fabric/crypto-config.yaml`` (tests/deploy compares the result with
cryptogen's rules file by file).

Writing is never destructive: an organisation whose folder already holds files keeps its
CAs and identities (like ``cryptogen extend``, only missing nodes and users are added),
so identities that a ledger already recorded stay valid across restarts (delete the
folder to get fresh material).

The package: :mod:`.authority` (keys and certificates), :mod:`.crypto_config` (the
cryptogen config models and their rendering), :mod:`.layout` (the folder layout, written
and read back), ``__main__`` (the command line).
"""

from fedledger.devnet.ca.authority import NODE_OUS, CertAuthority, load_ca, new_ca
from fedledger.devnet.ca.crypto_config import (
    ORDERER_MSP_ID,
    ORDERER_ORG,
    CryptoConfig,
    OrgSpec,
    default_crypto_config,
    render_nodes,
)
from fedledger.devnet.ca.layout import (
    NetworkCrypto,
    NodeCrypto,
    OrgCrypto,
    UserCrypto,
    issue_identity,
    load_network_crypto,
    write_crypto_config,
    write_network_crypto,
    write_service_tls,
)

__all__ = [
    "NODE_OUS", "ORDERER_MSP_ID", "ORDERER_ORG", "CertAuthority", "CryptoConfig", "NetworkCrypto", "NodeCrypto",
    "OrgCrypto", "OrgSpec", "UserCrypto", "default_crypto_config", "issue_identity", "load_ca",
    "load_network_crypto", "new_ca", "render_nodes", "write_crypto_config", "write_network_crypto",
    "write_service_tls",
]
