"""Turn a data config into per-organization train/val/test sets.

Splitting happens first, per sample (a keyed hash of its id), and partitioning second, so
a sample's split never depends on which org holds it, and the union of the orgs' test
sets is one fixed test set every model in an experiment is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fedledger.learning.config import DataConfig
from fedledger.learning.data import (
    DATASETS,
    Dataset,
    Partition,
    Sample,
    partition_by_domain,
    partition_dirichlet,
    partition_iid,
    read_dataset,
    split_samples,
    take_per_org,
)
from fedledger.learning.errors import DatasetError


@dataclass(frozen=True)
class OrgSplit:
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]


@dataclass(frozen=True)
class FederationData:
    dataset: Dataset
    orgs: dict[str, OrgSplit]

    @property
    def org_names(self) -> list[str]:
        return list(self.orgs)

    def union_test(self) -> list[Sample]:
        return [s for split in self.orgs.values() for s in split.test]

    def union_train(self) -> list[Sample]:
        return [s for split in self.orgs.values() for s in split.train]

    def test_owner(self) -> list[str]:
        """The org of each sample of ``union_test()``, in the same order."""
        return [org for org, split in self.orgs.items() for _ in split.test]


def _partition(samples: list[Sample], config: DataConfig, seed_offset: int) -> Partition:
    if config.partition == "domain":
        return partition_by_domain(samples, config.orgs)
    if config.partition == "iid":
        return partition_iid(samples, config.n_orgs, config.seed + seed_offset)
    return partition_dirichlet(samples, config.n_orgs, config.dirichlet_alpha, config.seed + seed_offset)


def prepare_federation_data(config: DataConfig) -> FederationData:
    options = {"deduplicate": config.deduplicate} if config.dataset in DATASETS else {}
    dataset = read_dataset(config.dataset, **options)
    if config.labels is not None:
        unknown = sorted(set(config.labels) - set(dataset.labels))
        if unknown:
            raise DatasetError(f"{config.dataset} has no label(s) {unknown}; its labels: "
                               f"{list(dataset.labels)}")
        keep = set(config.labels)
        dataset = replace(dataset, samples=[s for s in dataset.samples if s.label in keep],
                          labels=tuple(label for label in dataset.labels if label in keep))
    split = split_samples(
        dataset.samples, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
    )
    parts = {name: _partition(list(samples), config, i) for i, (name, samples) in enumerate(
        (("train", split.train), ("val", split.val), ("test", split.test)))}
    if config.max_train_per_org:
        parts["train"] = take_per_org(parts["train"], config.max_train_per_org, config.seed)
    if config.max_test_per_org:
        parts["test"] = take_per_org(parts["test"], config.max_test_per_org, config.seed)
    orgs = {
        org: OrgSplit(
            train=list(parts["train"][org]),
            val=list(parts["val"].get(org, [])),
            test=list(parts["test"].get(org, [])),
        )
        for org in parts["train"]
    }
    return FederationData(dataset=dataset, orgs=orgs)
