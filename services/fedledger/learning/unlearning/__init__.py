"""Exact, verifiable unlearning: SISA over federated LoRA.

* :mod:`.shards` -- keyed-hash shard / slice assignment of sample ids;
* :mod:`.sisa` -- the shard-group federation: training, per-round checkpoints with
  lineage, the served merge (exact average of the shard LoRA products), deletion by
  drop + rollback + replay;
* :mod:`.commitments` -- salted sorted-Merkle commitments per (org, shard, slice) and
  (non-)membership proofs per model version;
* :mod:`.metrics` -- forget / retain / test accuracy and the loss-threshold MIA AUC.

Like the rest of ``fedledger.learning``, no ledger or web framework is imported here.
"""

from fedledger.learning.round import shard_round_seed
from fedledger.learning.unlearning.commitments import (
    CommitmentSet,
    SampleProof,
    build_commitments,
    org_salt,
    prove,
    verify_membership,
    verify_non_membership,
)
from fedledger.learning.unlearning.metrics import (
    UnlearningMetrics,
    membership_auc,
    per_sample_losses,
    rank_auc,
    unlearning_metrics,
)
from fedledger.learning.unlearning.shards import ShardScheme, even_slice_rounds, keyed_unit, shard_of
from fedledger.learning.unlearning.sisa import (
    ShardRoundRecord,
    SisaConfig,
    SisaFederation,
    UnknownSampleError,
    UnlearningResult,
    adapter_digest,
    lora_rank,
    max_abs_diff,
    merge_shard_adapters,
    served_adapter,
    served_spec,
    stride,
)

__all__ = [
    "CommitmentSet",
    "SampleProof",
    "ShardRoundRecord",
    "ShardScheme",
    "SisaConfig",
    "SisaFederation",
    "UnknownSampleError",
    "UnlearningMetrics",
    "UnlearningResult",
    "adapter_digest",
    "build_commitments",
    "even_slice_rounds",
    "keyed_unit",
    "lora_rank",
    "max_abs_diff",
    "membership_auc",
    "merge_shard_adapters",
    "org_salt",
    "per_sample_losses",
    "prove",
    "rank_auc",
    "served_adapter",
    "served_spec",
    "shard_of",
    "shard_round_seed",
    "stride",
    "unlearning_metrics",
    "verify_membership",
    "verify_non_membership",
]
