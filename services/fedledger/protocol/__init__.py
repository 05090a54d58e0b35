"""The typed protocol shared by the chaincode, the services, their clients and auditors:
the ledger records (`records`), the chaincode's error codes (`errors`).

It imports only the standard library, pydantic, cryptography and ``fedledger.canonical``
(the chaincode image's own dependencies): never a web framework, a ledger client or ML.
"""
