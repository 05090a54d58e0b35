"""What the benchmarks that run ``fedledger up`` (:class:`fedledger.launcher.Deployment`)
read besides the services' APIs (``round_overhead.py`` has the round-timing helpers):

* the dev peer's block-cutting settings: the deployment's own (``deploy/fabric/
  configtx.yaml``), handed to the host when its settings have a field for them
  (:func:`pass_deployment_orderer`), and the ones in force, read back from each channel's
  config block (block 0) and checked by a lone transaction's commit latency
  (:func:`probe_commit_latency`);
* every transaction the host's dev peer committed, read after the deployment has stopped
  from a copy of its ledgers (:func:`read_ledgers`): channel, block, validation code,
  proposal timestamp, function and arguments;
* the services' log lines that report a retried call (:func:`retry_lines`), and the org
  nodes' and bridge's log lines that mark a round's steps (:func:`org_log_marks`,
  :func:`bridge_log_marks`).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
import time
import typing
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIGTX = REPO / "deploy" / "fabric" / "configtx.yaml"

#: validation codes that mean "another transaction changed what this one read"
CONFLICT_CODES = ("MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT")

# --------------------------------------------------------------------------- orderer settings

_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(duration: str) -> float:
    """A Go duration ("250ms", "2s") in seconds."""
    parts = _DURATION.findall(duration.strip())
    if not parts or "".join(a + b for a, b in parts) != duration.strip():
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def deployment_orderer() -> dict[str, Any]:
    """The ``Orderer`` block-cutting settings of ``deploy/fabric/configtx.yaml``, as
    :class:`~fedledger.devnet.orderer.OrdererSettings` fields."""
    try:
        from fedledger.devnet.orderer import OrdererSettings
    except ImportError:
        OrdererSettings = None
    if OrdererSettings is not None and hasattr(OrdererSettings, "from_configtx"):
        return asdict(OrdererSettings.from_configtx(CONFIGTX))
    import yaml

    orderer = yaml.safe_load(CONFIGTX.read_text())["Orderer"]
    size = orderer["BatchSize"]
    kib = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}

    def size_of(text: Any) -> int:
        number, unit = str(text).split()
        return int(number) * kib[unit.upper()]

    return {"batch_timeout_s": _seconds(str(orderer["BatchTimeout"])),
            "max_message_count": int(size["MaxMessageCount"]),
            "preferred_max_bytes": size_of(size["PreferredMaxBytes"]),
            "absolute_max_bytes": size_of(size["AbsoluteMaxBytes"])}


def _host_orderer_field() -> str | None:
    """The field of ``HostSettings`` that holds the dev peer's orderer settings, if it has
    one (the host builds its dev network with it)."""
    try:
        from fedledger.devnet.orderer import OrdererSettings
        from fedledger.host.settings import HostSettings
    except ImportError:
        return None
    for name, info in HostSettings.model_fields.items():
        annotation = info.annotation
        if annotation is OrdererSettings or OrdererSettings in typing.get_args(annotation):
            return name
    return None


def pass_deployment_orderer(deployment) -> str | None:
    """After ``deployment.prepare()``, before ``start()``: put the deployment's block
    settings into the host's config when ``HostSettings`` has a field for them. Returns the
    field's name, or None when the host has no such knob (it uses its dev network's
    default, see :func:`orderer_in_force`)."""
    from fedledger.host.settings import HostSettings

    name = _host_orderer_field()
    if name is None:
        return None
    path = deployment.config_dir / "host.json"
    data = json.loads(path.read_text())
    data[name] = deployment_orderer()
    HostSettings.model_validate(data)  # refuse here, not in the host's log
    path.write_text(json.dumps(data, indent=2) + "\n")
    return name


def code_default_orderer() -> dict[str, Any] | None:
    """What the host's dev network cuts by when nothing is passed: the default of
    ``DevNetwork``'s ``orderer`` (an ``OrdererSettings``) or ``batch_timeout`` (seconds)
    parameter; None when neither is declared with a value."""
    import inspect

    from fedledger.devnet.network import DevNetwork

    params = inspect.signature(DevNetwork.__init__).parameters
    default = params["orderer"].default if "orderer" in params else None
    if default is not None and default is not inspect.Parameter.empty and hasattr(
            default, "batch_timeout_s"):
        return {"batch_timeout_s": default.batch_timeout_s,
                "max_message_count": default.max_message_count,
                "preferred_max_bytes": default.preferred_max_bytes,
                "source": "DevNetwork(orderer=...) default (the host passes none)"}
    if "batch_timeout" in params and isinstance(params["batch_timeout"].default, float):
        return {"batch_timeout_s": params["batch_timeout"].default,
                "max_message_count": params["max_batch"].default if "max_batch" in params else None,
                "preferred_max_bytes": None,
                "source": "DevNetwork(batch_timeout=...) default (the host passes none)"}
    return None


def probe_commit_latency(deployment, probes: int = 3) -> list[float]:
    """Seconds from submit to commit of ``probes`` lone transactions (``Init`` on Org1's
    private channel, idempotent), one after another while nothing else runs: a block is
    cut ``BatchTimeout`` after its first envelope, so each takes at least that long."""
    from fedledger.fabric.connection import GatewayEndpoint
    from fedledger.fabric.identity import load_signing_identity

    info = deployment.host_info
    org = deployment.crypto.org(deployment.orgs[0].name)
    gateway = GatewayEndpoint(endpoint=info["gateway"], tls_ca_cert=info["tls_ca_cert"],
                              server_name=info["server_name"]).connect(
        load_signing_identity(org.user.msp_dir, org.msp_id))
    try:
        contract = gateway.network(f"{deployment.orgs[0].name.lower()}-private").contract(
            "fedledger", "private")
        out = []
        for _ in range(probes):
            t = time.perf_counter()
            contract.submit("Init")
            out.append(time.perf_counter() - t)
        return out
    finally:
        gateway.close()


# --------------------------------------------------------------------------- ledgers

@dataclass
class LedgerTx:
    """One committed envelope of the host's dev peer."""

    channel: str
    block: int
    index: int            # position in the block
    block_size: int       # envelopes in the block
    tx_id: str
    code: str             # TxValidationCode name (VALID, MVCC_READ_CONFLICT, ...)
    timestamp: float      # the proposal's channel-header time (epoch s): when it was made
    creator: str          # MSP id of the submitting client
    function: str         # chaincode function without the contract prefix; "(config)"
    args: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.code == "VALID"

    @property
    def conflict(self) -> bool:
        return self.code in CONFLICT_CODES

    def rounds(self) -> range:
        """The rounds the transaction is about (from its argument: a record with
        ``round_id``, or ``first_round``..``last_round``, or a bare round id)."""
        if len(self.args) < 2:
            return range(0)
        try:
            value = json.loads(self.args[1])
        except ValueError:
            return range(0)
        if isinstance(value, int):
            return range(value, value + 1)
        if isinstance(value, dict):
            if isinstance(value.get("round_id"), int):
                return range(value["round_id"], value["round_id"] + 1)
            if isinstance(value.get("first_round"), int) and isinstance(value.get("last_round"), int):
                return range(value["first_round"], value["last_round"] + 1)
        return range(0)


