"""SCAFFOLD's control variates (Karimireddy et al., "SCAFFOLD: Stochastic Controlled
Averaging for Federated Learning", ICML 2020), for client drift under non-IID data.

The server keeps a control ``c`` and each org its own ``c_i`` (both start at zero), one
tensor per adapter key. An org trains its round from the global adapter ``x`` and, after
every local optimizer step, moves its adapter by ``-lr * (c - c_i)``: the drift its own
data causes, estimated last round, is taken out. After ``K`` steps ending at ``y`` it
updates its control with the paper's option II,

    ``c_i+ = c_i - c + (x - y) / (K * lr)``,

and the server adds the accepted orgs' mean control change, weighted by the fraction of
the federation they are: ``c += (|S| / N) * mean(c_i+ - c_i)``.

Local training here is AdamW, not SGD, so the correction is applied to the parameters
after the optimizer's step rather than folded into the gradient (which AdamW would
rescale), as OpenFedLLM does for its SCAFFOLD; ``(x - y) / (K * lr)`` is then the mean
per-step movement in units of the learning rate. Everything is float32 on CPU in key
order: deterministic, so replay equals retrain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from fedledger.learning.errors import LearningError

__all__ = ["Control", "Controls", "ScaffoldError", "client_control", "correction", "server_control", "zeros_like"]

#: adapter key -> control tensor (float32, the adapter tensor's shape)
Control = dict[str, torch.Tensor]


class ScaffoldError(LearningError, ValueError):
    """A control that does not fit the adapter (keys or shapes)."""


@dataclass(frozen=True)
class Controls:
    """The federation's controls after a round: the server's and each org's."""

    server: Control
    clients: dict[str, Control] = field(default_factory=dict)


def zeros_like(adapter: Mapping[str, torch.Tensor]) -> Control:
    return {key: torch.zeros(adapter[key].shape, dtype=torch.float32) for key in sorted(adapter)}


def _check(control: Mapping[str, torch.Tensor], adapter: Mapping[str, torch.Tensor], what: str) -> None:
    if set(control) != set(adapter):
        raise ScaffoldError(f"SCAFFOLD: the {what} control's keys differ from the adapter's")
    for key, tensor in control.items():
        if tuple(tensor.shape) != tuple(adapter[key].shape):
            raise ScaffoldError(f"SCAFFOLD: {what} control {key} has shape {tuple(tensor.shape)}, the "
                                f"adapter {tuple(adapter[key].shape)} (a rank-changing strategy "
                                "such as exact_lora cannot carry controls)")


def correction(server: Mapping[str, torch.Tensor], client: Mapping[str, torch.Tensor],
               adapter: Mapping[str, torch.Tensor]) -> Control:
    """``c - c_i``: what an org's training subtracts (times lr) after each step."""
    _check(server, adapter, "server")
    _check(client, adapter, "client")
    return {key: server[key] - client[key] for key in sorted(adapter)}


def client_control(client: Mapping[str, torch.Tensor], server: Mapping[str, torch.Tensor],
                   start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor], *,
                   steps: int, lr: float) -> Control:
    """Option II: ``c_i - c + (x - y) / (K * lr)``."""
    if steps < 1 or lr <= 0:
        raise ScaffoldError(f"SCAFFOLD: needs steps >= 1 and lr > 0, not {steps} and {lr}")
    scale = 1.0 / (steps * lr)
    return {key: client[key] - server[key]
            + (start[key].to(torch.float32) - end[key].to(torch.float32)) * scale
            for key in sorted(start)}


def server_control(server: Mapping[str, torch.Tensor], changes: Iterable[Mapping[str, torch.Tensor]],
                   *, federation_size: int) -> Control:
    """``c + (|S| / N) * mean(delta c_i)`` over the accepted orgs' control changes."""
    changes = list(changes)
    if not changes:
        return dict(server)
    if federation_size < len(changes):
        raise ScaffoldError(f"SCAFFOLD: {len(changes)} changes from a federation of {federation_size}")
    out: Control = {}
    for key in sorted(server):
        total = torch.zeros_like(server[key])
        for change in changes:
            total = total + change[key]
        out[key] = server[key] + total / federation_size  # (|S|/N) * (sum/|S|)
    return out
