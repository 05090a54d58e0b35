"""The crypto material `fedledger devnet` (fedledger.devnet.ca) writes has cryptogen's
layout for the same config: every file and folder `cryptogen generate` makes, no more.

Fabric's binaries are not available here, so the expected layout is computed by
:func:`cryptogen_layout`, a transcription of what cryptogen (Fabric 2.5,
cmd/cryptogen/main.go and internal/cryptogen/msp/msp.go) writes:

- per org: ``ca/{<ca>-cert.pem, priv_sk}``, ``tlsca/{tls<ca>-cert.pem, priv_sk}``, the
  verifying ``msp/{admincerts/, cacerts/<ca>-cert.pem, tlscacerts/tls<ca>-cert.pem,
  config.yaml}`` (NodeOUs: admincerts stays empty);
- per node (template ``{{.Prefix}}{{.Index}}`` from ``Start``, then ``Specs``; folder =
  common name, default ``{{.Hostname}}.{{.Domain}}``) and per user (``User1..N@domain``
  for peer orgs, ``Admin@domain`` for every org): a local ``msp/{admincerts/, cacerts/,
  keystore/priv_sk, signcerts/<cn>-cert.pem, tlscacerts/, config.yaml}`` and ``tls/{ca.crt,
  server|client.crt, server|client.key}`` (client for users and admins).

deploy/scripts/crypto.sh runs cryptogen and adds what cryptogen's config cannot say: per
peer org ``chaincode/tls/{ca.crt, server.crt, server.key}``, the TLS certificate of the
org's chaincode server from the org's TLS CA, and ``services/<name>/tls/`` (the same three
files) for the org's REST services' HTTPS: ``<org>-node`` in every peer org, ``coordinator``
and ``bridge`` in the operator org's (org1) (:func:`crypto_sh_layout`). It runs here with
a cryptogen stand-in (tests/deploy/crypto_standin.py: the dev CA) and the host's openssl.
"""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedledger.devnet.ca import CryptoConfig, default_crypto_config
from fedledger.devnet.network import DevNetwork

from .compose import DEPLOY, REPO
from .crypto_standin import run_crypto_sh

CONFIG = DEPLOY / "fabric" / "crypto-config.yaml"
# What crypto.sh adds under each peer org's folder: its chaincode server's TLS material.
CHAINCODE_TLS = ("chaincode/", "chaincode/tls/", "chaincode/tls/ca.crt",
                 "chaincode/tls/server.crt", "chaincode/tls/server.key")
OPERATOR_SERVICES = ("coordinator", "bridge")


def service_tls_paths(name: str) -> tuple[str, ...]:
    """What crypto.sh adds for one REST service of an org: its HTTPS material."""
    base = f"services/{name}/tls/"
    return ("services/", f"services/{name}/", base, base + "ca.crt", base + "server.crt",
            base + "server.key")


def _render(template: str, **data: object) -> str:
    for key, value in data.items():
        template = template.replace(f"{{{{.{key}}}}}", str(value))
    return template