@dataclass
class Ledgers:
    transactions: list[LedgerTx]
    #: channel -> the orderer settings its config block (block 0) holds; None: no config block
    orderer: dict[str, dict[str, Any] | None]
    #: how the files were read ("Ledger" with its hash-chain check, or plain sqlite)
    read_with: dict[str, str]


def _decode(envelope: bytes, channel: str, block: int, index: int, size: int, code: int
            ) -> tuple[LedgerTx, dict[str, Any] | None]:
    from fabric_protos.common import common_pb2, configtx_pb2
    from fabric_protos.msp import identities_pb2
    from fabric_protos.orderer import configuration_pb2
    from fabric_protos.peer import chaincode_pb2, proposal_pb2, transaction_pb2
    from google.protobuf.message import DecodeError

    code_name = transaction_pb2.TxValidationCode.Name(code)
    tx = LedgerTx(channel=channel, block=block, index=index, block_size=size, tx_id="",
                  code=code_name, timestamp=0.0, creator="", function="(undecodable)")
    orderer = None
    try:
        env = common_pb2.Envelope.FromString(envelope)
        payload = common_pb2.Payload.FromString(env.payload)
        header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        signature = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        tx.tx_id = header.tx_id
        tx.timestamp = header.timestamp.seconds + header.timestamp.nanos / 1e9
        if signature.creator:
            tx.creator = identities_pb2.SerializedIdentity.FromString(signature.creator).mspid
        if header.type == common_pb2.HeaderType.CONFIG:
            tx.function = "(config)"
            config = configtx_pb2.ConfigEnvelope.FromString(payload.data).config
            values = config.channel_group.groups["Orderer"].values
            timeout = configuration_pb2.BatchTimeout.FromString(values["BatchTimeout"].value)
            batch = configuration_pb2.BatchSize.FromString(values["BatchSize"].value)
            orderer = {"batch_timeout_s": _seconds(timeout.timeout),
                       "max_message_count": batch.max_message_count,
                       "preferred_max_bytes": batch.preferred_max_bytes,
                       "absolute_max_bytes": batch.absolute_max_bytes,
                       "batch_timeout": timeout.timeout}
        elif header.type == common_pb2.HeaderType.ENDORSER_TRANSACTION:
            action = transaction_pb2.Transaction.FromString(payload.data).actions[0]
            cap = transaction_pb2.ChaincodeActionPayload.FromString(action.payload)
            cpp = proposal_pb2.ChaincodeProposalPayload.FromString(cap.chaincode_proposal_payload)
            spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(cpp.input)
            args = [a.decode(errors="replace") for a in spec.chaincode_spec.input.args]
            tx.function = args[0].rsplit(":", 1)[-1] if args else ""
            tx.args = [a[:2000] for a in args]
        else:
            tx.function = f"(header type {header.type})"
    except (DecodeError, IndexError, KeyError, ValueError):
        pass
    return tx, orderer


