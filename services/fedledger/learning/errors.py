"""One error root for the learning core; specific errors also inherit the built-in
they refine, so callers may catch ``ValueError`` where that is all they care about."""

from __future__ import annotations

from fedledger.errors import FedLedgerError


class LearningError(FedLedgerError):
    """Root of every error raised by ``fedledger.learning``."""


class DatasetError(LearningError, ValueError):
    """A dataset is missing, malformed, or a split/partition request cannot be met."""


class ModelLoadError(LearningError, RuntimeError):
    """A base model or tokenizer could not be located or loaded."""


class UpdateRejectedError(LearningError, ValueError):
    """An untrusted update file failed validation. ``key`` names the offending tensor
    (or file member) when there is one, ``reason`` is a short machine-readable code."""

    def __init__(self, message: str, *, reason: str, key: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.key = key


class AggregationError(LearningError, ValueError):
    """Updates cannot be aggregated (empty input, mismatched keys or shapes, bad weights)."""


class ConfigError(LearningError, ValueError):
    """A configuration value is invalid in a way pydantic field checks cannot express."""
