"""fedledger's Fabric chaincode, run as chaincode-as-a-service.

``shim`` speaks the chaincode protocol and imports only the Fabric protos, grpc and the
standard library. The contracts add pydantic (record validation) and
``fedledger.canonical`` (the one canonical-JSON encoder; stdlib-only), so the chaincode
image installs the fedledger distribution without its ML dependencies.
"""