def _blocks(path: Path, channel: str) -> tuple[Iterator[Any], str]:
    """The file's blocks: through the dev peer's ``Ledger`` (which checks the hash chain on
    open), or, if that refuses the file, plain read-only sqlite."""
    from fabric_protos.common import common_pb2

    from fedledger.devnet.ledger import Ledger
    from fedledger.fabric.errors import LedgerError

    try:
        ledger = Ledger(path, channel)
    except LedgerError as exc:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = db.execute("SELECT block FROM blocks ORDER BY number").fetchall()
        db.close()
        return (common_pb2.Block.FromString(r[0]) for r in rows), f"sqlite ({exc})"

    def gen() -> Iterator[Any]:
        try:
            yield from ledger.blocks_from(0)
        finally:
            ledger.close()

    return gen(), "Ledger (hash chain checked)"


def read_ledgers(fabric_root: Path) -> Ledgers:
    """Every envelope of every channel ledger under ``fabric_root``, read from a copy (the
    originals are not opened). Run it after the host has stopped."""
    from fedledger.devnet.blocks import transactions_filter

    txs: list[LedgerTx] = []
    orderer: dict[str, dict[str, Any] | None] = {}
    read_with: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fedledger-ledgers-") as tmp:
        for original in sorted(Path(fabric_root).rglob("*.sqlite")):
            copy = Path(tmp) / original.name
            for suffix in ("", "-wal", "-shm"):
                src = original.with_name(original.name + suffix)
                if src.exists():
                    shutil.copy2(src, copy.with_name(copy.name + suffix))
            db = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT value FROM ledger_info WHERE name='channel_id'").fetchone()
            except sqlite3.Error:
                row = None  # not a ledger
            finally:
                db.close()
            if row is None:
                continue
            channel = row[0]
            orderer[channel] = None
            blocks, read_with[channel] = _blocks(copy, channel)
            for block in blocks:
                codes = transactions_filter(block)
                envelopes = list(block.data.data)
                for index, envelope in enumerate(envelopes):
                    code = codes[index] if index < len(codes) else 255  # NOT_VALIDATED
                    tx, config = _decode(envelope, channel, block.header.number, index,
                                         len(envelopes), code)
                    txs.append(tx)
                    if config is not None and block.header.number == 0:
                        orderer[channel] = config
    return Ledgers(txs, orderer, read_with)


