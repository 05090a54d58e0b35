"""The org's participation decision for each round it is invited to
(docs/incentives.md, "On an org node").

The policy (``PUT /policy``) decides: ``always`` (the round's ``train.local_steps``,
recorded as action ``medium``), ``never``, ``schedule`` (listed rounds only) or ``qlearning``
(the org's :class:`~fedledger.incentives.qlearning.QAgent`). A deletion's replay round
repeats the decision of the round it replaces (same local steps: the replayed adapter
must equal a retrain without the data). Every decision is stored here first, then
recorded on the org's private channel (``RecordParticipationDecision``; identical
bytes on a retry), so a restarted node neither decides twice nor records twice.

The Q-learning agent sees the org's own signals (:mod:`fedledger.incentives.state`):

* the round's lineage step;
* its own test accuracy of the round's starting model, measured when deciding: the
  change since its previous decision in the same shard-group is its recent gain;
* its rewards and slashes per round and its stake, on the Staking contract;
* its compute spent (local steps of its jobs) against ``budget_steps``.

A decision's reward (tokens - price x local steps + gain_weight x gain) is known once
its job finished, the next decision in its shard-group measured the accuracy, and the
Staking contract settled its round (or ``settle_wait_rounds`` passed). The agent learns
from it at the next decision, bootstrapping from the next decision's state. The Q-table
and the decisions live in the node's database (``q_values``, ``participation_decisions``),
so the agent survives restarts; the number of past decisions sets epsilon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.fabric.errors import FabricError
from fedledger.incentives.config import ACTIONS, QLearningConfig
from fedledger.incentives.qlearning import QAgent, affordable, draw_rng
from fedledger.incentives.reward import local_steps, round_reward, tokens_of
from fedledger.incentives.state import Signals, encode
from fedledger.ledgers import Pending
from fedledger.orgnode.ledger import LedgerUnavailable, OrgLedger
from fedledger.orgnode.models import Job, ParticipationRow, QValueRow
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.protocol.records import ParticipationDecision

log = logging.getLogger("fedledger.orgnode.participation")

#: Job states after which a round's local compute is spent and known.
FINISHED = ("attested", "failed", "skipped")
#: A decision the ledger keeps refusing is given up after this many attempts (the job
#: goes on; the decision stays in the node's database).
MAX_RECORD_ATTEMPTS = 5


class SqlQStore:
    """The Q-table in the node's database (:class:`~fedledger.incentives.qlearning.QStore`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def get(self, state: str) -> dict[str, tuple[float, int]]:
        with self.sessions() as session:
            rows = session.scalars(select(QValueRow).where(QValueRow.state == state))
            return {r.action: (r.value, r.visits) for r in rows}

    def put(self, state: str, action: str, value: float, visits: int) -> None:
        with self.sessions() as session:
            row = session.get(QValueRow, (state, action))
            if row is None:
                session.add(QValueRow(state=state, action=action, value=value, visits=visits))
            else:
                row.value, row.visits = value, visits
            session.commit()

    def table(self) -> dict[str, dict[str, dict[str, float | int]]]:
        with self.sessions() as session:
            rows = session.scalars(select(QValueRow).order_by(QValueRow.state, QValueRow.action))
            out: dict[str, dict[str, dict[str, float | int]]] = {}
            for r in rows:
                out.setdefault(r.state, {})[r.action] = {"value": r.value, "visits": r.visits}
            return out


@dataclass(frozen=True)
class StakeReading:
    """This org on the Staking contract: its stake, its net change per round (wei), and
    the next round the contract will settle (rounds below it are settled)."""

    stake_wei: int
    per_round: dict[int, int]
    next_round: int


def round_position(round_: dict[str, Any]) -> tuple[int, int]:
    """(shard, lineage step) of a coordinator round view."""
    sisa = (round_.get("config") or {}).get("sisa") or {}
    shard = int(sisa.get("shard", round_.get("shard", 0)) or 0)
    step = int(sisa.get("step", round_.get("step") or round_["round_id"]))
    return shard, max(1, step)


