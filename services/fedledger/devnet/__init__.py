"""The embedded development network: a dev peer that speaks Fabric's Gateway, chaincode
and deliver protocols (`peer`, `network`), its orderer, ledger and validator, the dev CA
that writes cryptogen's folder layout (`ca`), and the endorsement policies it evaluates.

`fedledger.fabric` is the client and never imports this package; the dev network uses the
client's MSP, identity and message builders, as a real peer and a real client share protos.
"""