# --------------------------------------------------------------------------- logs

#: the warning each service logs when it will try a failed call again
RETRY_PATTERNS = {
    "org node": re.compile(r"retrying in [\d.]+ s"),     # orgnode/worker.py RoundWorker.run
    "coordinator": re.compile(r"will retry"),            # coordinator/rounds.py RoundService._step
    "bridge": re.compile(r"will be retried"),            # bridge/service.py Bridge.run (host log)
}
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (.*)$")
_NAMES_CONFLICT = re.compile("|".join(CONFLICT_CODES) + r"|MVCC|phantom", re.IGNORECASE)


@dataclass
class RetryLine:
    service: str          # log file stem: org1, coordinator, host
    kind: str             # org node, coordinator, bridge
    time: float           # epoch s (the line's local asctime)
    text: str
    names_conflict: bool  # the logged error mentions an MVCC / phantom read conflict


def retry_lines(log_dir: Path) -> list[RetryLine]:
    out = []
    for log in sorted(Path(log_dir).glob("*.log")):
        service = log.stem
        kinds = (["bridge"] if service == "host" else ["coordinator"] if service == "coordinator"
                 else ["org node"])
        for line in log.read_text(errors="replace").splitlines():
            m = _LOG_LINE.match(line)
            if m is None:
                continue
            for kind in kinds:
                if RETRY_PATTERNS[kind].search(m.group(2)):
                    out.append(RetryLine(
                        service=service, kind=kind,
                        time=datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(),
                        text=m.group(2)[:400],
                        names_conflict=bool(_NAMES_CONFLICT.search(m.group(2)))))
    return out


_ORG_MARKS = {
    # orgnode/participation.py: the org saw the open round and decided (then records it)
    "decided": re.compile(r"fedledger\.orgnode\.participation: round (\d+): .* decided"),
    # orgnode/worker.py RoundWorker._job_for: the job exists (decision recorded)
    "queued": re.compile(r"fedledger\.orgnode\.worker: round (\d+): job \d+ queued"),
}


def org_log_marks(log_dir: Path, msp_ids: dict[str, str]) -> dict[int, dict[str, dict[str, float]]]:
    """round -> mark -> MSP id -> epoch s of the org nodes' log lines: ``decided`` (the
    node saw the open round and took its participation decision) and ``queued`` (its
    training job was created, after the decision was recorded on its private channel).
    ``msp_ids``: log file stem (org1) -> MSP id."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for stem, msp in msp_ids.items():
        log = Path(log_dir) / f"{stem}.log"
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            m = _LOG_LINE.match(line)
            if m is None:
                continue
            for mark, pattern in _ORG_MARKS.items():
                hit = pattern.search(m.group(2))
                if hit:
                    when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    out.setdefault(int(hit.group(1)), {}).setdefault(mark, {}).setdefault(msp, when)
    return out


_BRIDGE_MARKS = {
    # bridge/service.py: the batch of final rounds is built, then signed by a threshold
    "anchor_built": re.compile(r"fedledger\.bridge\.service: built anchor for rounds (\d+)\.\.(\d+)"),
    "anchor_signed": re.compile(r"fedledger\.bridge\.service: anchor (\d+)\.\.(\d+) signed as"),
}


def bridge_log_marks(host_log: Path) -> dict[int, dict[str, float]]:
    """round -> epoch s of the bridge's ``built anchor`` and ``anchor ... signed`` log lines
    (the host's log) for the anchor covering it (the first of each)."""
    out: dict[int, dict[str, float]] = {}
    path = Path(host_log)
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        m = _LOG_LINE.match(line)
        if m is None:
            continue
        for mark, pattern in _BRIDGE_MARKS.items():
            hit = pattern.search(m.group(2))
            if hit:
                when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                for round_id in range(int(hit.group(1)), int(hit.group(2)) + 1):
                    out.setdefault(round_id, {}).setdefault(mark, when)
    return out
