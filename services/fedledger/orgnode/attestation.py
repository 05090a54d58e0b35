"""``submitted`` -> ``attested`` | ``failed``: wait for the aggregate, download every
included update, check it against the ledger's submissions (and the validator
committee's verdict), check the round's base against the ledger, recompute the aggregate
(and the server optimizer's step, if the round config names one), and attest its digest
and the server state's (``AttestAggregate``); nothing is recorded for a wrong aggregate. The attested adapter
is kept as a PEFT folder and scored on the org's test split (``global_*`` metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from fedledger.digests import sha256_hex
from fedledger.incentives.outcome import verdict_of
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.errors import ConfigError
from fedledger.learning.lora import adapter_config_dict
from fedledger.learning.round import round_server_optimizer
from fedledger.learning.server_optimizers import ServerOptimizer, ServerOptimizerError
from fedledger.learning.updates import save_adapter, update_bytes
from fedledger.orgnode.evaluation import Evaluator
from fedledger.orgnode.jobstore import JobFailed, JobStore, Wait
from fedledger.orgnode.ledger import OrgLedger
from fedledger.orgnode.modelhost import ModelHost
from fedledger.orgnode.models import Job, ModelVersionRow
from fedledger.protocol.coordinator_api import AggregatePublic, RoundPublic
from fedledger.protocol.records import Attestation


class AggregateSource(Protocol):
    """The coordinator's view of a round and its aggregate."""

    def aggregate(self, round_id: int, /) -> AggregatePublic | None: ...

    def get_round(self, round_id: int, /) -> RoundPublic: ...