class Participation:
    """Decides, records and learns; used by the round worker's thread only."""

    def __init__(self, settings: OrgNodeSettings, sessions: sessionmaker[Session],
                 ledger: OrgLedger, measure: Callable[[dict[str, Any]], float | None], *,
                 anchor_address: str | None = None,
                 stake_reader: Callable[[], StakeReading | None] | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.ledger = ledger
        self.anchor_address = anchor_address
        self.measure = measure
        self.read_stake = stake_reader or self._read_stake
        self.store = SqlQStore(sessions)
        self._record_failures: dict[int, int] = {}
        # Decisions handed to the orderer and not yet confirmed, by round: the commit is
        # awaited only when the update is submitted, so it costs the round no block time.
        self._pending: dict[int, Pending[ParticipationDecision]] = {}

    @property
    def config(self) -> QLearningConfig:
        return self.settings.participation

    @property
    def agent(self) -> QAgent:
        return QAgent(self.config, self.store)

    # --- the decision -----------------------------------------------------------------

    def decide(self, round_: dict[str, Any], mode: str, rounds: list[int],
               base_steps: int) -> ParticipationRow:
        """The decision for open round ``round_`` (this org is in its committee): the
        stored one, or a new one, stored, then handed to the private channel's orderer
        (``RecordParticipationDecision``); :meth:`confirm` makes sure it committed."""
        round_id = int(round_["round_id"])
        with self.sessions() as session:
            row = session.get(ParticipationRow, round_id)
        if row is None:
            row = self._new_decision(round_, mode, rounds, base_steps)
            with self.sessions() as session:
                session.add(row)
                session.commit()
            log.info("round %s: %s decided %s (%d local steps): %s", round_id, row.policy,
                     row.action, row.local_steps, row.reason)
        if row.tx_id is None and row.round_id not in self._pending:
            try:
                self._pending[row.round_id] = self.ledger.private.record_participation_decision(
                    _decision_of(row)).submit_async()
            except FabricError:
                self._record(row)  # refused at endorsement: the synchronous path says why
        return row

    def confirm(self, round_id: int) -> None:
        """Make sure the round's decision is on the private channel: wait for the commit
        of the one handed to the orderer, or record it now (after a restart, or when
        that one did not commit)."""
        pending = self._pending.pop(round_id, None)
        with self.sessions() as session:
            row = session.get(ParticipationRow, round_id)
        if row is None or row.tx_id is not None:
            return
        if pending is not None:
            try:
                self._store_tx_id(row, pending.committed().tx_id)
                return
            except FabricError as exc:
                log.warning("round %s: participation decision did not commit (%s); "
                            "recording it again", round_id, exc)
        self._record(row)

    def _new_decision(self, round_: dict[str, Any], mode: str, rounds: list[int],
                      base_steps: int) -> ParticipationRow:
        round_id = int(round_["round_id"])
        shard, step = round_position(round_)
        replay = (round_.get("config") or {}).get("replay")
        medium = base_steps  # the fixed policies train exactly what the round asks
        if replay:
            of_round = replay.get("of_round") if isinstance(replay, dict) else None
            with self.sessions() as session:
                original = session.get(ParticipationRow, of_round) if of_round else None
            steps = original.local_steps if original is not None and original.local_steps \
                else base_steps
            action = original.action if original is not None and original.local_steps \
                else "medium"
            return self._fixed(round_id, shard, step, "replay", action, steps,
                               f"replay of round {of_round} repeats its participation "
                               f"({steps} local steps)")
        if mode == "never":
            return self._fixed(round_id, shard, step, "never", "skip", 0,
                               "participation policy is 'never'")
        if mode == "schedule":
            if round_id not in rounds:
                return self._fixed(round_id, shard, step, "schedule", "skip", 0,
                                   f"participation policy schedule {rounds} excludes round "
                                   f"{round_id}")
            return self._fixed(round_id, shard, step, "schedule", "medium", medium,
                               f"participation policy schedule includes round {round_id}")
        if mode == "qlearning":
            return self._agent_decision(round_, shard, step, base_steps)
        return self._fixed(round_id, shard, step, "always", "medium", medium,
                           "participation policy is 'always'")

    @staticmethod
    def _fixed(round_id: int, shard: int, step: int, policy: str, action: str, steps: int,
               reason: str) -> ParticipationRow:
        return ParticipationRow(
            round_id=round_id, policy=policy, action=action, local_steps=steps, reason=reason,
            shard=shard, step=step, state=None, signals={}, epsilon=None, explored=False,
            q_values={}, allowed=[], accuracy=None, record=_ledger_record(
                round_id, policy, action, steps, reason), outcome={})

    def _agent_decision(self, round_: dict[str, Any], shard: int, step: int,
                        base_steps: int) -> ParticipationRow:
        round_id = int(round_["round_id"])
        config = self.config
        stake = self._safe_stake()
        accuracy = self.measure(round_)
        with self.sessions() as session:
            previous = session.scalars(
                select(ParticipationRow).where(ParticipationRow.round_id < round_id,
                                               ParticipationRow.shard == shard,
                                               ParticipationRow.accuracy.is_not(None))
                .order_by(ParticipationRow.round_id.desc())).first()
            spent = _steps_spent(session)
            decided = list(session.scalars(select(ParticipationRow.round_id).where(
                ParticipationRow.round_id < round_id)))
            count = session.scalar(select(func.count()).select_from(ParticipationRow).where(
                ParticipationRow.policy == "qlearning")) or 0
        gain = (accuracy - previous.accuracy
                if accuracy is not None and previous is not None and previous.accuracy is not None
                else None)
        budget = config.budget_steps
        left = None if budget is None else max(0, budget - spent)
        signals = Signals(
            step=step, gain=gain, tokens=self._last_tokens(stake, decided),
            stake_ratio=self._stake_ratio(stake),
            budget_left=None if budget is None or left is None else left / budget)
        state = encode(signals, config.bins)
        allowed = affordable(left, base_steps, config)
        row = ParticipationRow(
            round_id=round_id, policy="qlearning", action="skip", local_steps=0, reason="",
            shard=shard, step=step, state=state.key, signals=signals.to_dict(),
            explored=False, q_values={}, allowed=list(allowed), accuracy=accuracy, outcome={})
        self.learn_pending(row, stake)
        rng = draw_rng(config.seed, self.settings.msp_id, round_id)
        choice = self.agent.choose(state.key, decisions=count, rng=rng, allowed=allowed)
        steps = local_steps(choice.action, base_steps, config.effort)
        values = ", ".join(f"{a} {v:.3g}" for a, v in choice.q_values.items())
        how = (f"exploring (epsilon {choice.epsilon:.3f})" if choice.explored
               else "best action value")
        reason = f"q-learning: {choice.action}, {how}; state {state.key}; Q: {values}"
        if len(allowed) < len(ACTIONS):
            reason += f"; budget allows only {allowed}"
        row.action, row.local_steps, row.reason = choice.action, steps, reason
        row.epsilon, row.explored = float(choice.epsilon), choice.explored
        row.q_values = {a: float(v) for a, v in choice.q_values.items()}
        row.record = _ledger_record(round_id, "qlearning", choice.action, steps, reason,
                                    state=state.to_dict(), epsilon=row.epsilon,
                                    explored=choice.explored, q_values=row.q_values)
        return row

    # --- learning ---------------------------------------------------------------------

    def learn_pending(self, current: ParticipationRow, stake: StakeReading | None) -> int:
        """Learn from every earlier Q-learning decision whose reward is known now that
        ``current`` (not stored yet) is being decided; returns how many were learned."""
        with self.sessions() as session:
            rows = list(session.scalars(select(ParticipationRow).where(
                ParticipationRow.policy == "qlearning",
                ParticipationRow.round_id < current.round_id)
                .order_by(ParticipationRow.round_id)))
            jobs = {j.round_id: j for j in session.scalars(select(Job).where(
                Job.round_id.in_([r.round_id for r in rows if r.learned_at is None])))}
        decisions = [*rows, current]
        learned = 0
        for index, row in enumerate(rows):
            if row.learned_at is not None:
                continue
            job = jobs.get(row.round_id)
            if job is not None and job.status not in FINISHED:
                continue  # its compute and outcome are not known yet
            following = decisions[index + 1:]
            same_shard = [r for r in following if r.shard == row.shard]
            waited = current.round_id - row.round_id > self.config.settle_wait_rounds
            gain: float | None = None
            if same_shard:
                after = same_shard[0].accuracy
                gain = None if after is None or row.accuracy is None else after - row.accuracy
            elif not waited:
                continue  # the next measurement of its shard-group is still to come
            tokens, settled = self._tokens_of(row.round_id, job, stake)
            if not settled and not waited:
                continue
            steps = int((job.metrics or {}).get("steps", 0)) if job is not None else 0
            reward = round_reward(tokens, steps, gain, self.config.reward)
            next_row = following[0]
            if row.state is None:  # every Q-learning decision has a state
                continue
            value = self.agent.learn(row.state, row.action, reward, next_row.state,
                                     next_row.allowed or list(ACTIONS))
            with self.sessions() as session:
                stored = session.get_one(ParticipationRow, row.round_id)
                stored.reward = reward
                stored.outcome = {"tokens": tokens, "steps": steps, "gain": gain,
                                  "settled": settled, "next_state": next_row.state,
                                  "q_value": value}
                stored.learned_at = datetime.now(UTC)
                session.commit()
            learned += 1
            log.info("round %s: learned reward %.4g (tokens %.4g, %d steps, gain %s) -> "
                     "Q(%s, %s) = %.4g", row.round_id, reward, tokens, steps, gain, row.state,
                     row.action, value)
        return learned

    def _tokens_of(self, round_id: int, job: Job | None,
                   stake: StakeReading | None) -> tuple[float, bool]:
        """Net tokens the Staking contract moved for this org in ``round_id``, and
        whether that is final (settled, or the round moves no stake)."""
        if self.settings.staking is None:
            return 0.0, True
        if job is not None and not (job.round or {}).get("validation"):
            return 0.0, True  # a round without a committee settles an empty outcome
        if stake is None:
            return 0.0, False
        wei = stake.per_round.get(round_id, 0)
        return tokens_of(wei, self.config.reward), stake.next_round > round_id

    def _last_tokens(self, stake: StakeReading | None, decided: list[int]) -> float:
        """Net tokens of this org's latest settled round among those it decided on."""
        if stake is None:
            return 0.0
        settled = [r for r in decided if r < stake.next_round]
        return tokens_of(stake.per_round.get(max(settled), 0), self.config.reward) \
            if settled else 0.0

    def _stake_ratio(self, stake: StakeReading | None) -> float | None:
        wanted = self.settings.staking.stake_wei if self.settings.staking else 0
        if stake is None or not wanted:
            return None
        return stake.stake_wei / wanted

    # --- the ledger and the chain -------------------------------------------------------

    def _record(self, row: ParticipationRow) -> None:
        """``RecordParticipationDecision`` (idempotent); ledger errors propagate (the
        worker backs off and retries) until MAX_RECORD_ATTEMPTS."""
        try:
            tx_id = self.ledger.private.record_participation_decision(
                _decision_of(row)).submit().tx_id
        except (FabricError, LedgerUnavailable) as exc:
            count = self._record_failures.get(row.round_id, 0) + 1
            self._record_failures[row.round_id] = count
            if count >= MAX_RECORD_ATTEMPTS:
                log.error("round %s: participation decision not recorded after %d attempts: "
                          "%s", row.round_id, count, exc)
                return
            raise
        self._store_tx_id(row, tx_id)

    def _store_tx_id(self, row: ParticipationRow, tx_id: str) -> None:
        with self.sessions() as session:
            stored = session.get_one(ParticipationRow, row.round_id)
            stored.tx_id = tx_id
            session.commit()
        row.tx_id = tx_id

    def _safe_stake(self) -> StakeReading | None:
        try:
            return self.read_stake()
        except Exception as exc:  # noqa: BLE001 - the chain is a signal, not a dependency
            log.warning("participation: stake not readable: %s", exc)
            return None

    def _read_stake(self) -> StakeReading | None:
        staking, address = self.settings.staking, self.anchor_address
        if staking is None or address is None:
            return None
        from fedledger.evm.config import EvmConfig
        from fedledger.evm.connection import connect
        from fedledger.evm.contracts import StakingClient

        client = StakingClient(connect(EvmConfig(backend="rpc", rpc_url=staking.rpc_url,
                                                 chain_id=staking.chain_id)), staking.address)
        per_round: dict[int, int] = {}
        for event in client.history():
            if event.org.lower() != address.lower() or event.kind == "staked":
                continue
            sign = 1 if event.kind == "rewarded" else -1
            per_round[event.round] = per_round.get(event.round, 0) + sign * event.amount
        return StakeReading(client.stake_of(address), per_round, client.next_round())

    # --- views --------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        with self.sessions() as session:
            count = session.scalar(select(func.count()).select_from(ParticipationRow).where(
                ParticipationRow.policy == "qlearning")) or 0
            learned = session.scalar(select(func.count()).select_from(ParticipationRow).where(
                ParticipationRow.learned_at.is_not(None))) or 0
            spent = _steps_spent(session)
        return {"config": self.config.model_dump(mode="json"), "decisions": count,
                "learned": learned, "epsilon": self.agent.epsilon(count),
                "steps_spent": spent, "q_table": self.store.table()}


def _steps_spent(session: Session) -> int:
    """Local steps this node trained in all (its compute so far)."""
    return int(sum(int((m or {}).get("steps", 0)) for m in session.scalars(select(Job.metrics))))


def _ledger_record(round_id: int, policy: str, action: str, steps: int, reason: str,
                   **agent: Any) -> dict[str, Any]:
    """The decision's ledger record as the row stores it (a retry sends the same)."""
    record: dict[str, Any] = {"round_id": round_id, "policy": policy, "action": action,
                              "local_steps": steps, "reason": reason[:512]}
    record.update(agent)
    return record


def _decision_of(row: ParticipationRow) -> ParticipationDecision:
    """The row's stored ledger record, parsed."""
    return ParticipationDecision.model_validate(row.record)


def decision_public(row: ParticipationRow) -> dict[str, Any]:
    return {"round_id": row.round_id, "policy": row.policy, "action": row.action,
            "local_steps": row.local_steps, "reason": row.reason, "shard": row.shard,
            "step": row.step, "state": row.state, "signals": row.signals,
            "epsilon": row.epsilon, "explored": row.explored, "q_values": row.q_values,
            "allowed": row.allowed, "accuracy": row.accuracy, "tx_id": row.tx_id,
            "reward": row.reward, "outcome": row.outcome,
            "learned_at": row.learned_at.isoformat() if row.learned_at else None,
            "created": row.created_at.isoformat() if row.created_at else None}
