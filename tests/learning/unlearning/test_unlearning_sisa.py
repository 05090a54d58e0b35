from __future__ import annotations

import json

import pytest
import torch

from fedledger.learning.aggregation import pair_lora_keys
from fedledger.learning.unlearning import (
    SisaConfig,
    SisaFederation,
    UnknownSampleError,
    adapter_digest,
    lora_rank,
    max_abs_diff,
    merge_shard_adapters,
    verify_membership,
    verify_non_membership,
)
from fedledger.learning.updates import AdapterSpec, load_adapter_folder


def _products(state):
    pairs, _ = pair_lora_keys(tuple(sorted(state)))
    return {p.module: state[p.b_key].double() @ state[p.a_key].double() for p in pairs}


def _pick(sisa: SisaFederation, org: str, *, slice_index: int, shard: int | None = None) -> str:
    for s in sisa.remaining(org):
        sid = s.sample_id
        if sisa.scheme.slice_of(sid) == slice_index and (shard is None or sisa.scheme.shard_of(sid) == shard):
            return sid
    raise AssertionError("no such sample in the tiny data")


def _assert_equals_retrain(sisa: SisaFederation) -> None:
    ref = sisa.retrain_from_scratch()
    for s in range(sisa.scheme.shards):
        for r in range(sisa.rounds_done + 1):
            assert max_abs_diff(ref.shard_state(s, r), sisa.shard_state(s, r)) <= 1e-6, (s, r)
    assert max_abs_diff(ref.served_state(), sisa.served_state()) <= 1e-6
    assert ref.served_digest() == sisa.served_digest()


def test_checkpoints_and_lineage_per_shard_per_round(fed, tmp_path):
    sisa = SisaFederation(fed, SisaConfig(shards=2, slices=2), checkpoint_dir=tmp_path / "ckpt")
    sisa.train()
    spec = AdapterSpec.from_state_dict(fed.initial_state)
    for shard in range(2):
        for round_no in range(3):
            folder = tmp_path / "ckpt" / f"shard-{shard:02d}" / f"round-{round_no:03d}"
            tensors, _ = load_adapter_folder(folder, spec, max_bytes=10**8)
            assert max_abs_diff(tensors, sisa.shard_state(shard, round_no)) == 0.0
            lineage = json.loads((folder / "lineage.json").read_text())
            assert (lineage["shard"], lineage["round"]) == (shard, round_no)
            assert lineage["adapter_digest"] == adapter_digest(sisa.shard_state(shard, round_no))
            if round_no == 0:
                continue
            assert lineage["start_digest"] == adapter_digest(sisa.shard_state(shard, round_no - 1))
            for org in sisa.orgs:
                assert lineage["orgs"][org] == len(sisa.shard_data(org, shard, round_no))
                # the roots of the slices used that round, matching the commitments
                assert set(lineage["commitments"][org]) == {str(j) for j in sisa.scheme.active_slices(round_no)}
                assert lineage["commitments"][org]["0"] == sisa.commitments().root(org, shard, 0).hex()
    # served = exact merge: rank S*r, product = mean of the shard products
    served = sisa.served_state()
    assert lora_rank(served) == 2 * fed.config.lora.r
    merged, parts = _products(served), [_products(sisa.shard_state(s)) for s in range(2)]
    for module, prod in merged.items():
        assert torch.allclose(prod, (parts[0][module] + parts[1][module]) / 2, atol=1e-7, rtol=1e-5)
    sisa.save_served(tmp_path / "served")
    tensors, cfg = load_adapter_folder(tmp_path / "served", AdapterSpec.from_state_dict(served), max_bytes=10**8)
    assert cfg["r"] == 2 * fed.config.lora.r
    assert 0.0 <= sisa.evaluate_state(served).accuracy <= 1.0


def test_replay_equals_retrain_from_scratch_s1(fed):
    sisa = SisaFederation(fed, SisaConfig(shards=1))
    sisa.train()
    org = sisa.orgs[0]
    victim = _pick(sisa, org, slice_index=0)
    old = sisa.served_state()
    result = sisa.delete({org: [victim]}, evaluate=False)
    assert result.affected_shards == [0] and result.first_round == {0: 1}
    assert result.replayed_rounds == {0: [1, 2]}
    assert result.new_served_digest != result.old_served_digest
    assert max_abs_diff(old, sisa.served_state()) > 0  # the sample did matter
    # S = 1: dropping the only shard serves the base model (zero update)
    assert result.dropped_served_digest == adapter_digest(fed.initial_state)
    _assert_equals_retrain(sisa)


def test_replay_equals_retrain_for_a_later_slice_then_a_round_1_sample(fed, tmp_path):
    sisa = SisaFederation(fed, SisaConfig(shards=2, slices=2), checkpoint_dir=tmp_path / "ckpt")
    sisa.train()
    assert sisa.scheme.slice_rounds == (1, 2)
    org_a, org_b = sisa.orgs
    # a sample of slice 1 (first used in round 2): only round 2 of its shard is replayed
    late = _pick(sisa, org_a, slice_index=1)
    shard = sisa.scheme.shard_of(late)
    other = 1 - shard
    round1 = sisa.shard_state(shard, 1)
    untouched = sisa.shard_state(other)
    old_round2 = sisa.shard_state(shard, 2)
    result = sisa.delete({org_a: [late]}, evaluate=False)
    assert result.affected_shards == [shard] and result.first_round == {shard: 2}
    assert result.replayed_rounds == {shard: [2]}
    assert sisa.shard_state(shard, 1) is round1  # the checkpoint before round 2 is kept
    assert sisa.shard_state(other) is untouched
    assert max_abs_diff(old_round2, sisa.shard_state(shard, 2)) > 0
    lineage = json.loads((tmp_path / "ckpt" / f"shard-{shard:02d}" / "round-002" / "lineage.json").read_text())
    assert lineage["version"] == 1 and lineage["adapter_digest"] == adapter_digest(sisa.shard_state(shard, 2))
    _assert_equals_retrain(sisa)
    # then round-1 samples of both orgs in one request
    early = {org_a: [_pick(sisa, org_a, slice_index=0)], org_b: [_pick(sisa, org_b, slice_index=0)]}
    result = sisa.delete(early, evaluate=False)
    assert min(result.first_round.values()) == 1
    assert result.old_version == 1 and result.new_version == 2
    _assert_equals_retrain(sisa)