class Attester:
    def __init__(self, *, msp_id: str, data_dir: Path, store: JobStore, host: ModelHost,
                 evaluator: Evaluator, ledger: OrgLedger, coordinator: AggregateSource) -> None:
        self.msp_id = msp_id
        self.data_dir = data_dir
        self.store = store
        self.host = host
        self.evaluator = evaluator
        self.ledger = ledger
        self.coordinator = coordinator

    def _server_optimizer(self, job: Job) -> ServerOptimizer | None:
        """The round config's server optimizer (its digest on the ledger was checked when
        the job trained)."""
        try:
            return round_server_optimizer((job.round.get("config") or {}).get("server_optimizer"))
        except ConfigError as exc:
            raise JobFailed(f"round {job.round_id}: server_optimizer is not usable: {exc}") from None

    def _check_base(self, job: Job) -> None:
        """The base the coordinator names must be what the ledger finalised for the round
        that produced it (adapter and server state): otherwise a coordinator could start
        a round from an adapter, or reset a server state, that no majority attested."""
        base = job.round.get("base") or {}
        if not base.get("round_id"):
            if self._server_optimizer(job) is not None and base.get("server_state_hash"):
                raise JobFailed(f"round {job.round_id}: the base names a server state but no "
                                "round that produced it; not attested")
            return
        source = self.ledger.consortium.get_round(int(base["round_id"]))
        found = (source.status, source.aggregate_digest, source.server_state_digest)
        expected = ("final", base.get("adapter_hash"), base.get("server_state_hash"))
        if found != expected:
            raise JobFailed(f"round {job.round_id}: its base is round {base['round_id']}'s "
                            f"adapter {expected[1]} (server state {expected[2]}), but the "
                            f"ledger holds that round {found[0]} with {found[1]} (server state "
                            f"{found[2]}); not attested")

    def attest(self, job: Job) -> None:
        aggregate = self.coordinator.aggregate(job.round_id)
        if aggregate is None:
            round_ = self.coordinator.get_round(job.round_id)
            if round_.status == "failed":
                raise JobFailed(f"round {job.round_id} failed at the coordinator")
            raise Wait()
        ledger = self.ledger
        if ledger.consortium.get_round(job.round_id).status == "open":
            raise Wait()  # the ledger takes attestations once the round is closed
        config = self.store.config(job)
        loaded = self.host.model(config)
        submissions = {s.org: s for s in ledger.consortium.list_submissions(job.round_id)}
        included = sorted(aggregate.included, key=lambda i: i["org"])
        if not included:
            raise JobFailed(f"round {job.round_id}: the aggregate includes no update")
        if job.round.get("validation"):
            # The committee's verdict, from the votes on the ledger (final after the vote
            # deadline): an update it rejected must not be in the aggregate.
            verdict = verdict_of(ledger.consortium.get_round(job.round_id),
                                 list(submissions.values()),
                                 ledger.consortium.list_votes(job.round_id))
            refused = sorted(i["org"] for i in included if not verdict.get(i["org"], False))
            if refused:
                raise JobFailed(f"round {job.round_id}: the aggregate includes update(s) of "
                                f"{refused}, which the validator committee rejected; not attested")
        own_path = self.store.update_path(job.round_id)
        updates = []
        for item in included:
            org, update_hash = item["org"], item["update_hash"]
            on_ledger = submissions.get(org)
            if on_ledger is None or on_ledger.update_hash != update_hash or (
                    on_ledger.num_samples != item["num_samples"]):
                raise JobFailed(f"round {job.round_id}: the aggregate includes {org}'s update "
                                f"{update_hash} ({item['num_samples']} samples), which is not "
                                "the submission on the ledger; not attested")
            if org == self.msp_id and own_path.exists():
                data = own_path.read_bytes()
            else:
                data = self.host.blob(update_hash)
            if sha256_hex(data) != update_hash:
                raise JobFailed(f"round {job.round_id}: blob of {org} hashes to "
                                f"{sha256_hex(data)}, not {update_hash}; not attested")
            updates.append(ClientUpdate(client_id=org, tensors=self.host.load_update(data, loaded),
                                        num_samples=int(item["num_samples"])))
        strategy_info = aggregate.strategy.model_dump(mode="json")
        strategy = build_strategy(strategy_info.get("name", "fedavg"), strategy_info.get("params"))
        self._check_base(job)
        reference = self.host.base_state(job, loaded)
        result = strategy.aggregate(updates, reference=reference)
        tensors, state_digest = result.tensors, None
        server = self._server_optimizer(job)
        if server is not None:
            try:
                stepped = server.step(reference, result.tensors,
                                      self.host.base_server_state(job, loaded, server))
            except ServerOptimizerError as exc:
                raise JobFailed(f"round {job.round_id}: the server step cannot be recomputed: "
                                f"{exc}; not attested") from None
            tensors, state_digest = stepped.tensors, sha256_hex(update_bytes(stepped.state))
        digest = sha256_hex(update_bytes(tensors))
        if digest != aggregate.aggregate_digest:
            raise JobFailed(f"round {job.round_id}: aggregate digest mismatch: the coordinator "
                            f"announced {aggregate.aggregate_digest}, recomputed {digest} from "
                            f"{len(updates)} ledger-checked updates; not attested")
        if state_digest != aggregate.server_state_digest:
            raise JobFailed(f"round {job.round_id}: server state mismatch: the coordinator "
                            f"announced {aggregate.server_state_digest}, recomputed "
                            f"{state_digest} ({server.name if server else 'no server optimizer'} "
                            "from the base state); not attested")
        ledger.consortium.attest_aggregate(Attestation(
            round_id=job.round_id, org=self.msp_id, aggregate_digest=digest,
            server_state_digest=state_digest)).submit()
        folder = Path(self.data_dir) / "models" / f"round-{job.round_id:05d}"
        save_adapter(folder, tensors, adapter_config_dict(loaded.model))
        with self.store.sessions() as session:
            if session.get(ModelVersionRow, job.round_id) is None:
                session.add(ModelVersionRow(
                    round_id=job.round_id, digest=digest,
                    adapter_hash=aggregate.aggregate_digest, strategy=strategy_info,
                    included=included, path=str(folder)))
                session.commit()
        # The org's own score of the attested aggregate on its test split; a failure here
        # is recorded in the metrics and never undoes or fails the attestation.
        self.store.update(job.id, progress=0.95)
        metrics = {k: v for k, v in (job.metrics or {}).items() if not k.startswith("global_")}
        if str(metrics.get("eval_error", "")).startswith("global:"):
            metrics.pop("eval_error")  # from an earlier try of this step
        evaluated = self.evaluator.metrics(config, loaded, tensors, "global")
        if "eval_error" in evaluated and "eval_error" in metrics:
            evaluated["eval_error"] = f"{metrics['eval_error']}; {evaluated['eval_error']}"
        metrics.update(evaluated)
        self.store.update(job.id, status="attested", progress=1.0, error=None, metrics=metrics)
