"""Local LoRA training of one organization: a plain AdamW loop over the org's samples,
optionally with FedProx's proximal term (``TrainConfig.prox_mu``; the reported losses
are the task's, without it).

Deterministic given the seed: data order, LoRA dropout and the optimizer draw from a
generator seeded per job, and deterministic kernels are enforced, so replaying a round
with the same inputs reproduces the same adapter bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from peft import PeftModel
from tqdm.auto import tqdm

from fedledger.learning.batching import batch_loss, classification_batch, lm_batch
from fedledger.learning.config import TrainConfig
from fedledger.learning.data.records import Sample
from fedledger.learning.device import autocast, deterministic, resolve_device
from fedledger.learning.lora import AdapterState, adapter_state, load_adapter_state
from fedledger.learning.lora_keys import saved_key
from fedledger.learning.scaffold import ScaffoldError
from fedledger.learning.seeds import seeded_global_rng
from fedledger.learning.tasks import EncodedSample, Task


@dataclass(frozen=True)
class TrainResult:
    state: AdapterState
    num_samples: int
    steps: int
    mean_loss: float
    final_loss: float
    seconds: float


def batch_order(n: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Indices of each step's batch: shuffled epochs drawn from a seeded generator,
    continuing across epoch boundaries so every step has a full batch."""
    if n == 0:
        raise ValueError("cannot train on an empty dataset")
    generator = torch.Generator().manual_seed(seed)
    stream: list[int] = []
    need = steps * batch_size
    while len(stream) < need:
        stream.extend(torch.randperm(n, generator=generator).tolist())
    return [stream[i * batch_size : (i + 1) * batch_size] for i in range(steps)]


def proximal_term(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor],
                  mu: float) -> torch.Tensor:
    """FedProx's ``(mu / 2) * ||w - w_start||^2`` over the trainable tensors (float32)."""
    total = torch.zeros((), dtype=torch.float32, device=params[0].device)
    for p, a in zip(params, anchors, strict=True):
        total = total + ((p.float() - a.float()) ** 2).sum()
    return 0.5 * mu * total


def _corrections(model: PeftModel, correction: Mapping[str, torch.Tensor] | None, device: torch.device
                 ) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """(parameter, its correction on the parameter's device and dtype) for every trained
    adapter tensor; the correction must cover exactly those."""
    if correction is None:
        return []
    trained = {saved_key(name): p for name, p in model.named_parameters() if p.requires_grad}
    if set(trained) != set(correction):
        missing = sorted(set(trained) ^ set(correction))[:1]
        raise ScaffoldError(f"drift correction keys differ from the adapter's (e.g. {missing})")
    return [(trained[key], correction[key].to(device, trained[key].dtype)) for key in sorted(trained)]


def train_local(
    model: PeftModel,
    task: Task,
    samples: Sequence[Sample],
    config: TrainConfig,
    *,
    start_state: Mapping[str, torch.Tensor] | None = None,
    seed: int | None = None,
    progress: bool = False,
    description: str = "train",
    on_step: Callable[[int, float], None] | None = None,
    drift_correction: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train the adapter of ``model`` on ``samples`` from ``start_state`` (the round's
    global adapter) and return the new adapter state. The model is left holding it.
    ``drift_correction`` (SCAFFOLD's ``c - c_i``, by adapter key): after every optimizer
    step each adapter tensor moves by ``-learning_rate * correction``."""
    seed = config.seed if seed is None else seed
    device = resolve_device(config.device)
    encoded: list[EncodedSample] = [task.encode(s) for s in samples]
    order = batch_order(len(encoded), config.local_steps, config.batch_size, seed)
    pad_id = task.tokenizer.pad_token_id
    make_batch = lm_batch if task.kind == "lm" else classification_batch
    started = time.perf_counter()
    # LoRA dropout draws from the global generator: seeded, and this thread's alone.
    with deterministic(), seeded_global_rng(seed):
        if start_state is not None:
            load_adapter_state(model, start_state)
        model.to(device)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        # FedProx's anchor: the adapter the round started from (what this org was sent)
        anchors = [p.detach().clone() for p in params] if config.prox_mu > 0 else []
        corrections = _corrections(model, drift_correction, device)
        losses: list[float] = []
        bar = tqdm(order, desc=description, disable=not progress, leave=False, unit="step")
        for step, indices in enumerate(bar):
            batch = make_batch([encoded[i] for i in indices], pad_id).to(device)
            with autocast(device):
                loss = batch_loss(model, batch)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"{description}: loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            objective = loss + proximal_term(params, anchors, config.prox_mu) if anchors else loss
            objective.backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            if corrections:
                with torch.no_grad():
                    for param, corr in corrections:
                        param.add_(corr, alpha=-config.learning_rate)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if on_step is not None:
                on_step(step, loss.item())
        model.eval()
    return TrainResult(
        state=adapter_state(model),
        num_samples=len(samples),
        steps=len(order),
        mean_loss=sum(losses) / len(losses),
        final_loss=losses[-1],
        seconds=time.perf_counter() - started,
    )