def cryptogen_layout(config: dict) -> set[str]:
    """Relative paths (folders end with '/') cryptogen generate writes for ``config``."""
    paths: set[str] = set()

    def local_msp(base: str, cn: str, ca: str, tls_role: str) -> None:
        for folder in ("msp/", "msp/admincerts/", "msp/cacerts/", "msp/keystore/",
                       "msp/signcerts/", "msp/tlscacerts/", "tls/"):
            paths.add(f"{base}/{folder}")
        paths.update({f"{base}/", f"{base}/msp/cacerts/{ca}-cert.pem",
                      f"{base}/msp/tlscacerts/tls{ca}-cert.pem", f"{base}/msp/keystore/priv_sk",
                      f"{base}/msp/signcerts/{cn}-cert.pem", f"{base}/msp/config.yaml",
                      f"{base}/tls/ca.crt", f"{base}/tls/{tls_role}.crt",
                      f"{base}/tls/{tls_role}.key"})

    def org(spec: dict, kind: str) -> None:
        domain = spec["Domain"]
        assert spec.get("EnableNodeOUs") is True
        ca_host = (spec.get("CA") or {}).get("Hostname", "ca")
        ca = f"{ca_host}.{domain}"
        base = f"{'peer' if kind == 'peer' else 'orderer'}Organizations/{domain}"
        paths.update({f"{base}/", f"{base}/ca/", f"{base}/ca/{ca}-cert.pem", f"{base}/ca/priv_sk",
                      f"{base}/tlsca/", f"{base}/tlsca/tls{ca}-cert.pem", f"{base}/tlsca/priv_sk",
                      f"{base}/msp/", f"{base}/msp/admincerts/", f"{base}/msp/cacerts/",
                      f"{base}/msp/cacerts/{ca}-cert.pem", f"{base}/msp/tlscacerts/",
                      f"{base}/msp/tlscacerts/tls{ca}-cert.pem", f"{base}/msp/config.yaml"})
        template = spec.get("Template") or {}
        hosts = [_render(template.get("Hostname") or "{{.Prefix}}{{.Index}}", Prefix=kind,
                         Index=i + template.get("Start", 0), Domain=domain)
                 for i in range(template.get("Count", 0))]
        hosts += [s["Hostname"] for s in spec.get("Specs") or []]
        nodes = "peers" if kind == "peer" else "orderers"
        paths.add(f"{base}/{nodes}/")
        for host in hosts:
            cn = f"{host}.{domain}"
            local_msp(f"{base}/{nodes}/{cn}", cn, ca, "server")
        users = [f"User{i}@{domain}" for i in range(1, (spec.get("Users") or {}).get("Count", 0) + 1)
                 ] if kind == "peer" else []
        paths.add(f"{base}/users/")
        for user in [*users, f"Admin@{domain}"]:
            local_msp(f"{base}/users/{user}", user, ca, "client")

    for spec in config.get("PeerOrgs") or []:
        org(spec, "peer")
    for spec in config.get("OrdererOrgs") or []:
        org(spec, "orderer")
    paths.update({"peerOrganizations/", "ordererOrganizations/"})
    return paths


def crypto_sh_layout(config: dict) -> set[str]:
    """What deploy/scripts/crypto.sh leaves: cryptogen's layout and, per peer org, its
    chaincode server's TLS folder."""
    paths = cryptogen_layout(config)
    for spec in config.get("PeerOrgs") or []:
        domain = spec["Domain"]
        paths.update(f"peerOrganizations/{domain}/{p}" for p in CHAINCODE_TLS)
        services = [f"{domain.split('.')[0]}-node"]
        if domain == "org1.example.com":
            services += OPERATOR_SERVICES
        for name in services:
            paths.update(f"peerOrganizations/{domain}/{p}" for p in service_tls_paths(name))
    return paths


