"""Fixtures of the learning tests: a tiny random Llama with SmolLM2's tokenizer."""

from __future__ import annotations

import pytest

from fedledger.learning.config import ExperimentConfig
from fedledger.learning.models import LoadedModel, load_base_model


@pytest.fixture(scope="session")
def tiny_model() -> LoadedModel:
    return load_base_model(ExperimentConfig(model={"base": "tiny-llama"}).model)
