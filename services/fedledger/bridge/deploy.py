"""Deploy the contracts a deployment anchors to, and write where they are.

``python -m fedledger.bridge.deploy [--config FILE]`` (or ``FEDLEDGER_*`` variables, as
the docker-compose ``contracts`` service sets them) deploys, with the gas account's key:

- ``AnchorRegistry`` with the orgs' anchor addresses as key set and ``threshold``
  signatures (default: a majority);
- ``Staking`` with the same keys and threshold;

then writes ``output`` (JSON), the file the bridge and the org nodes read::

    {"chain_id": 31337, "registry": "0x..", "staking": "0x..", "deployer": "0x..",
     "block": 3, "threshold": 2, "orgs": {"Org1MSP": "0x..", ...}}

It is idempotent: when ``output`` already names contracts that exist on this chain with
the same key set, nothing is sent (a restarted deployment keeps its registry, whose
anchors must never move). The orgs' anchor addresses are given directly
(``anchor_addresses``: each org tells its own) or derived from key files
(``anchor_key_files``: a single-host deployment where the operator made every org's key).
On a local dev chain (anvil), ``dev_fund_eth`` first sets the gas account's balance with
``anvil_setBalance``, so no well-known dev key is needed; on a public chain, fund the
account yourself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address
from pydantic import Field, model_validator
from web3.types import RPCEndpoint

from fedledger.bridge.errors import BridgeError
from fedledger.bridge.standalone import SubmitterKey
from fedledger.evm.chain import Chain
from fedledger.evm.config import EvmConfig
from fedledger.evm.connection import connect
from fedledger.evm.contracts import AnchorRegistryClient, deploy_anchor_registry, deploy_staking
from fedledger.evm.typed_data import sorted_keys
from fedledger.web.environment import read_secret
from fedledger.web.settings import ServiceSettings

log = logging.getLogger(__name__)
WEI = 10**18


class DeploySettings(ServiceSettings):
    evm: EvmConfig = Field(description="the chain; backend 'rpc'")
    submitter: SubmitterKey = Field(description="the gas account (the bridge's)")
    anchor_addresses: dict[str, str] = Field(default_factory=dict,
                                             description="MSP id -> anchor address")
    anchor_key_files: dict[str, Path] = Field(
        default_factory=dict, description="MSP id -> file with the org's hex anchor key")
    threshold: int | None = Field(None, ge=1, description="signatures per anchor (None: majority)")
    withdrawal_delay_s: int = Field(7 * 24 * 3600, ge=0, description="Staking withdrawal delay")
    output: Path = Field(description="where to write the contracts JSON")
    dev_fund_eth: float | None = Field(None, gt=0, description="anvil only: set the gas "
                                       "account's balance to this many ETH first")

    @model_validator(mode="after")
    def _orgs(self) -> DeploySettings:
        if self.evm.backend != "rpc":
            raise ValueError("deploying needs evm.backend 'rpc'")
        if not self.anchor_addresses and not self.anchor_key_files:
            raise ValueError("give anchor_addresses or anchor_key_files")
        if self.threshold is not None and self.threshold > len(self.org_addresses()):
            raise ValueError("threshold exceeds the number of orgs")
        return self

    def org_addresses(self) -> dict[str, str]:
        """MSP id -> checksummed anchor address."""
        orgs = {msp: to_checksum_address(a) for msp, a in self.anchor_addresses.items()}
        for msp, path in self.anchor_key_files.items():
            if msp not in orgs:
                key = read_secret(path)
                orgs[msp] = Account.from_key(key if key.startswith("0x") else "0x" + key).address
        return dict(sorted(orgs.items()))


def _existing(chain: Chain, output: Path, orgs: dict[str, str],
              threshold: int) -> dict[str, Any] | None:
    """The contracts ``output`` names, if they are live on this chain as configured."""
    if not output.exists():
        return None
    deployed = json.loads(output.read_text())
    if deployed.get("chain_id") != chain.chain_id:
        return None
    for name in ("registry", "staking"):
        address = deployed.get(name)
        if not address or not chain.w3.eth.get_code(to_checksum_address(address)):
            return None
    registry = AnchorRegistryClient(chain, deployed["registry"])
    if sorted_keys(registry.current_keys(from_block=deployed.get("block", 0))) != \
            sorted_keys(orgs.values()) or registry.threshold() != threshold:
        raise BridgeError(f"{output} names a registry with another key set or threshold; "
                          "remove the file to deploy new contracts", step="deploy")
    return deployed


def deploy(settings: DeploySettings) -> dict[str, Any]:
    """Deploy (or find) the contracts; write and return the contracts JSON."""
    chain = connect(settings.evm)
    orgs = settings.org_addresses()
    threshold = settings.threshold or len(orgs) // 2 + 1
    found = _existing(chain, settings.output, orgs, threshold)
    if found is not None:
        log.info("contracts already deployed on chain %d: registry %s, staking %s",
                 chain.chain_id, found["registry"], found["staking"])
        return found
    account = settings.submitter.load()
    if settings.dev_fund_eth:
        response = chain.w3.provider.make_request(
            RPCEndpoint("anvil_setBalance"), [account.address, hex(int(settings.dev_fund_eth * WEI))])
        if response.get("error"):
            raise BridgeError(f"anvil_setBalance failed (not an anvil node?): {response['error']}",
                              step="deploy")
    if chain.balance(account.address) == 0:
        raise BridgeError(f"the gas account {account.address} has no funds on chain "
                          f"{chain.chain_id}", step="deploy")
    start = chain.block_number()
    keys = sorted_keys(orgs.values())
    registry = deploy_anchor_registry(chain, keys, threshold, account)
    staking = deploy_staking(chain, keys, threshold, account,
                             withdrawal_delay_s=settings.withdrawal_delay_s)
    deployed = {"chain_id": chain.chain_id, "registry": registry.address,
                "staking": staking.address, "deployer": account.address, "block": start,
                "threshold": threshold, "orgs": orgs}
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = settings.output.with_suffix(settings.output.suffix + ".tmp")
    tmp.write_text(json.dumps(deployed, indent=2) + "\n")
    os.replace(tmp, settings.output)
    log.info("deployed on chain %d: AnchorRegistry %s (%d of %d), Staking %s -> %s",
             chain.chain_id, registry.address, threshold, len(keys), staking.address,
             settings.output)
    return deployed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedledger.bridge.deploy",
                                     description="Deploy AnchorRegistry and Staking; write "
                                     "their addresses for the bridge and the org nodes.")
    parser.add_argument("--config", help="settings (JSON); default: FEDLEDGER_* variables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = DeploySettings.from_file(args.config) if args.config else DeploySettings.from_env()
    deployed = deploy(settings)
    json.dump(deployed, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
