"""Key layout of the world state: one composite-key object type per record kind.

Keys are ``stub.create_composite_key(type, attrs)`` (Fabric's ``\\x00type\\x00a\\x00b\\x00``),
so a partial key -- the type plus a prefix of the attrs -- lists a group in key order
(all submissions of a round, all votes of a validator in a round, ...). Numbers are
zero-padded to 10 digits so that key order is numeric order.

Each function returns ``(object_type, attrs)``; pass it to ``ctx.key(*...)`` for one
record or to ``ctx.scan(*..., Model)`` for a prefix.
"""

from __future__ import annotations

KeyParts = tuple[str, tuple[str, ...]]


def num(value: int) -> str:
    """A non-negative int as a fixed-width key attribute (key order = numeric order)."""
    return f"{value:010d}"


# --- consortium channel -----------------------------------------------------------


def org(msp_id: str | None = None) -> KeyParts:
    return "org", () if msp_id is None else (msp_id,)


def round_(round_id: int | None = None) -> KeyParts:
    return "round", () if round_id is None else (num(round_id),)


def last_round() -> KeyParts:
    """The highest round id opened so far (round ids must strictly increase)."""
    return "meta", ("last_round",)


def finality(round_id: int | None = None) -> KeyParts:
    """A round's finalisation (RoundFinality), apart from the round record."""
    return "final", () if round_id is None else (num(round_id),)


def submission(round_id: int, shard: int | None = None, msp_id: str | None = None) -> KeyParts:
    attrs = [num(round_id)]
    if shard is not None:
        attrs.append(num(shard))
        if msp_id is not None:
            attrs.append(msp_id)
    return "submission", tuple(attrs)


def vote(round_id: int, validator: str | None = None, target: str | None = None) -> KeyParts:
    attrs = [num(round_id)]
    if validator is not None:
        attrs.append(validator)
        if target is not None:
            attrs.append(target)
    return "vote", tuple(attrs)


def attestation(round_id: int, msp_id: str | None = None) -> KeyParts:
    return "attestation", (num(round_id),) if msp_id is None else (num(round_id), msp_id)


def model_version(version_id: str | None = None) -> KeyParts:
    return "model", () if version_id is None else (version_id,)


def unlearning_notice(notice_id: str | None = None) -> KeyParts:
    return "notice", () if notice_id is None else (notice_id,)


def anchor(first_round: int | None = None, last_round_: int | None = None) -> KeyParts:
    if first_round is None:
        return "anchor", ()
    assert last_round_ is not None
    return "anchor", (num(first_round), num(last_round_))


# --- private channel --------------------------------------------------------------


def owner() -> KeyParts:
    return "meta", ("owner",)


def dataset(dataset_id: str | None = None) -> KeyParts:
    return "dataset", () if dataset_id is None else (dataset_id,)


def commitment(dataset_id: str, shard: int | None = None, slice_: int | None = None) -> KeyParts:
    attrs = [dataset_id]
    if shard is not None:
        attrs.append(num(shard))
        if slice_ is not None:
            attrs.append(num(slice_))
    return "commitment", tuple(attrs)


def training(round_id: int | None = None, shard: int | None = None,
             dataset_id: str | None = None) -> KeyParts:
    if round_id is None:
        return "training", ()
    assert shard is not None and dataset_id is not None
    return "training", (num(round_id), num(shard), dataset_id)


def deletion_request(request_id: str | None = None) -> KeyParts:
    return "deletion", () if request_id is None else (request_id,)


def unlearning_record(request_id: str) -> KeyParts:
    return "unlearning", (request_id,)


def participation(round_id: int | None = None) -> KeyParts:
    """An org's participation decision for a round (key order = round order)."""
    return "participation", () if round_id is None else (num(round_id),)
