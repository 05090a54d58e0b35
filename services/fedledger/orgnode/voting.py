"""The validator's duty in a ``submitted`` job: if this org validates the round, once
submissions are closed it scores every other submission on its own held-out data and
casts a vote on each (``CastVote``, before the vote deadline; votes already on the
ledger are not cast again)."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime

from fedledger.digests import sha256_hex
from fedledger.learning.tasks import build_task
from fedledger.learning.validation import VotingPolicy, score_updates
from fedledger.orgnode.jobstore import JobFailed, JobStore, Wait
from fedledger.orgnode.ledger import OrgLedger
from fedledger.orgnode.modelhost import ModelHost
from fedledger.orgnode.models import Job
from fedledger.orgnode.training import TrainingData
from fedledger.protocol.records import Vote

log = logging.getLogger("fedledger.orgnode.worker")

DEFENSE_KEYS = ("max_loss_increase", "max_norm_ratio", "min_cosine")


class Voter:
    def __init__(self, *, msp_id: str, store: JobStore, data: TrainingData, host: ModelHost,
                 ledger: OrgLedger) -> None:
        self.msp_id = msp_id
        self.store = store
        self.data = data
        self.host = host
        self.ledger = ledger

    def vote(self, job: Job) -> None:
        validation = job.round.get("validation") or {}
        me = self.msp_id
        if me not in (validation.get("validators") or []):
            return
        ledger = self.ledger
        status = ledger.consortium.get_round(job.round_id).status
        if status == "open":
            raise Wait()  # the set of updates to score is not final yet
        deadline = datetime.fromisoformat(validation["vote_deadline"].replace("Z", "+00:00"))
        if status != "closed" or datetime.now(UTC) > deadline:
            return  # voting ended
        submissions = {s.org: s for s in ledger.consortium.list_submissions(job.round_id)}
        cast = {v.target_org for v in ledger.consortium.list_votes(job.round_id)
                if v.validator == me}
        targets = sorted(set(submissions) - cast - {me})
        if not targets:
            return
        config = self.store.config(job)
        loaded = self.host.model(config)
        reference = self.host.base_state(job, loaded)
        updates = {}
        for org, submission in sorted(submissions.items()):
            data = self.host.blob(submission.update_hash)
            if sha256_hex(data) != submission.update_hash:
                raise JobFailed(f"round {job.round_id}: blob of {org} does not match its "
                                "ledger submission; not voting")
            updates[org] = self.host.load_update(data, loaded)
        heldout, labels = self.data.heldout_samples(config)
        if not heldout:
            # No held-out data to judge by: this validator abstains (the verdict is taken
            # over the votes cast); its own job goes on.
            log.warning("round %s: no held-out samples to score updates on; not voting",
                        job.round_id)
            return
        defense = (job.round.get("config") or {}).get("defense") or {}
        policy = VotingPolicy(**{k: defense[k] for k in DEFENSE_KEYS if k in defense})
        task = build_task(config.train.task, loaded.tokenizer, labels,
                          config.train.max_text_tokens)
        scores = score_updates(loaded.model, task, heldout, reference, updates, policy,
                               batch_size=config.train.eval_batch_size,
                               device=config.train.device, skip=[me])
        votes = {}
        for org in targets:
            score = scores[org]
            delta = score.loss_delta if math.isfinite(score.loss_delta) else 1e9
            ledger.consortium.cast_vote(Vote(
                round_id=job.round_id, validator=me, target_org=org, accept=score.accept,
                score=round(delta, 6))).submit()
            votes[org] = {"accept": score.accept, "reasons": list(score.reasons)}
            log.info("round %s: voted %s on %s %s", job.round_id,
                     "accept" if score.accept else "reject", org, list(score.reasons))
        self.store.update(job.id, metrics={**(job.metrics or {}), "votes": votes})
