from __future__ import annotations

import pytest
import torch

from fedledger.learning.data.records import Sample
from fedledger.learning.evaluation import evaluate, label_log_probs
from fedledger.learning.tasks import ClassificationTask

LABELS = ("negative", "neutral", "positive")
SAMPLES = [Sample(f"e{i}", text, LABELS[i % 3], ("airline", "apple")[i % 2])
           for i, text in enumerate(["late again", "ok I guess", "love it", "lost my bag", "fine", "great"])]


class TeacherForcedTask(ClassificationTask):
    """Same task, but scored through the general (multi-token) path."""

    @property
    def single_token_labels(self) -> bool:
        return False


def test_single_token_fast_path_equals_teacher_forced_scoring(tiny_model):
    fast = ClassificationTask(tiny_model.tokenizer, LABELS)
    slow = TeacherForcedTask(tiny_model.tokenizer, LABELS)
    items = [fast.encode(s) for s in SAMPLES]
    a = label_log_probs(tiny_model.model, fast, items, torch.device("cpu"))
    b = label_log_probs(tiny_model.model, slow, items, torch.device("cpu"))
    assert a.shape == (len(SAMPLES), 3)
    assert torch.allclose(a, b, atol=1e-4)


def test_multi_token_labels_are_scored_by_all_their_tokens(tiny_model):
    labels = ("self_driving", "music_festival", "airline")
    task = ClassificationTask(tiny_model.tokenizer, labels)
    assert not task.single_token_labels  # " self_driving" is three tokens
    samples = [Sample(f"b{i}", "markets fell", labels[i % 3], "bbc") for i in range(3)]
    result = evaluate(tiny_model.model, task, samples)
    assert result.n == 3 and 0.0 <= result.accuracy <= 1.0 and result.loss > 0


def test_accuracy_is_reported_overall_per_domain_and_per_sample(tiny_model):
    task = ClassificationTask(tiny_model.tokenizer, LABELS)
    result = evaluate(tiny_model.model, task, SAMPLES, batch_size=4)
    assert result.per_domain_n == {"airline": 3, "apple": 3}
    assert len(result.correct) == len(SAMPLES)
    assert result.accuracy == pytest.approx(sum(result.correct) / len(SAMPLES))
    airline = [s.domain == "airline" for s in SAMPLES]
    assert result.subset_accuracy(airline) == pytest.approx(result.per_domain["airline"])


def test_evaluating_nothing_is_an_error(tiny_model):
    task = ClassificationTask(tiny_model.tokenizer, LABELS)
    with pytest.raises(ValueError, match="empty sample set"):
        evaluate(tiny_model.model, task, [])
