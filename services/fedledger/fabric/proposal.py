"""The step-by-step transaction flow of fabric-gateway: :class:`Proposal` (evaluate or
endorse) -> :class:`Transaction` (submit) -> :class:`SubmittedTransaction` (its commit).

Each step's ``bytes()`` and ``digest()`` let its signature be made elsewhere (an HSM, an
offline machine): sign the digest (ECDSA, prehashed SHA-256, low-S, DER) and hand bytes
and signature back through ``Gateway.new_signed_proposal`` / ``new_signed_transaction`` /
``new_signed_commit``. A step not signed that way is signed by the gateway's identity.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2

from fedledger.fabric import protos
from fedledger.fabric.errors import CommitError
from fedledger.fabric.rpc import GatewayClient, Status


class Proposal:
    """A transaction proposal, signed or not yet (fabric-gateway's ``Proposal``).

    ``bytes()`` is the whole proposal (a ``gateway.ProposedTransaction``: tx id, proposal,
    endorsing orgs) and ``digest()`` the SHA-256 of the proposal bytes its creator signs
    (ECDSA over a prehashed SHA-256 digest, low-S, DER). Unsigned, it is signed by the
    gateway's identity when evaluated or endorsed."""

    def __init__(self, client: GatewayClient, channel_id: str, chaincode: str,
                 proposed: gateway_pb2.ProposedTransaction) -> None:
        self.client = client
        self.channel_id = channel_id
        self.chaincode = chaincode
        self._proposed = proposed

    @property
    def tx_id(self) -> str:
        return self._proposed.transaction_id

    @property
    def signature(self) -> builtins.bytes:
        return self._proposed.proposal.signature

    def bytes(self) -> builtins.bytes:
        return self._proposed.SerializeToString()

    def digest(self) -> builtins.bytes:
        return protos.digest(self._proposed.proposal.proposal_bytes)

    def _signed(self) -> Any:
        signed = self._proposed.proposal
        if not signed.signature:
            signed.signature = self.client.sign(signed.proposal_bytes, "proposal")
        return signed

    def evaluate(self, target_orgs: Sequence[str] | None = None) -> builtins.bytes:
        """Run the proposal as a query on one peer; nothing is ordered or committed."""
        response = self.client._evaluate(gateway_pb2.EvaluateRequest(
            transaction_id=self.tx_id, channel_id=self.channel_id,
            proposed_transaction=self._signed(), target_organizations=list(target_orgs or [])))
        return response.result.payload

    def endorse(self) -> Transaction:
        """Endorse; the returned transaction is not signed yet (it is signed by the gateway
        at submit, or elsewhere through :meth:`~fedledger.fabric.gateway.Gateway.new_signed_transaction`)."""
        endorsed = self.client._endorse(gateway_pb2.EndorseRequest(
            transaction_id=self.tx_id, channel_id=self.channel_id,
            proposed_transaction=self._signed(),
            endorsing_organizations=list(self._proposed.endorsing_organizations)))
        return Transaction(self.client, self.channel_id, self.tx_id, endorsed.prepared_transaction)


@dataclass
class SubmittedTransaction:
    """A transaction handed to the orderer: its result is known, its commit is not yet
    (fabric-gateway's ``Commit``). ``bytes()`` / ``digest()`` are those of its signed
    commit-status request, for a status asked with a signature made elsewhere."""

    client: GatewayClient
    channel_id: str
    tx_id: str
    result: builtins.bytes
    request: gateway_pb2.SignedCommitStatusRequest | None = None

    def _request(self) -> Any:
        if self.request is None:
            self.request = gateway_pb2.SignedCommitStatusRequest(request=protos.commit_status_request_bytes(
                self.tx_id, self.channel_id, self.client.creator))
        return self.request

    def bytes(self) -> builtins.bytes:
        return self._request().SerializeToString()

    def digest(self) -> builtins.bytes:
        return protos.digest(self._request().request)

    def status(self) -> Status:
        request = self._request()
        if not request.signature:
            request.signature = self.client.sign(request.request, "commit")
        return self.client._commit_status(self.tx_id, self.channel_id, request)

    def committed(self) -> Status:
        """Wait for the commit; raises :class:`CommitError` unless it committed VALID."""
        status = self.status()
        if not status.successful:
            raise CommitError(
                f"transaction {status.tx_id} committed as {status.code_name} "
                f"in block {status.block_number}",
                code=status.code_name, block_number=status.block_number, tx_id=status.tx_id)
        return status


@dataclass
class Transaction:
    """An endorsed transaction not yet handed to the orderer (fabric-gateway's
    ``Transaction``): ``bytes()`` is a ``gateway.PreparedTransaction`` (tx id and envelope)
    and ``digest()`` the SHA-256 of the envelope payload its creator signs."""

    client: GatewayClient
    channel_id: str
    tx_id: str
    envelope: common_pb2.Envelope

    @property
    def result(self) -> builtins.bytes:
        return protos.response_of_envelope(self.envelope).payload

    def bytes(self) -> builtins.bytes:
        return gateway_pb2.PreparedTransaction(transaction_id=self.tx_id,
                                               envelope=self.envelope).SerializeToString()

    def digest(self) -> builtins.bytes:
        return protos.digest(self.envelope.payload)

    def _sign(self) -> None:
        if not self.envelope.signature:
            self.envelope.signature = self.client.sign(self.envelope.payload, "transaction")

    def submit(self) -> SubmittedTransaction:
        """Hand to the orderer (signed by the gateway first when it is not signed yet)."""
        self._sign()
        self.client._submit(gateway_pb2.SubmitRequest(
            transaction_id=self.tx_id, channel_id=self.channel_id,
            prepared_transaction=self.envelope))
        return SubmittedTransaction(self.client, self.channel_id, self.tx_id, self.result)


__all__ = ["Proposal", "SubmittedTransaction", "Transaction"]
