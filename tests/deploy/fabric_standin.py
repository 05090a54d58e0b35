"""A recording stand-in for Fabric's command-line tools (``peer``, ``osnadmin``,
``configtxgen``, ``configtxlator``), so that the deployment's scripts run for real
without a Fabric network: ``python fabric_standin.py TOOL ARGS...``.

Every call is appended to ``$STANDIN_DIR/calls.jsonl`` (the tool, its argv and the
``CORE_PEER_*`` variables it ran with: who acted, against which peer), and answers as
Fabric 2.5's tools would, printing the JSON they print (Go's ``json.MarshalIndent`` of
the lifecycle results: numbers for sequences, ``{}`` for an empty result). The network
it answers for lives in ``$STANDIN_DIR/state.json``:

  orderer     channel -> member MSP ids (the channel's application orgs)
  joined      MSP id  -> channels its peer has joined
  installed   MSP id  -> package ids installed on its peer
  approvals   channel -> sequence -> MSP id -> the definition it approved
  committed   channel -> the committed definition (version, sequence, policy)

and it enforces the lifecycle rules the scripts rely on: an approval at the committed
sequence or the next one only, one approval per org and sequence (a second one with
unchanged content fails, as on Fabric), a commit only at the next sequence and with a
majority of the members' approvals, channel-scoped queries only on a peer that joined.
Block and config files carry a small JSON naming their channel instead of protobufs.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

STATE = "state.json"
CALLS = "calls.jsonl"


class Refused(Exception):
    """The tool fails with this message (exit status 1), as Fabric's would."""


def empty_state() -> dict[str, Any]:
    return {"orderer": {}, "joined": {}, "installed": {}, "approvals": {}, "committed": {}}


@contextmanager
def locked_state(root: Path) -> Iterator[dict[str, Any]]:
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = root / STATE
        state = json.loads(path.read_text()) if path.exists() else empty_state()
        yield state
        path.write_text(json.dumps(state, indent=1, sort_keys=True))


def option(args: list[str], *names: str, default: str | None = None) -> str | None:
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return default


def required(args: list[str], *names: str) -> str:
    value = option(args, *names)
    if value is None:
        raise Refused(f"required flag {names[0]} not set")
    return value


def out(value: Any) -> None:
    print(json.dumps(value, indent="\t"))


def msp() -> str:
    value = os.environ.get("CORE_PEER_LOCALMSPID")
    if not value:
        raise Refused("CORE_PEER_LOCALMSPID is not set")
    return value


