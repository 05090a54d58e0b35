"""EIP-712 typed data, signatures and packing (fedledger.evm.typed_data), and artifacts."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from fedledger.evm import ArtifactError, load_artifact
from fedledger.evm import typed_data as td
from fedledger.evm.contracts import deploy_anchor_registry, deploy_staking

ROOT = b"\x42" * 32
CONTRACT = "0x" + "12" * 20


def test_sorted_keys_is_numeric_order_not_checksum_string_order():
    addresses = [Account.create().address for _ in range(40)]
    keys = td.sorted_keys(addresses)
    assert [int(k, 16) for k in keys] == sorted(int(a, 16) for a in addresses)
    assert td.sorted_keys(a.lower() for a in addresses) == keys  # checksummed output


def test_sign_typed_is_65_bytes_with_v_27_or_28_and_recovers():
    account = Account.create()
    typed = td.anchor_typed_data(1, CONTRACT, 1, 3, ROOT)
    sig = td.sign_typed(account, typed)
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert td.recover_typed(typed, sig) == account.address
    assert td.recover_typed(td.anchor_typed_data(2, CONTRACT, 1, 3, ROOT), sig) != account.address


def test_typed_data_validates_inputs():
    with pytest.raises(ValueError):
        td.anchor_typed_data(1, CONTRACT, 3, 2, ROOT)
    with pytest.raises(ValueError):
        td.anchor_typed_data(1, CONTRACT, -1, 2, ROOT)
    with pytest.raises(ValueError):
        td.anchor_typed_data(1, CONTRACT, 1, 2, b"short")
    with pytest.raises(ValueError):
        td.outcome_typed_data(1, CONTRACT, 1, [CONTRACT], [1, 2])


def test_pack_signatures_layout_and_refusals():
    signers = [Account.create() for _ in range(4)]
    keys = td.sorted_keys(s.address for s in signers)
    typed = td.anchor_typed_data(1, CONTRACT, 1, 1, ROOT)
    sigs = {s.address: td.sign_typed(s, typed) for s in signers}
    chosen = {k: sigs[k] for k in (keys[3], keys[0], keys[2])}  # any order in
    packed = td.pack_signatures(keys, chosen)
    assert len(packed) == 3 * 66
    assert [packed[i * 66] for i in range(3)] == [0, 2, 3]
    assert packed[1:66] == sigs[keys[0]]
    with pytest.raises(ValueError):
        td.pack_signatures(keys, {})
    with pytest.raises(ValueError):
        td.pack_signatures(keys, {Account.create().address: sigs[keys[0]]})
    with pytest.raises(ValueError):
        td.pack_signatures(list(reversed(keys)), chosen)
    with pytest.raises(ValueError):
        td.pack_signatures(keys, {keys[0]: b"\x00" * 64})


def test_packed_hashes_match_abi_encode_packed():
    orgs = [Account.create().address for _ in range(3)]
    deltas = [5, -1, -(2**255)]
    assert td.orgs_hash(orgs) == keccak(b"".join(encode(["address"], [o]) for o in orgs))
    assert td.deltas_hash(deltas) == keccak(encode(["int256[3]"], [deltas]))
    assert td.deltas_hash([-1])[:4] == keccak(b"\xff" * 32)[:4]


def test_digests_match_the_contracts(embedded_chain):
    chain = embedded_chain
    funder = chain.dev_accounts()[0]
    signers = [Account.create() for _ in range(3)]
    keys = td.sorted_keys(s.address for s in signers)
    registry = deploy_anchor_registry(chain, keys, 2, funder)
    staking = deploy_staking(chain, keys, 2, funder, withdrawal_delay_s=10)
    assert td.typed_data_digest(registry.typed_data(1, 4, ROOT)) == registry.anchor_digest(1, 4, ROOT)
    orgs, deltas = keys[:2], [10, -20]
    assert td.typed_data_digest(staking.typed_data(7, orgs, deltas)) == staking.outcome_digest(
        7, orgs, deltas)
    new_keys = td.sorted_keys([*keys, Account.create().address])
    for client in (registry, staking):
        typed = client.key_set_update_typed_data(new_keys, 3)
        on_chain = chain.call(client.functions.keySetUpdateDigest(td.keys_hash(new_keys), 3, 0))
        assert td.typed_data_digest(typed) == bytes(on_chain)
        assert bytes(chain.call(client.functions.hashKeys(new_keys))) == td.keys_hash(new_keys)


def test_artifacts_load_and_missing_is_clear():
    art = load_artifact("AnchorRegistry")
    assert art.name == "AnchorRegistry" and art.bytecode.startswith("0x") and len(art.bytecode) > 100
    assert any(e.get("name") == "anchor" for e in art.abi)
    assert art.compiler_version and "0.8" in art.compiler_version
    with pytest.raises(ArtifactError, match="not found"):
        load_artifact("NoSuchContract")
