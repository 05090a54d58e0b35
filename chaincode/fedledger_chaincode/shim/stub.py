"""``ChaincodeStub``: what a contract sees of one transaction.

One stub per transaction. Reads and writes go to the peer over the shared stream (the
handler correlates the answers by channel and tx id); proposal-derived facts (creator,
transient data, timestamp) are parsed lazily from the SignedProposal, since most
transactions never ask for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult.kv_query_result_pb2 import KV
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_event_pb2, chaincode_pb2, proposal_pb2
from fabric_protos.peer import chaincode_shim_pb2 as shim_pb2
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from fedledger_chaincode.shim.errors import InvalidArgumentError, ShimError

_Msg = shim_pb2.ChaincodeMessage

# Fabric's composite-key alphabet (fabric-chaincode-go shim/stub.go).
COMPOSITE_KEY_NAMESPACE = "\x00"
MIN_UNICODE_RUNE = "\x00"
MAX_UNICODE_RUNE = "\U0010ffff"
# A range starting at "" would include composite keys ("\x00..."); Fabric substitutes this.
EMPTY_KEY_SUBSTITUTE = "\x01"

VALIDATION_PARAMETER = "VALIDATION_PARAMETER"


class Requester(Protocol):
    """The handler side a stub talks through (one outstanding request per call)."""

    async def request(self, channel_id: str, tx_id: str, msg_type: int,
                      payload: bytes) -> bytes:
        """Send ``msg_type`` for the transaction and return the peer's RESPONSE payload;
        an ERROR reply raises ``PeerError``."""
        ...


class ChaincodeStub:
    """The per-transaction API of the shim (async where the peer is asked)."""

    def __init__(self, requester: Requester, *, channel_id: str, tx_id: str,
                 chaincode_input: chaincode_pb2.ChaincodeInput,
                 signed_proposal: proposal_pb2.SignedProposal | None = None) -> None:
        self.channel_id = channel_id
        self.tx_id = tx_id
        self._requester = requester
        self._args: list[bytes] = list(chaincode_input.args)
        self._signed_proposal = signed_proposal
        # Requests of one transaction share its (channel, tx id) slot on the stream, so a
        # contract that gathers two reads must not have both in flight at once.
        self._lock = asyncio.Lock()
        self._event: chaincode_event_pb2.ChaincodeEvent | None = None
        self._proposal: proposal_pb2.Proposal | None = None
        self._header: common_pb2.Header | None = None

    # -- arguments and proposal ------------------------------------------------------

    def get_args(self) -> list[bytes]:
        return list(self._args)

    def get_string_args(self) -> list[str]:
        return [a.decode("utf-8") for a in self._args]

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        """``args[0]`` as the function name and the rest as strings ("" when no args)."""
        args = self.get_string_args()
        return (args[0], args[1:]) if args else ("", [])

    def get_signed_proposal(self) -> proposal_pb2.SignedProposal | None:
        return self._signed_proposal

    def _get_proposal(self) -> proposal_pb2.Proposal:
        if self._proposal is None:
            if self._signed_proposal is None or not self._signed_proposal.proposal_bytes:
                raise ShimError("the transaction carries no signed proposal")
            try:
                self._proposal = proposal_pb2.Proposal.FromString(
                    self._signed_proposal.proposal_bytes)
            except DecodeError as exc:
                raise ShimError(f"malformed proposal: {exc}") from exc
        return self._proposal

    def _get_header(self) -> common_pb2.Header:
        if self._header is None:
            try:
                self._header = common_pb2.Header.FromString(self._get_proposal().header)
            except DecodeError as exc:
                raise ShimError(f"malformed proposal header: {exc}") from exc
        return self._header

    def get_creator(self) -> bytes:
        """The submitter as serialized ``msp.SerializedIdentity`` bytes."""
        try:
            sig = common_pb2.SignatureHeader.FromString(self._get_header().signature_header)
        except DecodeError as exc:
            raise ShimError(f"malformed signature header: {exc}") from exc
        return sig.creator

    def get_creator_identity(self) -> identities_pb2.SerializedIdentity:
        try:
            return identities_pb2.SerializedIdentity.FromString(self.get_creator())
        except DecodeError as exc:
            raise ShimError(f"malformed creator identity: {exc}") from exc

    def get_creator_msp_id(self) -> str:
        return self.get_creator_identity().mspid

    def get_tx_timestamp(self) -> timestamp_pb2.Timestamp:
        """The client's timestamp from the channel header (same on every endorser)."""
        try:
            ch = common_pb2.ChannelHeader.FromString(self._get_header().channel_header)
        except DecodeError as exc:
            raise ShimError(f"malformed channel header: {exc}") from exc
        return ch.timestamp

    def get_transient(self) -> Mapping[str, bytes]:
        """The proposal's transient map (private inputs that never reach a block)."""
        if self._signed_proposal is None or not self._signed_proposal.proposal_bytes:
            return MappingProxyType({})
        try:
            payload = proposal_pb2.ChaincodeProposalPayload.FromString(
                self._get_proposal().payload)
        except DecodeError as exc:
            raise ShimError(f"malformed proposal payload: {exc}") from exc
        return MappingProxyType(dict(payload.TransientMap))

    # -- events ----------------------------------------------------------------------

    def set_event(self, name: str, payload: bytes = b"") -> None:
        """Attach the transaction's chaincode event (one per tx; a later call replaces it).

        The peer fills in the chaincode id and tx id, as Fabric's does.
        """
        if not name:
            raise InvalidArgumentError("event name must not be empty")
        self._event = chaincode_event_pb2.ChaincodeEvent(event_name=name, payload=payload)

    @property
    def event(self) -> chaincode_event_pb2.ChaincodeEvent | None:
        return self._event

    # -- public state ----------------------------------------------------------------

    async def _request(self, msg_type: int, payload: bytes) -> bytes:
        async with self._lock:
            return await self._requester.request(self.channel_id, self.tx_id, msg_type,
                                                 payload)

    async def get_state(self, key: str) -> bytes | None:
        """The committed value of ``key`` as seen by this simulation; None if absent."""
        _check_key(key)
        value = await self._request(_Msg.GET_STATE, shim_pb2.GetState(key=key)
                                    .SerializeToString())
        return value or None

    async def put_state(self, key: str, value: bytes) -> None:
        _check_key(key)
        await self._request(_Msg.PUT_STATE, shim_pb2.PutState(key=key, value=value)
                            .SerializeToString())

    async def del_state(self, key: str) -> None:
        _check_key(key)
        await self._request(_Msg.DEL_STATE, shim_pb2.DelState(key=key).SerializeToString())

    def get_state_by_range(self, start: str, end: str) -> StateQueryIterator:
        """Keys in ``[start, end)`` in key order ("" = open end); simple keys only."""
        _check_simple_key(start)
        _check_simple_key(end)
        return self._range(start or EMPTY_KEY_SUBSTITUTE, end, "")

    def get_state_by_partial_composite_key(self, object_type: str,
                                           attributes: list[str]) -> StateQueryIterator:
        start = create_composite_key(object_type, attributes)
        return self._range(start, start + MAX_UNICODE_RUNE, "")

    def _range(self, start: str, end: str, collection: str) -> StateQueryIterator:
        req = shim_pb2.GetStateByRange(startKey=start, endKey=end, collection=collection)
        return StateQueryIterator(self, req.SerializeToString())

    @staticmethod
    def create_composite_key(object_type: str, attributes: list[str]) -> str:
        return create_composite_key(object_type, attributes)

    @staticmethod
    def split_composite_key(key: str) -> tuple[str, list[str]]:
        return split_composite_key(key)

    # -- private data ----------------------------------------------------------------

    async def get_private_data(self, collection: str, key: str) -> bytes | None:
        _check_collection(collection)
        _check_key(key)
        value = await self._request(
            _Msg.GET_STATE, shim_pb2.GetState(key=key, collection=collection)
            .SerializeToString())
        return value or None

    async def get_private_data_hash(self, collection: str, key: str) -> bytes | None:
        """The on-chain hash of a private value; readable by non-members of the collection."""
        _check_collection(collection)
        _check_key(key)
        value = await self._request(
            _Msg.GET_PRIVATE_DATA_HASH, shim_pb2.GetState(key=key, collection=collection)
            .SerializeToString())
        return value or None

    async def put_private_data(self, collection: str, key: str, value: bytes) -> None:
        _check_collection(collection)
        _check_key(key)
        await self._request(
            _Msg.PUT_STATE, shim_pb2.PutState(key=key, value=value, collection=collection)
            .SerializeToString())

    async def del_private_data(self, collection: str, key: str) -> None:
        _check_collection(collection)
        _check_key(key)
        await self._request(
            _Msg.DEL_STATE, shim_pb2.DelState(key=key, collection=collection)
            .SerializeToString())

    def get_private_data_by_range(self, collection: str, start: str,
                                  end: str) -> StateQueryIterator:
        _check_collection(collection)
        _check_simple_key(start)
        _check_simple_key(end)
        return self._range(start or EMPTY_KEY_SUBSTITUTE, end, collection)

    # -- state-based endorsement -----------------------------------------------------

    async def set_state_validation_parameter(self, key: str, policy: bytes) -> None:
        """Set the key-level endorsement policy (a serialized SignaturePolicyEnvelope)."""
        await self._put_metadata("", key, VALIDATION_PARAMETER, policy)

    async def get_state_validation_parameter(self, key: str) -> bytes | None:
        return (await self._get_metadata("", key)).get(VALIDATION_PARAMETER)

    async def set_private_data_validation_parameter(self, collection: str, key: str,
                                                    policy: bytes) -> None:
        _check_collection(collection)
        await self._put_metadata(collection, key, VALIDATION_PARAMETER, policy)

    async def get_private_data_validation_parameter(self, collection: str,
                                                    key: str) -> bytes | None:
        _check_collection(collection)
        return (await self._get_metadata(collection, key)).get(VALIDATION_PARAMETER)

    async def _put_metadata(self, collection: str, key: str, name: str, value: bytes) -> None:
        _check_key(key)
        req = shim_pb2.PutStateMetadata(key=key, collection=collection,
                                        metadata=shim_pb2.StateMetadata(metakey=name,
                                                                        value=value))
        await self._request(_Msg.PUT_STATE_METADATA, req.SerializeToString())

    async def _get_metadata(self, collection: str, key: str) -> dict[str, bytes]:
        _check_key(key)
        raw = await self._request(
            _Msg.GET_STATE_METADATA, shim_pb2.GetStateMetadata(key=key, collection=collection)
            .SerializeToString())
        try:
            result = shim_pb2.StateMetadataResult.FromString(raw)
        except DecodeError as exc:
            raise ShimError(f"malformed state metadata from the peer: {exc}") from exc
        return {e.metakey: e.value for e in result.entries}


