from __future__ import annotations

import pytest
import torch

from fedledger.learning.config import LoraConfig, TinyLlamaConfig, TrainConfig
from fedledger.learning.data.records import Sample
from fedledger.learning.lora import adapter_state, attach_lora, load_adapter_state
from fedledger.learning.models import build_tiny_llama
from fedledger.learning.tasks import ClassificationTask
from fedledger.learning.training import batch_order, train_local

LABELS = ("negative", "positive")
SAMPLES = [
    Sample(f"s{i}", ("thanks, great crew" if i % 2 else "lost my bag, awful") + f" #{i}",
           LABELS[i % 2], "airline")
    for i in range(16)
]
TRAIN = TrainConfig(local_steps=4, batch_size=4, learning_rate=1e-2, max_text_tokens=16, seed=7)


def fresh(tokenizer, seed: int = 0):
    model = attach_lora(build_tiny_llama(tokenizer, TinyLlamaConfig()),
                        LoraConfig(r=4, alpha=8, dropout=0.1), seed=seed)
    return model, ClassificationTask(tokenizer, LABELS, max_text_tokens=16)


def test_two_runs_with_one_seed_give_identical_adapters(tiny_model):
    # Prepare: two independent model instances, same seeds (dropout on, to exercise the RNG)
    runs = []
    for _ in range(2):
        model, task = fresh(tiny_model.tokenizer)
        # Execute
        runs.append(train_local(model, task, SAMPLES, TRAIN))
    a, b = runs
    # Assert: bit-identical, and training actually moved the adapter
    assert a.state.keys() == b.state.keys()
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    model, _ = fresh(tiny_model.tokenizer)
    init = adapter_state(model)
    assert any(not torch.equal(a.state[k], init[k]) for k in a.state)


def test_a_different_seed_gives_a_different_adapter(tiny_model):
    model, task = fresh(tiny_model.tokenizer)
    init = adapter_state(model)
    a = train_local(model, task, SAMPLES, TRAIN, start_state=init, seed=1)
    b = train_local(model, task, SAMPLES, TRAIN, start_state=init, seed=2)
    assert any(not torch.equal(a.state[k], b.state[k]) for k in a.state)


def test_training_starts_from_the_given_state_not_the_models_current_one(tiny_model):
    model, task = fresh(tiny_model.tokenizer)
    init = adapter_state(model)
    first = train_local(model, task, SAMPLES, TRAIN, start_state=init)
    # the model now holds `first`; training again from `init` must reproduce `first`
    again = train_local(model, task, SAMPLES, TRAIN, start_state=init)
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)


def test_training_lowers_the_label_loss(tiny_model):
    from fedledger.learning.evaluation import evaluate

    model, task = fresh(tiny_model.tokenizer)
    before = evaluate(model, task, SAMPLES).loss
    result = train_local(model, task, SAMPLES, TRAIN.model_copy(update={"local_steps": 12}))
    after = evaluate(model, task, SAMPLES).loss
    # a random 3M-parameter model starts near ln(49152) = 10.8 nats per label token
    assert after < before - 0.5, (before, after)
    assert result.steps == 12 and result.num_samples == len(SAMPLES)


def test_batch_order_is_seeded_and_covers_every_sample_each_epoch():
    order = batch_order(10, steps=5, batch_size=4, seed=3)
    assert order == batch_order(10, steps=5, batch_size=4, seed=3)
    flat = [i for batch in order for i in batch]
    assert sorted(flat[:10]) == list(range(10))
    assert all(len(b) == 4 for b in order)
    with pytest.raises(ValueError, match="empty dataset"):
        batch_order(0, steps=1, batch_size=1, seed=0)


def test_loading_a_state_with_foreign_keys_fails(tiny_model):
    model, _ = fresh(tiny_model.tokenizer)
    state = adapter_state(model)
    state["base_model.model.lm_head.lora_A.weight"] = torch.zeros(4, 64)
    with pytest.raises(KeyError, match="lm_head"):
        load_adapter_state(model, state)
