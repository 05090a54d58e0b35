"""What a round trains with: the experiment sections of the settings as a round config,
and the adapter context (spec and LoRA init) that config's updates are checked against."""

from __future__ import annotations

from typing import Any

from fedledger.learning.errors import LearningError
from fedledger.learning.server_optimizers import NONE, server_optimizer_params
from fedledger.web.errors import Unavailable

from .aggregate import AdapterContext, adapter_context
from .settings import CoordinatorSettings


def round_config(settings: CoordinatorSettings, local_steps: int | None = None, *,
                 shard: int = 0, step: int = 1) -> dict[str, Any]:
    """The experiment sections a round trains with (canonical-JSON-able); ``sisa`` says
    which shard-group and which step of its lineage (the org nodes derive the training
    seed from them). ``server_optimizer`` (name and every parameter, defaults filled in, so
    an org recomputes the step with exactly these) is there only when one is configured:
    a config without it keeps the digest it always had."""
    exp = settings.experiment
    train = exp.train.model_dump(mode="json")
    if local_steps is not None:
        train["local_steps"] = local_steps
    config = {
        "seed": exp.seed,
        "model": exp.model.model_dump(mode="json", exclude={"cache_dir"}),
        "lora": exp.lora.model_dump(mode="json"),
        "train": train,
        "data": exp.data.model_dump(mode="json"),
        "strategy": exp.federation.strategy.model_dump(mode="json"),
        "defense": exp.federation.defense.model_dump(mode="json"),
        "sisa": {"shards": exp.federation.shards, "shard": shard, "step": step,
                 "merge": exp.federation.shard_merge},
    }
    server = exp.federation.server_optimizer
    if server.name != NONE:
        config["server_optimizer"] = {
            "name": server.name, "params": {**server_optimizer_params(server.name), **server.params}}
    return config


def context_of(config: dict[str, Any]) -> AdapterContext:
    """The adapter context of a round config (503 when its base model cannot load)."""
    try:
        return adapter_context(config["model"], config["lora"], config["seed"])
    except LearningError as exc:
        raise Unavailable(f"the round's base model cannot be loaded: {exc}") from exc