def read_block(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# ----------------------------------------------------------------------------- lifecycle

def policy_of(args: list[str]) -> str:
    if (reference := option(args, "--channel-config-policy")) is not None:
        return f"channel-config-policy {reference}"
    if (signature := option(args, "--signature-policy")) is not None:
        return f"signature-policy {signature}"
    return "channel-config-policy /Channel/Application/Endorsement"  # the peer CLI's default


def next_definition(state, args):  # noqa: ANN001, ANN201
    """(channel, definition) of a readiness check or commit, which must be the next
    sequence after the committed one, as Fabric's lifecycle requires."""
    channel = channel_of(state, args)
    definition = definition_of(args)
    current = committed_sequence(state, channel)
    if definition["sequence"] != current + 1:
        raise Refused(f"requested sequence is {definition['sequence']}, but new definition "
                      f"must be sequence {current + 1}")
    return channel, definition


def definition_of(args: list[str]) -> dict[str, Any]:
    if option(args, "--collections-config") is not None:
        raise Refused("the stand-in knows no collections; the deployment has none")
    return {"name": required(args, "--name", "-n"), "version": required(args, "--version", "-v"),
            "sequence": int(required(args, "--sequence")), "policy": policy_of(args),
            "init_required": "--init-required" in args}


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("name", "version", "sequence", "policy", "init_required")
    return all(a.get(k) == b.get(k) for k in keys)


def channel_of(state: dict[str, Any], args: list[str]) -> str:
    channel = required(args, "--channelID", "-C")
    if channel not in state["joined"].get(msp(), []):
        raise Refused(f"channel '{channel}' not found")  # the peer did not join it
    return channel


def committed_sequence(state: dict[str, Any], channel: str) -> int:
    committed = state["committed"].get(channel)
    return committed["sequence"] if committed else 0


def approvals_of(state: dict[str, Any], channel: str, definition: dict[str, Any]) -> dict[str, bool]:
    approved = state["approvals"].get(channel, {}).get(str(definition["sequence"]), {})
    return {member: member in approved and same_content(approved[member], definition)
            for member in state["orderer"][channel]}


def committed_json(state: dict[str, Any], channel: str) -> dict[str, Any]:
    definition = state["committed"][channel]
    result = {"sequence": definition["sequence"], "version": definition["version"],
              "endorsement_plugin": "escc", "validation_plugin": "vscc",
              "validation_parameter": base64.b64encode(definition["policy"].encode()).decode(),
              "collections": {}}
    if definition.get("init_required"):
        result["init_required"] = True
    result["approvals"] = approvals_of(state, channel, definition)
    return result


def lifecycle(state: dict[str, Any], command: str, args: list[str]) -> None:
    if command == "calculatepackageid":
        package = Path(args[0])
        with tarfile.open(package) as tar:
            label = json.load(tar.extractfile("metadata.json"))["label"]  # type: ignore[arg-type]
        print(f"{label}:{hashlib.sha256(package.read_bytes()).hexdigest()}")
    elif command == "install":
        package = Path(args[0])
        with tarfile.open(package) as tar:
            label = json.load(tar.extractfile("metadata.json"))["label"]  # type: ignore[arg-type]
        package_id = f"{label}:{hashlib.sha256(package.read_bytes()).hexdigest()}"
        installed = state["installed"].setdefault(msp(), [])
        if package_id in installed:
            raise Refused(f"chaincode already successfully installed (package ID '{package_id}')")
        installed.append(package_id)
    elif command == "queryinstalled":
        ids = state["installed"].get(msp(), [])
        out({"installed_chaincodes": [{"package_id": i, "label": i.split(":")[0]} for i in ids]}
            if ids else {})
    elif command == "approveformyorg":
        channel = channel_of(state, args)
        definition = definition_of(args)
        package_id = option(args, "--package-id", default="")
        current = committed_sequence(state, channel)
        sequence = definition["sequence"]
        if sequence == current:
            if not same_content(state["committed"][channel], definition):
                raise Refused(f"attempted to redefine the current committed sequence ({current}) "
                              f"for namespace {definition['name']} with different parameters")
        elif sequence != current + 1:
            raise Refused(f"requested sequence is {sequence}, but new definition must be "
                          f"sequence {current + 1}")
        approved = state["approvals"].setdefault(channel, {}).setdefault(str(sequence), {})
        mine = approved.get(msp())
        if mine is not None and same_content(mine, definition) and mine["package_id"] == package_id:
            raise Refused(f"attempted to redefine uncommitted sequence ({sequence}) for "
                          f"namespace {definition['name']} with unchanged content")
        approved[msp()] = {**definition, "package_id": package_id}
    elif command == "checkcommitreadiness":
        channel, definition = next_definition(state, args)
        out({"approvals": approvals_of(state, channel, definition)})
    elif command == "commit":
        channel, definition = next_definition(state, args)
        approvals = approvals_of(state, channel, definition)
        if sum(approvals.values()) * 2 <= len(approvals):  # LifecycleEndorsement: MAJORITY
            raise Refused(f"transaction invalidated with status (ENDORSEMENT_POLICY_FAILURE): "
                          f"approvals {approvals}")
        state["committed"][channel] = definition
    elif command == "querycommitted":
        channel = channel_of(state, args)
        name = option(args, "--name", "-n")
        definition = state["committed"].get(channel)
        if name is None:
            out({"chaincode_definitions": [{"name": definition["name"],
                                            **committed_json(state, channel)}]}
                if definition else {})
        elif definition is None or definition["name"] != name:
            raise Refused(f"query failed with status: 404 - namespace {name} is not defined")
        else:
            out(committed_json(state, channel))
    else:
        raise Refused(f"unknown lifecycle command {command}")


# ----------------------------------------------------------------------------- channels

def peer_channel(state: dict[str, Any], command: str, args: list[str]) -> None:
    joined = state["joined"].setdefault(msp(), [])
    if command == "list":
        print("Channels peers has joined: ")
        for channel in joined:
            print(channel)
    elif command == "join":
        channel = read_block(required(args, "-b", "--blockpath"))["channel"]
        if msp() not in state["orderer"].get(channel, []):
            raise Refused(f"{msp()} is not a member of channel {channel}")
        if channel in joined:
            raise Refused(f"ledger [{channel}] already exists with state [ACTIVE]")
        joined.append(channel)
    elif command == "fetch":
        channel = required(args, "-c", "--channelID")
        if channel not in state["orderer"]:
            raise Refused(f"channel {channel} not found on the orderer")
        Path(args[1]).write_text(json.dumps({"channel": channel, "what": args[0]}))
    elif command == "signconfigtx":
        required(args, "-f", "--file")
    elif command == "update":
        channel = required(args, "-c", "--channelID")
        envelope = read_block(required(args, "-f", "--file"))
        update = envelope["payload"]["data"]["config_update"]
        assert update["channel"] == channel, (update, channel)
        for member in update["added"]:
            if member not in state["orderer"][channel]:
                state["orderer"][channel].append(member)
    else:
        raise Refused(f"unknown channel command {command}")


def osnadmin(state: dict[str, Any], args: list[str]) -> None:
    channel = required(args, "--channelID", "-c")
    if args[:2] == ["channel", "list"]:
        if channel in state["orderer"]:
            print(f"Status: 200\n{json.dumps({'name': channel, 'status': 'active'})}")
        else:
            print("Status: 404")
    elif args[:2] == ["channel", "join"]:
        block = read_block(required(args, "--config-block", "-b"))
        if channel in state["orderer"]:
            raise Refused(f"Status: 405 channel {channel} already exists")
        state["orderer"][channel] = block["members"]
        print("Status: 201")
    else:
        raise Refused(f"unknown osnadmin command {args[:2]}")


def configtxgen(args: list[str]) -> None:
    configtx = yaml.safe_load((Path(required(args, "-configPath")) / "configtx.yaml").read_text())
    if (org := option(args, "-printOrg")) is not None:
        if org not in {o["ID"] for o in configtx["Organizations"]}:
            raise Refused(f"organization {org} not found in configtx.yaml")
        out({"policies": {}, "values": {"MSP": {"value": {"config": {"name": org}}}}})
        return
    profile = configtx["Profiles"][required(args, "-profile")]
    members = [o["ID"] for o in profile["Application"]["Organizations"]]
    Path(required(args, "-outputBlock")).write_text(
        json.dumps({"channel": required(args, "-channelID"), "members": members}))


def configtxlator(state: dict[str, Any], args: list[str]) -> None:
    command = args[0]
    if command == "proto_decode":
        data = read_block(required(args, "--input"))
        if required(args, "--type") == "common.Block":
            groups = {m: {} for m in state["orderer"][data["channel"]]}
            out({"data": {"data": [{"payload": {"data": {"config": {
                "channel_id": data["channel"],
                "channel_group": {"groups": {"Application": {"groups": groups}}}}}}}]}})
        else:
            out(data)
    elif command == "proto_encode":
        Path(required(args, "--output")).write_text(Path(required(args, "--input")).read_text())
    elif command == "compute_update":
        def members(path: str) -> list[str]:
            return list(json.loads(Path(path).read_text())["channel_group"]["groups"]
                        ["Application"]["groups"])
        original, updated = members(required(args, "--original")), members(required(args, "--updated"))
        Path(required(args, "--output")).write_text(json.dumps(
            {"channel": required(args, "--channel_id"),
             "added": [m for m in updated if m not in original]}))
    else:
        raise Refused(f"unknown configtxlator command {command}")


TOOLS = ("peer", "osnadmin", "configtxgen", "configtxlator")


def install(bin_dir: Path) -> Path:
    """Write the stand-in's tools into ``bin_dir`` (put it first on PATH, and set
    STANDIN_DIR to the folder of its state and calls)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    return bin_dir


def read_calls(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / CALLS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main(argv: list[str]) -> int:
    root = Path(os.environ["STANDIN_DIR"])
    tool, args = argv[0], argv[1:]
    env = {k: v for k, v in os.environ.items() if k.startswith("CORE_PEER_")}
    with open(root / CALLS, "a") as calls:
        calls.write(json.dumps({"tool": tool, "argv": args, "env": env}) + "\n")
    try:
        with locked_state(root) as state:
            if tool == "peer" and args[:1] == ["lifecycle"]:
                lifecycle(state, args[2], args[3:])
            elif tool == "peer" and args[:1] == ["channel"]:
                peer_channel(state, args[1], args[2:])
            elif tool == "osnadmin":
                osnadmin(state, args)
            elif tool == "configtxgen":
                configtxgen(args)
            elif tool == "configtxlator":
                configtxlator(state, args)
            else:
                raise Refused(f"the stand-in does not know {tool} {args[:2]}")
    except Refused as refused:
        print(f"Error: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
