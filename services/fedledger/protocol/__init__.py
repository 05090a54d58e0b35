"""The typed protocol shared by the chaincode, the services, their clients and auditors.

Stdlib-only (plus ``fedledger.canonical``), so the chaincode image imports it without
the ML or web dependencies.
"""