class StateQueryIterator:
    """Async iterator over a range query's ``KV``s, fetched from the peer page by page.

    Use ``async with`` (or ``close()``) when stopping early, so the peer can drop its
    iterator; one read to the end needs no close, the peer closes on the last page.
    """

    def __init__(self, stub: ChaincodeStub, request: bytes) -> None:
        self._stub = stub
        self._request = request
        self._started = False
        self._page: list[bytes] = []
        self._pos = 0
        self._id = ""
        self._has_more = False
        self._closed = False

    def __aiter__(self) -> StateQueryIterator:
        return self

    async def __anext__(self) -> KV:
        while self._pos >= len(self._page):
            if self._closed or (self._started and not self._has_more):
                raise StopAsyncIteration
            if not self._started:
                self._started = True
                raw = await self._stub._request(_Msg.GET_STATE_BY_RANGE, self._request)
            else:
                raw = await self._stub._request(
                    _Msg.QUERY_STATE_NEXT, shim_pb2.QueryStateNext(id=self._id)
                    .SerializeToString())
            self._load(raw)
        item = self._page[self._pos]
        self._pos += 1
        try:
            return KV.FromString(item)
        except DecodeError as exc:
            raise ShimError(f"malformed query result from the peer: {exc}") from exc

    def _load(self, raw: bytes) -> None:
        try:
            resp = shim_pb2.QueryResponse.FromString(raw)
        except DecodeError as exc:
            raise ShimError(f"malformed query response from the peer: {exc}") from exc
        self._page = [r.resultBytes for r in resp.results]
        self._pos = 0
        self._id = resp.id
        self._has_more = resp.has_more

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started and self._has_more:
            self._has_more = False
            await self._stub._request(_Msg.QUERY_STATE_CLOSE,
                                      shim_pb2.QueryStateClose(id=self._id).SerializeToString())

    async def __aenter__(self) -> StateQueryIterator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def create_composite_key(object_type: str, attributes: list[str]) -> str:
    """Fabric's composite key: "\\x00" + type + "\\x00" + each attribute + "\\x00"."""
    _check_composite_part(object_type)
    parts = [COMPOSITE_KEY_NAMESPACE, object_type, MIN_UNICODE_RUNE]
    for attr in attributes:
        _check_composite_part(attr)
        parts.append(attr)
        parts.append(MIN_UNICODE_RUNE)
    return "".join(parts)


