"""fedledger: cross-organization federated LoRA fine-tuning with private Fabric ledgers,
public-chain anchoring and exact, auditable unlearning.

Layout (see docs/architecture.md): ``learning`` is the ML core and imports nothing from
ledgers or web frameworks; ``fabric`` and ``evm`` know nothing of ML; services compose them.
"""

__version__ = "0.1.0"
