from __future__ import annotations

import pytest

from fedledger.learning.errors import ConfigError
from fedledger.learning.unlearning import ShardScheme, even_slice_rounds


def _ids(n: int, prefix: str = "ds:") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_shard_and_slice_of_a_sample_never_move_when_others_are_added_or_deleted():
    scheme = ShardScheme(shards=4, rounds=6, slices=3, key="deployment-secret")
    ids = _ids(300)
    before = {i: (scheme.shard_of(i), scheme.slice_of(i)) for i in ids}
    # the assignment is a function of the id alone: recompute over a changed population
    changed = ids[50:] + _ids(100, prefix="new:")
    groups = scheme.assign([_sample(i) for i in changed])
    for (shard, sl), samples in groups.items():
        for s in samples:
            if s.sample_id in before:
                assert before[s.sample_id] == (shard, sl)
    # buckets are sorted by id: input order does not matter
    shuffled = scheme.assign([_sample(i) for i in reversed(changed)])
    assert {k: [s.sample_id for s in v] for k, v in shuffled.items()} == {
        k: [s.sample_id for s in v] for k, v in groups.items()
    }


def test_shards_are_balanced_and_keyed():
    ids = _ids(4000)
    scheme = ShardScheme(shards=4, rounds=1, key="a")
    sizes = scheme.shard_sizes(ids)
    assert sum(sizes) == 4000 and all(abs(n - 1000) < 120 for n in sizes), sizes
    other = ShardScheme(shards=4, rounds=1, key="b")
    moved = sum(scheme.shard_of(i) != other.shard_of(i) for i in ids)
    assert moved > 2000  # a different key gives an unrelated assignment (~3/4 move)


def test_slice_rounds_default_and_validation():
    assert even_slice_rounds(1, 5) == (1,)
    assert even_slice_rounds(3, 6) == (1, 3, 5)
    scheme = ShardScheme(shards=2, rounds=4, slices=2, slice_rounds=(1, 3))
    assert scheme.active_slices(1) == [0] and scheme.active_slices(3) == [0, 1]
    assert scheme.first_round(1) == 3
    for bad in [(2, 3), (1, 5), (3, 1)]:
        with pytest.raises(ConfigError):
            ShardScheme(shards=2, rounds=4, slices=2, slice_rounds=bad)
    with pytest.raises(ConfigError):
        ShardScheme(shards=0, rounds=4)


def _sample(sample_id: str):
    from fedledger.learning.data.records import Sample

    return Sample(sample_id=sample_id, text="t", label="a", domain="d")
