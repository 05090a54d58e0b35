"""The org node's model host: the loaded base model with its LoRA adapter, kept across
rounds of one (model, LoRA, seed) config, and the adapters a round starts from.

Training, evaluation, voting, attestation and the deletion driver all run in the round
worker's thread and share the one loaded model through :meth:`ModelHost.model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.canonical import canonical_digest
from fedledger.digests import sha256_hex
from fedledger.learning.config import ExperimentConfig
from fedledger.learning.errors import UpdateRejectedError
from fedledger.learning.round import initial_adapter
from fedledger.learning.server_optimizers import ServerOptimizer, ServerOptimizerError, ServerState
from fedledger.learning.updates import SAFETENSORS_WEIGHTS_NAME, load_update_bytes
from fedledger.orgnode.jobstore import JobFailed
from fedledger.orgnode.models import Job, ModelVersionRow


class BlobSource(Protocol):
    """Where content-addressed adapter blobs come from (the coordinator)."""

    def blob(self, digest: str, /, *, max_bytes: int) -> bytes: ...


class LoadedModel:
    """The loaded base model with its LoRA adapter for one config."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.key = model_key(config)
        initial = initial_adapter(config.model, config.lora, config.seed)
        self.tokenizer = initial.tokenizer
        self.model = initial.model
        self.initial_state = initial.state
        self.spec = initial.spec


def model_key(config: ExperimentConfig) -> str:
    """What identifies a loaded model: the model and LoRA sections and the seed."""
    return canonical_digest({"model": config.model.model_dump(mode="json"),
                             "lora": config.lora.model_dump(mode="json"), "seed": config.seed})


class ModelHost:
    """One cached :class:`LoadedModel` and the round's start adapters."""

    def __init__(self, sessions: sessionmaker[Session], blobs: BlobSource,
                 max_update_bytes: int) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.max_update_bytes = max_update_bytes
        self._loaded: LoadedModel | None = None

    def model(self, config: ExperimentConfig) -> LoadedModel:
        """The loaded model for ``config`` (loaded again only when its key changes)."""
        if self._loaded is None or self._loaded.key != model_key(config):
            self._loaded = None  # free the old one before loading the new one
            self._loaded = LoadedModel(config)
        return self._loaded

    def load_update(self, data: bytes, loaded: LoadedModel) -> dict[str, torch.Tensor]:
        """An update blob read against the model's adapter spec (checked, capped)."""
        return load_update_bytes(data, loaded.spec, max_bytes=self.max_update_bytes)

    def blob(self, digest: str) -> bytes:
        """A blob from the coordinator (not yet hash-checked: the caller compares)."""
        return self.blobs.blob(digest, max_bytes=self.max_update_bytes)

    def base_state(self, job: Job, loaded: LoadedModel) -> dict[str, torch.Tensor]:
        """The round's start adapter: the base version (local copy or downloaded blob,
        hash-checked) or, in the first round, the LoRA init every org shares."""
        base = job.round.get("base")
        if not base:
            return loaded.initial_state
        adapter_hash = base["adapter_hash"]
        with self.sessions() as session:
            local = session.scalar(select(ModelVersionRow).where(
                ModelVersionRow.digest == adapter_hash))
        data = None
        if local is not None:
            candidate = Path(local.path) / SAFETENSORS_WEIGHTS_NAME
            if candidate.exists():
                data = candidate.read_bytes()
        if data is None:
            data = self.blob(adapter_hash)
        if sha256_hex(data) != adapter_hash:
            raise JobFailed(f"base adapter {base.get('version_id')}: downloaded bytes hash to "
                            f"{sha256_hex(data)}, not {adapter_hash}")
        return self.load_update(data, loaded)

    def base_server_state(self, job: Job, loaded: LoadedModel, server: ServerOptimizer
                          ) -> ServerState | None:
        """The server state the round's step starts from (downloaded, hash- and
        layout-checked), or None: the initial state (no base yet, or the base was trained
        before the state existed)."""
        base = job.round.get("base") or {}
        digest = base.get("server_state_hash")
        if not digest:
            return None
        data = self.blobs.blob(digest, max_bytes=server.state_max_bytes(loaded.spec))
        if sha256_hex(data) != digest:
            raise JobFailed(f"base server state of round {job.round_id}: downloaded bytes hash "
                            f"to {sha256_hex(data)}, not {digest}")
        try:
            return server.load_state_bytes(data, loaded.spec)
        except (UpdateRejectedError, ServerOptimizerError) as exc:
            raise JobFailed(f"base server state {digest} of round {job.round_id} is not a "
                            f"{server.name} state of this adapter: {exc}") from None

