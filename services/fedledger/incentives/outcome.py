"""A round's outcome on the Staking contract, from the consortium ledger alone.

For a round with a validator committee (``Round.validators``):

* the verdict on each submission is the committee's (``learning.voting.committee_verdict``
  over the validators' votes on the ledger, which are final after the vote deadline);
* each accepted proposer earns ``reward_wei``, each rejected one loses ``slash_wei``;
* each validator whose every vote agreed with the verdict earns ``reward_wei``; one that
  voted against it on any update loses ``slash_wei``; one that did not vote, nothing.

A round that never became final (it failed; the bridge settles it as a gap before a later
final round, when its votes can no longer change) pays no rewards, since it produced no
model, but its slashes stand: otherwise an attacker whose update sank the round -- every
update rejected, no aggregate -- would keep its stake.

Amounts are summed per org and keyed by the org's registered anchor address; zero
entries are dropped and the rest sorted by address, so the bridge and every org's agent
build the same ``(orgs, deltas)`` and sign the same EIP-712 ``Outcome``. A round without
a validator committee moves nothing (an empty outcome, still settled in order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fedledger.learning.voting import committee_verdict
from fedledger.ledgers import ConsortiumLedger
from fedledger.protocol.records import Round, Submission, Vote


@dataclass(frozen=True)
class Outcome:
    round_id: int
    orgs: tuple[str, ...]      # anchor addresses (lower case), sorted
    deltas: tuple[int, ...]    # wei, signed
    verdict: Mapping[str, bool]

    def entries(self) -> dict[str, int]:
        return dict(zip(self.orgs, self.deltas, strict=True))


def verdict_of(round_: Round | None, submissions: Iterable[Submission],
               votes: Iterable[Vote]) -> dict[str, bool]:
    """The committee's verdict on every submitter (all accepted without a committee, or
    for a round the ledger does not hold: ``None``)."""
    candidates = sorted({s.org for s in submissions})
    validators = set(round_.validators) if round_ is not None else set()
    if not validators:
        return {org: True for org in candidates}
    cast: dict[str, dict[str, bool]] = {}
    for vote in votes:
        if vote.validator in validators:
            cast.setdefault(vote.validator, {})[vote.target_org] = vote.accept
    return committee_verdict(cast, candidates)


def round_outcome(round_: Round, submissions: Sequence[Submission], votes: Sequence[Vote],
                  addresses: Mapping[str, str]) -> Outcome:
    """``addresses``: MSP id -> registered anchor address."""
    validators = set(round_.validators)
    verdict = verdict_of(round_, submissions, votes)
    if not validators:
        return Outcome(round_.round_id, (), (), verdict)
    reward = round_.reward_wei if round_.status == "final" else 0
    slash = round_.slash_wei
    totals: dict[str, int] = {}

    def add(org: str, amount: int) -> None:
        address = addresses[org].lower()
        totals[address] = totals.get(address, 0) + amount

    for org, accepted in verdict.items():
        add(org, reward if accepted else -slash)
    by_validator: dict[str, list[bool]] = {}
    for vote in votes:
        if vote.validator in validators and vote.target_org in verdict:
            agreed = vote.accept == verdict[vote.target_org]
            by_validator.setdefault(vote.validator, []).append(agreed)
    for validator, agreements in by_validator.items():
        add(validator, reward if all(agreements) else -slash)
    entries = sorted((a, d) for a, d in totals.items() if d != 0)
    return Outcome(round_.round_id, tuple(a for a, _ in entries), tuple(d for _, d in entries),
                   verdict)


def ledger_outcome(ledger: ConsortiumLedger, round_id: int) -> Outcome:
    """The outcome of ``round_id`` from the consortium ledger: what the bridge proposes
    and each org's agent recomputes."""
    round_ = ledger.get_round(round_id)
    submissions = ledger.list_submissions(round_id)
    votes = ledger.list_votes(round_id)
    addresses = {o.msp_id: o.anchor_address for o in ledger.list_orgs()}
    return round_outcome(round_, submissions, votes, addresses)
