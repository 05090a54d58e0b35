"""Audit bundles: what an auditor gets for a deletion request or for one sample and a
model version, checkable against the public chain alone (``fedledger verify``).

A bundle holds :class:`~fedledger.audit.proofs.ProofPackage` s -- each record anchored
on the chain with its Merkle paths -- and sample proofs against the salted sorted
commitments the model version lists:

* ``model_version``: the version's record (its shard adapters and the data commitment
  roots it was trained on), proven under an anchored root;
* ``records`` (deletion bundles): the ``deletion_request`` and ``unlearning_record``
  (private records: two paths, through the org's private-state leaf) and the
  ``unlearning_notice`` (consortium), each proven under an anchored root;
* ``samples``: for each sample, the (org, dataset, shard, slice) commitment of the
  version and a membership or non-membership proof of the sample id under its root,
  with the salt (revealed to the auditor only), or no root at all when the version has
  no commitment of that dataset and shard (then it never trained on it).

:func:`verify_bundle` checks every package on the chain, every sample proof, and that
the pieces belong together: the same request, the unlearning record's new model hash
is the version's digest, the notice names that version, a deleted sample is proven
absent, and each sample's root is the one the version lists.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from web3 import Web3

from fedledger.audit.proofs import ProofPackage
from fedledger.audit.verify import Verification, verify_offline, verify_on_chain
from fedledger.merkle import MembershipProof, MerkleError, proof_from_dict
from fedledger.protocol.evidence import SampleEvidence


class AuditBundle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    kind: Literal["deletion_request", "sample"]
    org: str
    request_id: str | None = None
    model_version: ProofPackage
    records: dict[str, ProofPackage] = Field(default_factory=dict)
    samples: list[SampleEvidence] = Field(default_factory=list)


def check_sample(evidence: SampleEvidence, version: dict[str, Any]) -> tuple[bool, str]:
    """The sample's proof against the root that ``version`` (a ModelVersion record) lists."""
    listed = [r for r in version.get("commitment_roots", [])
              if (r["org"], r["dataset_id"], r["shard"], r["slice"])
              == (evidence.org, evidence.dataset_id, evidence.shard, evidence.slice)]
    where = (f"{evidence.sample_id} in {evidence.org}/{evidence.dataset_id} shard "
             f"{evidence.shard} slice {evidence.slice}")
    if evidence.root is None:
        if listed:
            return False, f"{where}: the version lists a commitment, the evidence shows none"
        if evidence.member:
            return False, f"{where}: claims membership without a commitment"
        return True, f"{where}: not committed (the version lists no commitment of it)"
    if [r["root"] for r in listed] != [evidence.root]:
        return False, f"{where}: root {evidence.root[:16]}... is not the one the version lists"
    try:
        proof = proof_from_dict(evidence.proof)
        salt = bytes.fromhex(evidence.salt or "")
    except (MerkleError, ValueError) as exc:
        return False, f"{where}: malformed proof: {exc}"
    if isinstance(proof, MembershipProof) != evidence.member:
        return False, f"{where}: the proof's type contradicts member={evidence.member}"
    ok = proof.verify(evidence.sample_id, bytes.fromhex(evidence.root), salt)
    state = "committed" if evidence.member else "not committed"
    return ok, f"{where}: {state}" if ok else f"{where}: the proof does not verify"


def _record(package: ProofPackage) -> dict[str, Any]:
    return package.record.get("record", {})


def verify_bundle_offline(bundle: AuditBundle, result: Verification | None = None
                          ) -> Verification:
    """Everything but the chain: every package's paths, the sample proofs, the links."""
    result = result or Verification()
    packages = {"model_version": bundle.model_version, **bundle.records}
    for name, package in packages.items():
        sub = verify_offline(package)
        for check, passed, detail in sub.checks:
            result.check(f"{name}: {check}", passed, detail)
        if package.private is not None:
            owner = package.private.state.get("org")
            result.check(f"{name}: private record of {bundle.org}", owner == bundle.org,
                         f"private state of {owner}")
    kind = bundle.model_version.record.get("kind")
    result.check("model_version is a model version record", kind == "model_version",
                 f"kind {kind}")
    version = _record(bundle.model_version)
    for evidence in bundle.samples:
        result.check("sample proof", *check_sample(evidence, version))
    if bundle.kind == "deletion_request":
        _check_deletion(bundle, version, result)
    return result


def _check_deletion(bundle: AuditBundle, version: dict[str, Any], result: Verification) -> None:
    expected = {"deletion_request", "unlearning_record"}
    missing = expected - set(bundle.records)
    if not result.check("deletion records present", not missing, f"missing {sorted(missing)}"):
        return
    request = _record(bundle.records["deletion_request"])
    unlearning = _record(bundle.records["unlearning_record"])
    result.check("request is the one asked about",
                 request.get("request_id") == bundle.request_id == unlearning.get("request_id"),
                 f"request {request.get('request_id')}, unlearning record of "
                 f"{unlearning.get('request_id')}, bundle for {bundle.request_id}")
    result.check("request completed", request.get("status") == "completed",
                 f"status {request.get('status')}")
    result.check("unlearning record's new model is this version",
                 unlearning.get("new_model_hash") == version.get("adapter_digest"),
                 f"{unlearning.get('new_model_hash')} vs {version.get('adapter_digest')}")
    notice = bundle.records.get("unlearning_notice")
    if notice is not None:
        record = _record(notice)
        result.check("notice names this version and org",
                     record.get("new_version") == version.get("version_id")
                     and record.get("org") == bundle.org,
                     f"notice {record.get('notice_id')}: {record.get('old_version')} -> "
                     f"{record.get('new_version')} by {record.get('org')}")
    requested = set(request.get("sample_ids") or [])
    for evidence in bundle.samples:
        covered = (evidence.dataset_id == request.get("dataset_id")
                   and (request.get("whole_dataset") or evidence.sample_id in requested))
        result.check("deleted sample is absent from the new version",
                     covered and not evidence.member,
                     f"{evidence.sample_id}: requested={covered}, member={evidence.member}")
    new_roots = {(r["dataset_id"], r["shard"], r["slice"]): r["root"]
                 for r in unlearning.get("new_commitment_roots", [])}
    for evidence in bundle.samples:
        if evidence.root is not None:
            key = (evidence.dataset_id, evidence.shard, evidence.slice)
            result.check("sample's root is a commitment the unlearning recorded",
                         new_roots.get(key) == evidence.root,
                         f"{evidence.sample_id}: shard {evidence.shard}")
    if not bundle.samples:
        result.check("bundle proves the deleted samples", False, "no sample evidence")


def verify_bundle(bundle: AuditBundle, w3: Web3, contract: str) -> Verification:
    result = verify_bundle_offline(bundle)
    for name, package in {"model_version": bundle.model_version, **bundle.records}.items():
        sub = verify_on_chain(package, w3, contract)
        for check, passed, detail in sub.checks:
            result.check(f"{name}: {check}", passed, detail)
    return result


def verify_bundle_with_rpc(bundle: AuditBundle, rpc_url: str, contract: str) -> Verification:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    return verify_bundle(bundle, w3, contract)