def split_composite_key(key: str) -> tuple[str, list[str]]:
    """Inverse of ``create_composite_key``: (object type, attributes)."""
    if not key.startswith(COMPOSITE_KEY_NAMESPACE) or not key.endswith(MIN_UNICODE_RUNE):
        raise InvalidArgumentError(f"not a composite key: {key!r}")
    components = key[1:-1].split(MIN_UNICODE_RUNE)
    return components[0], components[1:]


def _check_composite_part(part: str) -> None:
    if MIN_UNICODE_RUNE in part or MAX_UNICODE_RUNE in part:
        raise InvalidArgumentError(
            f"composite key part {part!r} contains U+0000 or U+10FFFF, which are reserved")


def _check_key(key: str) -> None:
    if not key:
        raise InvalidArgumentError("key must not be an empty string")


def _check_simple_key(key: str) -> None:
    # A leading "\x00" is the composite-key namespace: ranges over simple keys must not
    # reach into it (same rule as Fabric's validateSimpleKeys).
    if key.startswith(COMPOSITE_KEY_NAMESPACE):
        raise InvalidArgumentError(f"key {key!r} starts with U+0000, reserved for composite keys")


def _check_collection(collection: str) -> None:
    if not collection:
        raise InvalidArgumentError("collection must not be an empty string")


__all__ = [
    "VALIDATION_PARAMETER", "ChaincodeStub", "Requester", "StateQueryIterator",
    "create_composite_key", "split_composite_key",
]
