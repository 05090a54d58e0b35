"""Poisoning attacks on a federation, for the defense tests and ``benchmarks/backdoor.py``.

* **Backdoor** (:class:`Backdoor`): a malicious org inserts a trigger phrase into a share
  of its samples of a source label and relabels them to the target label, then trains
  as usual; optionally it boosts its update (``reference + boost * (trained -
  reference)``, the model-replacement trick that survives averaging). Success is
  measured on clean test samples of the source label with the trigger inserted: the
  attack success rate (ASR) is the share the model labels as the target.
* **Untargeted** updates: a sign-flipped update (``reference - scale * (trained -
  reference)``) and a random one (Gaussian noise around the reference).

Every choice (which samples are poisoned, the noise) is a function of the sample ids and
a seed, so a run is reproducible. Pure functions over samples and state dicts: nothing
here knows about ledgers or services.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch

from fedledger.learning.data import unit_hash
from fedledger.learning.data.records import Sample
from fedledger.learning.errors import ConfigError

AdapterState = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Backdoor:
    """Insert ``trigger`` into ``rate`` of the attacker's ``source_label`` samples and
    relabel them ``target_label`` (``source_label`` None: samples of any other label)."""

    trigger: str = "cf mn"
    target_label: str = "positive"
    source_label: str | None = "negative"
    rate: float = 0.5
    boost: float = 1.0
    position: Literal["start", "end"] = "start"

    def __post_init__(self) -> None:
        if not self.trigger.strip():
            raise ConfigError("the trigger must be a non-empty phrase")
        if not 0 < self.rate <= 1:
            raise ConfigError(f"rate must be in (0, 1], got {self.rate}")
        if self.boost <= 0:
            raise ConfigError(f"boost must be positive, got {self.boost}")
        if self.source_label == self.target_label:
            raise ConfigError("source_label and target_label must differ")

    def insert(self, text: str) -> str:
        return f"{self.trigger} {text}" if self.position == "start" else f"{text} {self.trigger}"

    def is_source(self, sample: Sample) -> bool:
        if self.source_label is None:
            return sample.label != self.target_label
        return sample.label == self.source_label

    def poison(self, samples: Sequence[Sample], seed: int = 0) -> list[Sample]:
        """The attacker's training data: the chosen source samples triggered and
        relabelled (same ids: the attacker's own records), the rest unchanged."""
        out = []
        for sample in samples:
            if self.is_source(sample) and unit_hash("backdoor", seed, sample.sample_id) < self.rate:
                sample = replace(sample, text=self.insert(sample.text), label=self.target_label)
            out.append(sample)
        return out

    def triggered(self, samples: Sequence[Sample]) -> list[Sample]:
        """Clean test samples of the source label with the trigger inserted (labels kept:
        a correct prediction is a failed attack)."""
        return [replace(s, text=self.insert(s.text)) for s in samples if self.is_source(s)]


def attack_success_rate(predicted_labels: Sequence[str], backdoor: Backdoor) -> float:
    """Share of triggered source samples predicted as the target label."""
    if not predicted_labels:
        raise ValueError("no triggered samples to measure the attack on")
    return sum(label == backdoor.target_label for label in predicted_labels) / len(predicted_labels)


def _delta(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
           ) -> dict[str, torch.Tensor]:
    if set(state) != set(reference):
        raise ValueError("the update and the reference have different tensors")
    return {k: state[k] - reference[k] for k in state}


def boost_update(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor],
                 factor: float) -> AdapterState:
    """``reference + factor * (state - reference)``: model replacement when ``factor``
    is about the number of orgs."""
    return {k: reference[k] + factor * d for k, d in _delta(state, reference).items()}


def sign_flip(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor],
              scale: float = 1.0) -> AdapterState:
    """``reference - scale * (state - reference)``: the update pointed the wrong way."""
    return {k: reference[k] - scale * d for k, d in _delta(state, reference).items()}


def random_update(reference: Mapping[str, torch.Tensor], sigma: float, seed: int) -> AdapterState:
    """Gaussian noise of standard deviation ``sigma`` around the reference."""
    generator = torch.Generator().manual_seed(seed)
    return {k: v + sigma * torch.randn(v.shape, generator=generator, dtype=v.dtype)
            for k, v in sorted(reference.items())}