def test_dropping_a_shard_is_exact(fed):
    sisa = SisaFederation(fed, SisaConfig(shards=3))
    sisa.train(1)
    parts = [_products(sisa.shard_state(s)) for s in range(3)]
    for dropped in range(3):
        kept = [p for s, p in enumerate(parts) if s != dropped]
        served = _products(sisa.served_state(exclude={dropped}))
        for module, prod in served.items():
            expected = (kept[0][module] + kept[1][module]) / 2
            assert torch.allclose(prod, expected, atol=1e-7, rtol=1e-5), module
    # the immediate drop in a deletion is that same merge
    victim = _pick(sisa, sisa.orgs[1], slice_index=0)
    expected_digest = adapter_digest(sisa.served_state(exclude={sisa.scheme.shard_of(victim)}))
    result = sisa.delete({sisa.orgs[1]: [victim]}, evaluate=False)
    assert result.dropped_served_digest == expected_digest


def test_sum_merge_adds_the_shard_products_and_deletion_stays_exact(fed):
    sisa = SisaFederation(fed, SisaConfig(shards=3, merge="sum"))
    sisa.train(1)
    parts = [_products(sisa.shard_state(s)) for s in range(3)]
    served = _products(sisa.served_state())
    for module, prod in served.items():
        expected = parts[0][module] + parts[1][module] + parts[2][module]
        assert torch.allclose(prod, expected, atol=1e-7, rtol=1e-5), module
    mean = SisaFederation(fed, SisaConfig(shards=3))
    mean.train(1)
    assert max_abs_diff(mean.served_state(), sisa.served_state()) > 0  # not the mean
    victim = _pick(sisa, sisa.orgs[0], slice_index=0)
    sisa.delete({sisa.orgs[0]: [victim]}, evaluate=False)
    _assert_equals_retrain(sisa)


def test_unknown_shard_merge_is_refused():
    with pytest.raises(ValueError, match="unknown shard merge 'max'"):
        merge_shard_adapters([{"x": torch.zeros(1)}, {"x": torch.zeros(1)}], "max")


def test_unknown_ids_raise_and_change_nothing_and_repeats_are_noops(fed):
    sisa = SisaFederation(fed, SisaConfig(shards=2))
    sisa.train(1)
    org = sisa.orgs[0]
    digest, roots = sisa.served_digest(), sisa.commitments().roots()
    known = _pick(sisa, org, slice_index=0)
    test_id = fed.data.orgs[org].test[0].sample_id
    for bad in ({org: [known, "no-such-id"]}, {"no-such-org": [known]}, {org: [test_id]}):
        with pytest.raises(UnknownSampleError, match="nothing changed"):
            sisa.delete(bad, evaluate=False)
    assert sisa.version == 0 and sisa.deleted(org) == set()
    assert sisa.served_digest() == digest and sisa.commitments().roots() == roots
    first = sisa.delete({org: [known]}, evaluate=False)
    assert not first.noop and first.new_version == 1
    state = sisa.served_state()
    second = sisa.delete({org: [known]}, evaluate=False)
    assert second.noop and second.already_deleted == {org: [known]}
    assert second.new_version == second.old_version == 1
    assert second.new_served_digest == second.old_served_digest == first.new_served_digest
    assert max_abs_diff(state, sisa.served_state()) == 0.0


def test_commitment_proofs_across_versions(fed):
    sisa = SisaFederation(fed, SisaConfig(shards=2, slices=2))
    sisa.train(1)
    org = sisa.orgs[0]
    salt = sisa.salts[org]
    victim = _pick(sisa, org, slice_index=0)
    kept = next(s.sample_id for s in sisa.remaining(org) if s.sample_id != victim
                and sisa.scheme.shard_of(s.sample_id) == sisa.scheme.shard_of(victim)
                and sisa.scheme.slice_of(s.sample_id) == 0)
    member = sisa.prove(org, victim)
    assert member.member and member.version == 0 and verify_membership(member, salt)
    assert not verify_membership(member, b"wrong salt")
    result = sisa.delete({org: [victim]}, evaluate=False)
    shard = sisa.scheme.shard_of(victim)
    new_root = result.commitment_roots[org][str(shard)]["0"]
    gone = sisa.prove(org, victim)  # current version
    assert not gone.member and gone.version == 1 and gone.root == new_root
    assert verify_non_membership(gone, salt)
    # the old version's membership proof fails against the new version's root ...
    assert not verify_membership(member, salt, root=new_root)
    # ... and the new non-membership proof fails against the old root
    assert not verify_non_membership(gone, salt, root=member.root)
    # the old version still proves membership, and other samples stay members
    assert verify_membership(sisa.prove(org, victim, version=0), salt)
    assert verify_membership(sisa.prove(org, kept), salt)
    # roots of untouched (org, shard, slice) trees did not change
    old, new = sisa.commitments(0).roots(), sisa.commitments(1).roots()
    assert {k for k in old if old[k] != new[k]} == {(org, shard, 0)}
