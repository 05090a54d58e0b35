"""Check a proof package against the public chain alone: an RPC URL and the anchor
contract's address, no ledger access and no trust in fedledger's services.

Steps, each reported:
0. the package names the registry the auditor trusts;
1. the record's path leads to its org's private-state root (private records only);
2. the (record or private-state) leaf's path leads to the anchored root;
3. the chain the RPC serves has the package's chain id;
4. the contract emitted ``Anchored(firstRound, lastRound, root)`` for exactly these
   rounds and this root, in the package's transaction and block;
5. the record's round (where it has one) lies within the anchored range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from fedledger.audit.proofs import ProofPackage
from fedledger.evm.artifact_loader import load_artifact
from fedledger.merkle import InclusionProof, MerkleError, verify_inclusion
from fedledger.protocol.leaves import leaf_bytes


@dataclass
class Verification:
    ok: bool = True
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append((name, passed, detail))
        self.ok = self.ok and passed
        return passed


def _inclusion(leaf: dict[str, Any], proof: dict[str, Any], root_hex: str) -> tuple[bool, str]:
    try:
        parsed = InclusionProof.from_dict(proof)
    except MerkleError as exc:
        return False, f"malformed proof: {exc}"
    ok = verify_inclusion(leaf_bytes(leaf), parsed, bytes.fromhex(root_hex))
    return ok, f"leaf {parsed.leaf_index} of {parsed.tree_size}"


def verify_offline(package: ProofPackage, result: Verification | None = None) -> Verification:
    """Steps 1, 2 and 5: everything that needs no chain."""
    result = result or Verification()
    leaf = package.record
    if package.private is not None:
        state = package.private.state
        ok, detail = _inclusion(leaf, package.private.proof, state.get("root", ""))
        result.check("record in its org's private-state tree", ok,
                     f"{detail}; org {state.get('org')}, channel {state.get('channel')}")
        leaf = state
    ok, detail = _inclusion(leaf, package.proof, package.anchor.root)
    result.check("leaf under the anchored root", ok, detail)
    round_id = package.record.get("round_id", package.record.get("record", {}).get("round_id"))
    if round_id is not None:
        inside = package.anchor.first_round <= int(round_id) <= package.anchor.last_round
        result.check("record's round within the anchored rounds", inside,
                     f"round {round_id} in {package.anchor.first_round}..{package.anchor.last_round}")
    return result


def verify_on_chain(package: ProofPackage, w3: Web3, contract: str,
                    result: Verification | None = None) -> Verification:
    """Steps 3 and 4 through any web3 connection; ``contract`` is the registry address
    the auditor trusts (the package's own claim is only compared with it)."""
    result = result or Verification()
    anchor = package.anchor
    if not result.check("anchor contract is the trusted registry",
                        anchor.contract.lower() == contract.lower(),
                        f"package names {anchor.contract}, trusted {contract}"):
        return result
    chain_id = w3.eth.chain_id
    if not result.check("chain id", chain_id == anchor.chain_id,
                        f"RPC serves {chain_id}, package says {anchor.chain_id}"):
        return result
    registry = w3.eth.contract(address=Web3.to_checksum_address(anchor.contract),
                               abi=load_artifact("AnchorRegistry").abi)
    logs = registry.events.Anchored.get_logs(
        from_block=anchor.block_number, to_block=anchor.block_number,
        argument_filters={"firstRound": anchor.first_round})
    matching = [log for log in logs
                if log["args"]["lastRound"] == anchor.last_round
                and bytes(log["args"]["root"]).hex() == anchor.root
                and log["transactionHash"].to_0x_hex().lower() == anchor.tx_hash]
    result.check("Anchored event with this root, rounds and transaction", len(matching) == 1,
                 f"{len(logs)} Anchored event(s) for round {anchor.first_round} in block "
                 f"{anchor.block_number}, {len(matching)} matching")
    return result


def verify_package(package: ProofPackage, w3: Web3, contract: str) -> Verification:
    result = verify_offline(package)
    return verify_on_chain(package, w3, contract, result)


def verify_with_rpc(package: ProofPackage, rpc_url: str, contract: str) -> Verification:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    return verify_package(package, w3, contract)
