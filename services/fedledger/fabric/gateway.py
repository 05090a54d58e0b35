"""Fabric Gateway client: the same calls as the official fabric-gateway clients.

    with Gateway.connect("127.0.0.1:7051", identity, tls_root_cert=ca_pem) as gateway:
        contract = gateway.network("consortium").contract("fedledger", "consortium")
        result = contract.submit("OpenRound", round_json)      # endorse, submit, wait commit
        rounds = contract.evaluate("ListRounds")

Step by step, with the signing done elsewhere (an HSM, an offline machine) as in
fabric-gateway's off-line signing flow: each step hands out ``bytes()`` and a SHA-256
``digest()`` to sign, and the gateway takes the bytes back with the signature:

    proposal = contract.new_proposal("OpenRound", round_json)
    proposal = gateway.new_signed_proposal(proposal.bytes(), sign(proposal.digest()))
    transaction = proposal.endorse()
    transaction = gateway.new_signed_transaction(transaction.bytes(), sign(transaction.digest()))
    commit = transaction.submit()
    commit = gateway.new_signed_commit(commit.bytes(), sign(commit.digest()))
    commit.committed()

A gateway connected with a bare :class:`Identity` (no key) can only work this way.

The pieces, one concept a module: :mod:`.rpc` (the gateway calls and their errors),
:mod:`.proposal` (Proposal -> Transaction -> SubmittedTransaction), :mod:`.events`
(chaincode events); this module connects and holds Gateway, Network and Contract, and
re-exports the rest.

It works against any Fabric 2.4+ peer's Gateway service and against the embedded dev
peer. A submit returns only after the transaction committed as VALID; otherwise it
raises :class:`CommitError` carrying Fabric's validation code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2

from fedledger.fabric import protos
from fedledger.fabric.events import ChaincodeEvent, ChaincodeEvents
from fedledger.fabric.identity import Identity, SigningIdentity
from fedledger.fabric.proposal import Proposal, SubmittedTransaction, Transaction
from fedledger.fabric.rpc import (
    DEFAULT_TIMEOUTS,
    VALID,
    GatewayClient,
    Status,
    error_details,
    validation_code_name,
)

#: First and largest wait (ms) before the channel tries a lost peer again.
RECONNECT_BACKOFF_MS = (200, 2000)


def _as_bytes(arg: Any) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode("utf-8")
    raise TypeError(f"transaction arguments are str or bytes, not {type(arg).__name__}")


class Gateway(GatewayClient):
    """A connection to one gateway peer, acting as one identity; with a
    :class:`SigningIdentity` it signs every step itself, with a bare :class:`Identity`
    the caller signs each step's digest (``new_signed_proposal`` and its siblings)."""

    @classmethod
    def connect(cls, endpoint: str, identity: SigningIdentity | Identity, *,
                tls_root_cert: bytes | None = None, server_name: str | None = None,
                timeouts: Mapping[str, float] | None = None) -> Gateway:
        """Connect to ``host:port``; with ``tls_root_cert`` (PEM) over TLS, naming the
        peer's certificate host with ``server_name`` when it differs from the endpoint."""
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", 100 * 1024 * 1024),
            # Calls fail fast while the channel waits to reconnect; gRPC's default backoff
            # grows to 120 s, so a peer back after a restart would stay unreachable that
            # long. Capped at 2 s, a restarted peer is used again within about 2 s.
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
            ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls_root_cert is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=tls_root_cert)
            channel = grpc.secure_channel(endpoint, credentials, options=options)
        else:
            channel = grpc.insecure_channel(endpoint, options=options)
        return cls(channel, identity, timeouts)

    def network(self, channel_id: str) -> Network:
        return Network(self, channel_id)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- signatures made elsewhere (fabric-gateway's NewSignedProposal and siblings)

    def new_signed_proposal(self, data: bytes, signature: bytes) -> Proposal:
        """The proposal of ``data`` (a :meth:`Proposal.bytes`) signed with ``signature``
        (over its :meth:`Proposal.digest`), ready to evaluate or endorse."""
        proposed = protos.proposed_transaction_from_bytes(data)
        channel_id, chaincode = protos.proposal_target(proposed.proposal)
        proposed.proposal.signature = signature
        return Proposal(self, channel_id, chaincode, proposed)

    def new_signed_transaction(self, data: bytes, signature: bytes) -> Transaction:
        """The transaction of ``data`` (a :meth:`Transaction.bytes`) signed with
        ``signature`` (over its :meth:`Transaction.digest`), ready to submit."""
        prepared = protos.prepared_transaction_from_bytes(data)
        _, channel_id = protos.envelope_payload_header(prepared.envelope)
        prepared.envelope.signature = signature
        return Transaction(self, channel_id, prepared.transaction_id, prepared.envelope)

    def new_signed_commit(self, data: bytes, signature: bytes) -> SubmittedTransaction:
        """The commit-status request of ``data`` (a :meth:`SubmittedTransaction.bytes`)
        signed with ``signature``; its ``result`` is unknown here (empty)."""
        signed = protos.signed_commit_status_request_from_bytes(data)
        request = protos.parse_commit_status_request(signed)
        signed.signature = signature
        return SubmittedTransaction(self, request.channel_id, request.transaction_id, b"", signed)


class Network:
    """One channel seen through a gateway."""

    def __init__(self, gateway: Gateway, channel_id: str) -> None:
        self.gateway = gateway
        self.channel_id = channel_id

    def contract(self, chaincode: str, contract_name: str | None = None) -> Contract:
        return Contract(self, chaincode, contract_name)

    def chaincode_events(self, chaincode: str, *, start_block: int | None = None,
                         after_tx_id: str | None = None) -> ChaincodeEvents:
        """Events of committed VALID transactions, in commit order. Resume after a
        checkpoint with ``start_block`` = its block and ``after_tx_id`` = its last tx."""
        gateway = self.gateway
        request = protos.chaincode_events_request(
            channel_id=self.channel_id, chaincode=chaincode, identity=gateway.creator,
            sign=lambda message: gateway.sign(message, "events request"), start_block=start_block,
            after_tx_id=after_tx_id)
        return ChaincodeEvents(gateway._events(request), chaincode)


class Contract:
    """A chaincode (and optionally one contract inside it) on a channel."""

    def __init__(self, network: Network, chaincode: str, contract_name: str | None = None) -> None:
        self.network = network
        self.chaincode = chaincode
        self.contract_name = contract_name

    def _function(self, name: str) -> str:
        return f"{self.contract_name}:{name}" if self.contract_name else name

    def new_proposal(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                     endorsing_orgs: Sequence[str] | None = None) -> Proposal:
        """An unsigned proposal to call ``name``: sign its :meth:`Proposal.digest` elsewhere
        and attach it with :meth:`Gateway.new_signed_proposal`, or evaluate / endorse it
        as it is to have the gateway's identity sign it."""
        unsigned = protos.build_proposal(
            creator=self.network.gateway.creator, channel_id=self.network.channel_id,
            chaincode=self.chaincode,
            args=[_as_bytes(self._function(name)), *(_as_bytes(a) for a in args)],
            transient=transient)
        proposed = gateway_pb2.ProposedTransaction(
            transaction_id=unsigned.tx_id, proposal=unsigned.signed(b""),
            endorsing_organizations=list(endorsing_orgs or []))
        return Proposal(self.network.gateway, self.network.channel_id, self.chaincode, proposed)

    def evaluate(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                 target_orgs: Sequence[str] | None = None) -> bytes:
        """Run a query on one peer; nothing is ordered or committed."""
        return self.new_proposal(name, *args, transient=transient).evaluate(target_orgs)

    def endorse(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                endorsing_orgs: Sequence[str] | None = None) -> Transaction:
        """Endorse only: the returned transaction, signed, can be submitted later (or never)."""
        transaction = self.new_proposal(name, *args, transient=transient,
                                        endorsing_orgs=endorsing_orgs).endorse()
        transaction._sign()
        return transaction

    def submit_async(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                     endorsing_orgs: Sequence[str] | None = None) -> SubmittedTransaction:
        """Endorse and hand to the orderer; returns before the commit."""
        return self.endorse(name, *args, transient=transient, endorsing_orgs=endorsing_orgs).submit()

    def submit(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
               endorsing_orgs: Sequence[str] | None = None) -> bytes:
        """Endorse, order and wait for the commit; raises CommitError unless VALID."""
        return self.submit_with_id(name, *args, transient=transient,
                                   endorsing_orgs=endorsing_orgs)[0]

    def submit_with_id(self, name: str, *args: Any, transient: Mapping[str, bytes] | None = None,
                       endorsing_orgs: Sequence[str] | None = None) -> tuple[bytes, str]:
        """:meth:`submit`, also returning the committed transaction's id."""
        submitted = self.submit_async(name, *args, transient=transient,
                                      endorsing_orgs=endorsing_orgs)
        submitted.committed()
        return submitted.result, submitted.tx_id


__all__ = [
    "DEFAULT_TIMEOUTS", "VALID", "ChaincodeEvent", "ChaincodeEvents", "Contract", "Gateway", "Network", "Proposal",
    "Status", "SubmittedTransaction", "Transaction", "error_details", "validation_code_name",
]