def written_layout(root: Path) -> set[str]:
    return {str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*")}


def test_the_oracle_matches_fabric_samples_test_network_paths() -> None:
    # Paths fabric-samples' test-network (cryptogen) and docs name, as a check of the oracle.
    layout = cryptogen_layout(yaml.safe_load(CONFIG.read_text()))
    for path in [
        "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/tls/ca.crt",
        "peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp/keystore/priv_sk",
        "peerOrganizations/org1.example.com/tlsca/tlsca.org1.example.com-cert.pem",
        "peerOrganizations/org2.example.com/users/User1@org2.example.com/tls/client.key",
        "ordererOrganizations/example.com/orderers/orderer.example.com/tls/server.crt",
        "ordererOrganizations/example.com/users/Admin@example.com/tls/client.crt",
        "ordererOrganizations/example.com/msp/tlscacerts/tlsca.example.com-cert.pem",
    ]:
        assert path in layout, path


def test_devca_writes_cryptogens_layout_for_the_deploy_config(tmp_path: Path) -> None:
    out = tmp_path / "organizations"
    # What the README documents: the devca module in cryptogen's place.
    subprocess.run([sys.executable, "-m", "fedledger.devnet.ca", "--config", str(CONFIG),
                    "--output", str(out)], check=True, capture_output=True, cwd=REPO, timeout=120)
    assert written_layout(out) == cryptogen_layout(yaml.safe_load(CONFIG.read_text()))
    # Node certificates as cryptogen makes them: SANs = CN, host name, the config's SANs.
    cert = x509.load_pem_x509_certificate(
        (out / "peerOrganizations/org2.example.com/peers/peer0.org2.example.com/tls/server.crt")
        .read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["peer0.org2.example.com", "peer0", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_fedledger_devnet_writes_the_same_layout_as_the_deploy_config(tmp_path: Path) -> None:
    # `fedledger devnet up --orgs 3` (DevNetwork without a config) writes exactly the
    # deploy config's material, so either folder serves docker-compose.
    assert default_crypto_config(["Org1", "Org2", "Org3"]) == CryptoConfig.from_file(CONFIG)
    network = DevNetwork(tmp_path / "devnet", ["Org1", "Org2", "Org3"])
    assert written_layout(network.crypto.root) == cryptogen_layout(
        yaml.safe_load(CONFIG.read_text()))


def test_layout_follows_the_config(tmp_path: Path) -> None:
    # Template Start/Hostname, explicit Specs, more users, a CA host name, another domain.
    config = {
        "OrdererOrgs": [{"Name": "Orderer", "Domain": "net.test", "EnableNodeOUs": True,
                         "Specs": [{"Hostname": "o1"}, {"Hostname": "o2"}]}],
        "PeerOrgs": [{"Name": "Alpha", "Domain": "alpha.net.test", "EnableNodeOUs": True,
                      "CA": {"Hostname": "rootca"},
                      "Template": {"Count": 2, "Start": 3, "Hostname": "node{{.Index}}"},
                      "Specs": [{"Hostname": "edge"}], "Users": {"Count": 2}}],
    }
    from fedledger.devnet.ca import write_crypto_config

    crypto = write_crypto_config(CryptoConfig.model_validate(config), tmp_path / "c")
    assert written_layout(tmp_path / "c") == cryptogen_layout(config)
    assert [n.host for n in crypto.orgs["Alpha"].nodes] == [
        "edge.alpha.net.test", "node3.alpha.net.test", "node4.alpha.net.test"]
    # Extending with one more user adds only that user (cryptogen extend).
    config["PeerOrgs"][0]["Users"]["Count"] = 3
    before = (tmp_path / "c/peerOrganizations/alpha.net.test/ca/priv_sk").read_bytes()
    write_crypto_config(CryptoConfig.model_validate(config), tmp_path / "c")
    assert written_layout(tmp_path / "c") == cryptogen_layout(config)
    assert (tmp_path / "c/peerOrganizations/alpha.net.test/ca/priv_sk").read_bytes() == before


def test_configs_cryptogen_accepts_but_the_dev_ca_cannot_honour_are_refused() -> None:
    with pytest.raises(ValueError, match="EnableNodeOUs"):
        CryptoConfig.model_validate({"PeerOrgs": [{"Name": "A", "Domain": "a.x"}]})
    with pytest.raises(ValueError):
        CryptoConfig.model_validate({"PeerOrgs": [{"Name": "A", "Domain": "a.x",
                                                   "EnableNodeOUs": True,
                                                   "CA": {"Country": "DE"}}]})


# ----------------------------------------------------------------------------- crypto.sh


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return san.get_values_for_type(x509.DNSName), ips


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_crypto_sh_writes_cryptogens_layout_and_each_chaincode_servers_tls(tmp_path: Path) -> None:
    out = tmp_path / "organizations"
    run_crypto_sh(out, bin_dir=tmp_path / "bin")
    assert written_layout(out) == crypto_sh_layout(yaml.safe_load(CONFIG.read_text()))
    now = dt.datetime.now(dt.UTC)
    for org in ("org1", "org2", "org3"):
        org_dir = out / f"peerOrganizations/{org}.example.com"
        tls, host = org_dir / "chaincode/tls", f"chaincode.{org}.example.com"
        tlsca_pem = (org_dir / f"tlsca/tlsca.{org}.example.com-cert.pem").read_bytes()
        assert (tls / "ca.crt").read_bytes() == tlsca_pem
        cert = _cert(tls / "server.crt")
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(tlsca_pem))
        # The host its org's package dials (and loopback, as cryptogen's nodes have).
        assert _names(cert) == ([host, "localhost"], ["127.0.0.1"])
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == host
        # A TLS server certificate, no Fabric identity: no NodeOU, no clientAuth, no CA.
        assert not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH]
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and not usage.key_cert_sign
        assert cert.not_valid_after_utc > now + dt.timedelta(days=3000)
        assert cert.not_valid_before_utc <= now
        key = serialization.load_pem_private_key((tls / "server.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        assert key.public_key() == cert.public_key()
        assert (tls / "server.key").stat().st_mode & 0o777 == 0o600
        assert (tls / "server.crt").stat().st_mode & 0o777 == 0o644


def test_crypto_sh_issues_each_rest_services_https_certificate(tmp_path: Path) -> None:
    out = tmp_path / "organizations"
    run_crypto_sh(out, bin_dir=tmp_path / "bin")
    services = {"org1": ["org1-node", *OPERATOR_SERVICES], "org2": ["org2-node"],
                "org3": ["org3-node"]}
    for org, names in services.items():
        org_dir = out / f"peerOrganizations/{org}.example.com"
        tlsca_pem = (org_dir / f"tlsca/tlsca.{org}.example.com-cert.pem").read_bytes()
        for name in names:
            tls = org_dir / "services" / name / "tls"
            assert (tls / "ca.crt").read_bytes() == tlsca_pem
            cert = _cert(tls / "server.crt")
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(tlsca_pem))
            # The compose host name the other services dial, and loopback (healthchecks).
            assert _names(cert) == ([name, "localhost"], ["127.0.0.1"])
            assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) \
                == [ExtendedKeyUsageOID.SERVER_AUTH]
            key = serialization.load_pem_private_key((tls / "server.key").read_bytes(), None)
            assert key.public_key() == cert.public_key()
            assert (tls / "server.key").stat().st_mode & 0o777 == 0o600
    # A certificate from another org's TLS CA is replaced at the next run, the rest kept.
    node1 = out / "peerOrganizations/org1.example.com/services/org1-node/tls"
    before = _files(out)
    (node1 / "server.crt").write_bytes(
        (out / "peerOrganizations/org2.example.com/services/org2-node/tls/server.crt").read_bytes())
    again = run_crypto_sh(out, bin_dir=tmp_path / "bin")
    assert again.stderr.count("issuing") == 1
    _cert(node1 / "server.crt").verify_directly_issued_by(_cert(node1 / "ca.crt"))
    assert {k: v for k, v in _files(out).items() if "services/org1-node/" not in k} == \
        {k: v for k, v in before.items() if "services/org1-node/" not in k}


def test_crypto_sh_keeps_valid_certificates_and_reissues_the_others(tmp_path: Path) -> None:
    out, bin_dir = tmp_path / "organizations", tmp_path / "bin"
    run_crypto_sh(out, bin_dir=bin_dir)
    first = _files(out)
    again = run_crypto_sh(out, bin_dir=bin_dir)
    assert _files(out) == first and "issuing" not in again.stderr
    org1 = out / "peerOrganizations/org1.example.com/chaincode/tls"
    org1_ca = _cert(org1.parent.parent / "tlsca/tlsca.org1.example.com-cert.pem")

    def unchanged_elsewhere() -> None:
        for name, data in _files(out).items():
            if not name.startswith("peerOrganizations/org1.example.com/chaincode/"):
                assert first[name] == data, name

    # A certificate from another org's TLS CA is replaced.
    org2_cert = first["peerOrganizations/org2.example.com/chaincode/tls/server.crt"]
    (org1 / "server.crt").write_bytes(org2_cert)
    run_crypto_sh(out, bin_dir=bin_dir)
    _cert(org1 / "server.crt").verify_directly_issued_by(org1_ca)
    unchanged_elsewhere()
    # So is one without its key.
    (org1 / "server.key").unlink()
    run_crypto_sh(out, bin_dir=bin_dir)
    key = serialization.load_pem_private_key((org1 / "server.key").read_bytes(), None)
    assert key.public_key() == _cert(org1 / "server.crt").public_key()
    # And one that does not name the host the package dials (lib.sh's CHAINCODE_ADDRESS_ORG1).
    run_crypto_sh(out, bin_dir=bin_dir, env={"CHAINCODE_ADDRESS_ORG1": "cc1.internal:7999"})
    assert _names(_cert(org1 / "server.crt")) == (
        ["chaincode.org1.example.com", "cc1.internal", "localhost"], ["127.0.0.1"])
    unchanged_elsewhere()


def test_crypto_sh_gives_an_added_org_its_chaincode_certificate(tmp_path: Path) -> None:
    # docs/deploy.md's "Adding an org": crypto-config.yaml gains Org4, crypto.sh runs again.
    out, bin_dir, config_dir = tmp_path / "organizations", tmp_path / "bin", tmp_path / "fabric"
    run_crypto_sh(out, bin_dir=bin_dir)
    before = _files(out)
    config = yaml.safe_load(CONFIG.read_text())
    org4 = copy.deepcopy(config["PeerOrgs"][-1])
    org4.update(Name="Org4", Domain="org4.example.com")
    config["PeerOrgs"].append(org4)
    config_dir.mkdir()
    (config_dir / "crypto-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run_crypto_sh(out, bin_dir=bin_dir, config_dir=config_dir)
    assert written_layout(out) == crypto_sh_layout(config)
    assert {k: v for k, v in _files(out).items() if k in before} == before
    tls = out / "peerOrganizations/org4.example.com/chaincode/tls"
    _cert(tls / "server.crt").verify_directly_issued_by(_cert(tls / "ca.crt"))
    assert _names(_cert(tls / "server.crt"))[0][0] == "chaincode.org4.example.com"
