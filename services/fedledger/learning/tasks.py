"""Task framing: how a labelled sample becomes token ids for a causal LM.

Classification is instruction-style: ``<instruction>\\nText: <text>\\nAnswer:`` followed
by the label word. Training puts the loss on the label tokens only; prediction scores
every label by the summed log-likelihood of its tokens after the prompt and takes the
best, so the model never has to generate free text. ``lm`` is the plain causal LM loss
on the text. The sample text is truncated in token space (never the instruction or the
label), so long inputs cannot push the answer out of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from fedledger.learning.data.records import Sample

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedSample:
    """Token ids of one sample. For classification, ``prompt_ids`` end right before the
    answer and ``target_ids`` are the gold label's tokens; for LM, ``target_ids`` is empty
    and the whole ``prompt_ids`` is the text."""

    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    label_index: int


class ClassificationTask:
    """Prompt -> label word, scored by label-token likelihood."""

    kind = "classification"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        labels: Sequence[str],
        *,
        instruction: str | None = None,
        max_text_tokens: int = 64,
    ) -> None:
        if len(labels) < 2:
            raise ValueError(f"a classification task needs at least two labels, got {list(labels)}")
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.max_text_tokens = max_text_tokens
        self.instruction = instruction or (
            "Classify the text. Answer with one word: " + ", ".join(self.labels) + "."
        )
        # A leading space: the label follows "Answer:" as a separate word.
        self.label_token_ids = tuple(self._encode(" " + label) for label in self.labels)
        if len(set(self.label_token_ids)) != len(self.labels):
            raise ValueError(f"labels {list(self.labels)} do not tokenize to distinct sequences")
        self._prefix = self._encode(self.instruction + "\nText:")
        self._suffix = self._encode("\nAnswer:")

    def _encode(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    @property
    def single_token_labels(self) -> bool:
        return all(len(ids) == 1 for ids in self.label_token_ids)

    def encode(self, sample: Sample) -> EncodedSample:
        try:
            label_index = self.labels.index(sample.label)
        except ValueError:
            raise ValueError(
                f"sample {sample.sample_id!r} has label {sample.label!r}, not one of {list(self.labels)}"
            ) from None
        text_ids = self._encode(" " + sample.text.strip())[: self.max_text_tokens]
        return EncodedSample(
            prompt_ids=self._prefix + text_ids + self._suffix,
            target_ids=self.label_token_ids[label_index],
            label_index=label_index,
        )


class LanguageModelingTask:
    """Plain causal LM loss over the (truncated) text."""

    kind = "lm"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, max_text_tokens: int = 64) -> None:
        self.tokenizer = tokenizer
        self.max_text_tokens = max_text_tokens
        self.labels: tuple[str, ...] = ()

    def encode(self, sample: Sample) -> EncodedSample:
        ids = tuple(self.tokenizer.encode(sample.text.strip(), add_special_tokens=False))
        ids = ids[: self.max_text_tokens]
        if self.tokenizer.eos_token_id is not None:
            ids = ids + (self.tokenizer.eos_token_id,)
        return EncodedSample(prompt_ids=ids, target_ids=(), label_index=-1)


Task = ClassificationTask | LanguageModelingTask


def build_task(
    kind: str, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], max_text_tokens: int
) -> Task:
    if kind == "classification":
        return ClassificationTask(tokenizer, labels, max_text_tokens=max_text_tokens)
    if kind == "lm":
        return LanguageModelingTask(tokenizer, max_text_tokens=max_text_tokens)
    raise ValueError(f"unknown task {kind!r}: expected 'classification' or 'lm'")
