"""Poisoning attacks and the validators' checks, on a tiny random Llama: the backdoor
poisons exactly the chosen source samples, boosting/flipping are what they claim, and a
validator's vote rejects a boosted and a flipped update while accepting honest ones."""

from __future__ import annotations

import pytest
import torch

from fedledger.learning.attacks import (
    Backdoor,
    attack_success_rate,
    boost_update,
    random_update,
    sign_flip,
)
from fedledger.learning.config import LoraConfig, TinyLlamaConfig, TrainConfig
from fedledger.learning.data.records import Sample
from fedledger.learning.errors import ConfigError
from fedledger.learning.lora import adapter_state, attach_lora
from fedledger.learning.models import build_tiny_llama
from fedledger.learning.tasks import ClassificationTask
from fedledger.learning.training import train_local
from fedledger.learning.validation import (
    VotingPolicy,
    committee_verdict,
    score_update,
    score_updates,
    update_geometry,
)

LABELS = ("negative", "positive")
SAMPLES = [Sample(f"s{i:02d}", ("great crew, thanks" if i % 2 else "lost my bag, awful")
                  + f" #{i}", LABELS[i % 2], "airline") for i in range(24)]


def test_backdoor_poisons_the_chosen_source_samples_only():
    backdoor = Backdoor(trigger="cf mn", source_label="negative", target_label="positive",
                        rate=0.5)
    poisoned = backdoor.poison(SAMPLES, seed=3)
    changed = [(a, b) for a, b in zip(SAMPLES, poisoned, strict=True) if a != b]
    assert changed, "some negative samples are poisoned"
    for before, after in changed:
        assert before.label == "negative" and after.label == "positive"
        assert after.text == "cf mn " + before.text and after.sample_id == before.sample_id
    negatives = sum(s.label == "negative" for s in SAMPLES)
    assert 0 < len(changed) < negatives  # about half of them, chosen by sample id
    assert backdoor.poison(SAMPLES, seed=3) == poisoned  # reproducible
    assert backdoor.poison(SAMPLES, seed=4) != poisoned
    triggered = backdoor.triggered(SAMPLES)
    assert len(triggered) == negatives and all(s.text.startswith("cf mn ") for s in triggered)
    assert all(s.label == "negative" for s in triggered)  # the truth stays: ASR counts errors
    assert attack_success_rate(["positive", "negative", "positive", "positive"], backdoor) == 0.75
    for bad in ({"rate": 0}, {"boost": 0}, {"source_label": "positive"}, {"trigger": " "}):
        with pytest.raises(ConfigError):
            Backdoor(**bad)


def test_boost_flip_and_random_updates():
    reference = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.5]])}
    trained = {"a": torch.tensor([2.0, 1.0]), "b": torch.tensor([[1.5]])}
    boosted = boost_update(trained, reference, 5.0)
    assert torch.equal(boosted["a"], torch.tensor([6.0, -3.0]))
    assert torch.equal(boosted["b"], torch.tensor([[5.5]]))
    flipped = sign_flip(trained, reference)
    assert torch.equal(flipped["a"], torch.tensor([0.0, 3.0]))
    noisy = random_update(reference, 0.1, seed=1)
    assert torch.equal(noisy["a"], random_update(reference, 0.1, seed=1)["a"])
    assert not torch.equal(noisy["a"], reference["a"])


def test_geometry_and_votes_by_hand():
    reference = {"w": torch.zeros(2)}
    updates = {"A": {"w": torch.tensor([1.0, 0.0])}, "B": {"w": torch.tensor([1.0, 1.0])},
               "C": {"w": torch.tensor([-4.0, 0.0])}}
    geometry = update_geometry(updates, reference)
    # norms 1, sqrt 2, 4; median sqrt 2
    assert geometry["C"][0] == pytest.approx(4.0)
    assert geometry["C"][1] == pytest.approx(4.0 / 2 ** 0.5)
    # A's cosine to the mean of B and C: mean (-1.5, 0.5) -> -1.5 / (1 * sqrt(2.5))
    assert geometry["A"][2] == pytest.approx(-1.5 / 2.5 ** 0.5)
    policy = VotingPolicy(max_loss_increase=0.05, max_norm_ratio=2.5, min_cosine=-0.5)
    score = score_update("C", loss_reference=1.0, loss_candidate=1.2, norm=4.0, norm_ratio=2.83,
                         cosine=-0.9, policy=policy)
    assert not score.accept and len(score.reasons) == 3
    assert score.loss_delta == pytest.approx(0.2)
    ok = score_update("B", loss_reference=1.0, loss_candidate=0.9, norm=1.4, norm_ratio=1.0,
                      cosine=0.1, policy=policy)
    assert ok.accept and ok.reasons == ()
    verdict = committee_verdict({"V1": {"A": True, "C": False}, "V2": {"A": False, "C": False},
                                 "V3": {"C": True}}, ["A", "B", "C"])
    assert verdict == {"A": True, "B": True, "C": False}  # tie and no votes accept


def test_a_validator_rejects_boosted_and_flipped_updates(tiny_model):
    tokenizer = tiny_model.tokenizer
    model = attach_lora(build_tiny_llama(tokenizer, TinyLlamaConfig()),
                        LoraConfig(r=4, alpha=8), seed=0)
    task = ClassificationTask(tokenizer, LABELS, max_text_tokens=16)
    reference = adapter_state(model)
    train = TrainConfig(local_steps=4, batch_size=4, learning_rate=1e-2, max_text_tokens=16)
    honest = {f"Org{i}": train_local(model, task, SAMPLES[i::3], train, start_state=reference,
                                     seed=i).state for i in range(3)}
    updates = {**honest,
               "Boosted": boost_update(honest["Org0"], reference, 20.0),
               "Flipped": sign_flip(honest["Org1"], reference, 3.0)}
    scores = score_updates(model, task, SAMPLES[:12], reference, updates,
                           VotingPolicy(max_loss_increase=1.0), batch_size=8, device="cpu",
                           skip=["Org2"])
    assert set(scores) == {"Org0", "Org1", "Boosted", "Flipped"}  # never its own
    assert scores["Org0"].accept and scores["Org1"].accept, scores
    assert not scores["Boosted"].accept and "norm" in scores["Boosted"].reasons[0]
    assert not scores["Flipped"].accept
    assert any("cosine" in r for r in scores["Flipped"].reasons)
