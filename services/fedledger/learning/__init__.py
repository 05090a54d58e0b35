"""The federated LoRA learning core: data, models, local training, update files,
aggregation strategies, evaluation and an in-process simulation runner.

This package is a plain library: it imports torch, peft, transformers and numpy, never a
ledger client or a web framework (a test enforces it).
"""
