from __future__ import annotations

import pytest
import torch

from fedledger.learning.batching import classification_batch, prompt_batch
from fedledger.learning.data.records import Sample
from fedledger.learning.tasks import IGNORE_INDEX, ClassificationTask, LanguageModelingTask

LABELS = ("negative", "neutral", "positive")


def sample(text: str, label: str = "positive") -> Sample:
    return Sample(sample_id="t:1", text=text, label=label, domain="d")


def test_label_words_are_single_tokens_and_the_prompt_ends_before_the_answer(tiny_model):
    task = ClassificationTask(tiny_model.tokenizer, LABELS, max_text_tokens=16)
    assert task.single_token_labels
    enc = task.encode(sample("great flight, thanks", "neutral"))
    assert enc.target_ids == task.label_token_ids[1]
    assert tiny_model.tokenizer.decode(enc.prompt_ids).endswith("\nAnswer:")
    assert tiny_model.tokenizer.decode(enc.target_ids) == " neutral"


def test_long_text_is_truncated_but_instruction_and_answer_stay(tiny_model):
    task = ClassificationTask(tiny_model.tokenizer, LABELS, max_text_tokens=5)
    short = task.encode(sample("a"))
    long = task.encode(sample("word " * 200))
    assert len(long.prompt_ids) <= len(short.prompt_ids) + 5
    assert tiny_model.tokenizer.decode(long.prompt_ids).endswith("\nAnswer:")


def test_unknown_label_names_the_sample(tiny_model):
    task = ClassificationTask(tiny_model.tokenizer, LABELS)
    with pytest.raises(ValueError, match="sample 't:1' has label 'angry'"):
        task.encode(sample("x", "angry"))


def test_left_padded_batch_aligns_answers_and_positions(tiny_model):
    task = ClassificationTask(tiny_model.tokenizer, LABELS)
    items = [task.encode(sample("ok")), task.encode(sample("a much longer text than the other one"))]
    batch = classification_batch(items, pad_id=tiny_model.tokenizer.pad_token_id)
    ids, mask, pos = (batch.inputs[k] for k in ("input_ids", "attention_mask", "position_ids"))
    # answers (targets) are the final tokens of every row
    assert torch.equal(ids[:, -1], batch.targets[:, -1])
    assert batch.keep == 2
    # the short row is padded on the left and its positions still start at 0
    first_real = int(mask[0].argmax())
    assert first_real > 0 and pos[0, first_real] == 0
    assert pos[1, 0] == 0 and mask[1].all()


def test_prompt_outputs_do_not_depend_on_batch_neighbours(tiny_model):
    task = ClassificationTask(tiny_model.tokenizer, LABELS)
    pad = tiny_model.tokenizer.pad_token_id
    a = task.encode(sample("delayed again"))
    b = task.encode(sample("a much longer text that forces padding of the first row"))
    model = tiny_model.model
    with torch.no_grad():
        alone = model(**prompt_batch([a], pad).inputs, logits_to_keep=1).logits[0, -1]
        paired = model(**prompt_batch([a, b], pad).inputs, logits_to_keep=1).logits[0, -1]
    assert torch.allclose(alone, paired, atol=1e-5)


def test_lm_task_targets_every_real_token(tiny_model):
    from fedledger.learning.batching import lm_batch

    task = LanguageModelingTask(tiny_model.tokenizer, max_text_tokens=8)
    items = [task.encode(sample("one two three")), task.encode(sample("one"))]
    batch = lm_batch(items, tiny_model.tokenizer.pad_token_id)
    real = int(batch.inputs["attention_mask"][1].sum())
    assert int((batch.targets[1] != IGNORE_INDEX).sum()) == real - 1
