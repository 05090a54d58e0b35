"""The in-memory shape of every dataset: a list of labelled samples with stable ids."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled text.

    ``sample_id`` is stable across runs and machines (derived from the source and the
    row's content/position, never from a random draw): commitments, deletion requests
    and unlearning all refer to samples by it.
    """

    sample_id: str
    text: str
    label: str
    domain: str


@dataclass(frozen=True)
class Dataset:
    """A named collection of samples and the closed set of labels they use."""

    name: str
    samples: list[Sample]
    labels: tuple[str, ...]
    domains: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.samples)

    def by_domain(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = {d: [] for d in self.domains}
        for s in self.samples:
            out.setdefault(s.domain, []).append(s)
        return out
