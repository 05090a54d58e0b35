"""Exact LoRA aggregation: average the products B_i A_i, not the factors.

Why: a LoRA module contributes ``delta W_i = B_i A_i`` to the frozen weight. FedAvg of the
factors gives ``avg(B) avg(A) = sum_ij w_i w_j B_i A_j``, which contains the cross terms
``B_i A_j`` (i != j) that no client ever trained. The update the federation actually
wants is

    delta W = sum_i w_i B_i A_i                                   (out x in)

How, without ever forming the (out x in) matrix: stack the factors,

    delta W = [w_1 B_1 | ... | w_n B_n] @ [A_1; ...; A_n] = B_cat @ A_cat,

so rank(delta W) <= n r. Take thin QR factorisations ``B_cat = Q_B R_B`` (out x nr) and
``A_cat^T = Q_A R_A`` (in x nr); then ``delta W = Q_B (R_B R_A^T) Q_A^T`` and only the
small (nr x nr) core needs an SVD, ``R_B R_A^T = U S V^T``. With ``k`` kept singular
values the new factors are

    B' = Q_B U_k sqrt(S_k)      (out x k)
    A' = sqrt(S_k) V_k^T Q_A^T  (k x in)

so the result is again a LoRA pair and stays a PEFT adapter.

* ``rank=None`` keeps ``k = n r``: lossless, ``B' A'`` equals ``delta W`` to float
  tolerance (when ``n r`` exceeds ``min(out, in)`` the extra rows/columns are zero).
  The adapter grows by a factor n each round, so this is for one-off merges and tests.
* ``rank=k`` keeps the top k: by Eckart-Young the best rank-k approximation of
  ``delta W`` in Frobenius and spectral norm. ``rank=r`` keeps the adapter shape fixed
  across rounds. The dropped share of the energy ``sum S^2`` is reported per module and
  overall in ``details``.

PEFT scales a LoRA module by ``lora_alpha / r`` (or ``/ sqrt(r)`` with rsLoRA). The
factors returned here already carry the whole product, so when the rank changes the
adapter config must keep the *scale*, not alpha: use :func:`scaled_lora_alpha` with
``details["output_rank"]`` when writing ``adapter_config.json``.

Keys that are not LoRA factors (``modules_to_save``, DoRA magnitudes, biases) are
FedAvg'd. The factorisation runs in the accumulation dtype (float32, float64 for
float64 input): Householder QR and the SVD are backward stable, so in float32 ``B' A'``
matches ``delta W`` to about 1e-6 relative, the rounding level of the inputs
themselves, at half the memory and time of float64. Per module the working set is the
two stacked factors and their QR; nothing of size (out x in) is ever formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from fedledger.learning.aggregation.base import AggregationResult, AggregationStrategy, UpdateBatch
from fedledger.learning.aggregation.fedavg import fedavg_tensors
from fedledger.learning.aggregation.ops import accumulation_dtype
from fedledger.learning.errors import AggregationError
from fedledger.learning.lora_keys import LoRAPair, pair_lora_keys

__all__ = ["ExactLoRA", "LoRAPair", "pair_lora_keys", "scaled_lora_alpha"]


def scaled_lora_alpha(lora_alpha: float, r: int, new_r: int, *, use_rslora: bool = False) -> float:
    """The ``lora_alpha`` that keeps PEFT's scale when the rank goes from r to new_r.

    PEFT scales by ``alpha / r`` (rsLoRA: ``alpha / sqrt(r)``); exact aggregation
    returns factors whose product is already the averaged update, so the scale must not
    change with the rank.
    """
    if r <= 0 or new_r <= 0:
        raise AggregationError(f"ranks must be positive, got r={r}, new_r={new_r}")
    ratio = math.sqrt(new_r / r) if use_rslora else new_r / r
    return lora_alpha * ratio


@dataclass(frozen=True)
class ExactLoRA(AggregationStrategy):
    """Sample-weighted mean of ``B_i A_i`` per module, refactored to rank ``rank``.

    rank: None keeps ``n * r`` (lossless); an int keeps the top-``rank`` SVD components.
    """

    name: ClassVar[str] = "exact_lora"
    rank: int | None = None

    def __post_init__(self) -> None:
        if self.rank is not None and (
            isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1
        ):
            raise AggregationError(
                f"exact_lora: rank must be None or an int >= 1, got {self.rank!r}"
            )

    def _aggregate(self, batch: UpdateBatch) -> AggregationResult:
        pairs, others = pair_lora_keys(batch.keys)
        first = batch.updates[0].tensors
        out: dict[str, torch.Tensor] = {}
        modules: dict[str, dict[str, Any]] = {}
        kept_energy = total_energy = 0.0
        in_ranks: set[int] = set()
        out_ranks: set[int] = set()
        workspace = _Workspace(first[batch.keys[0]].device)
        for pair in pairs:
            a0, b0 = first[pair.a_key], first[pair.b_key]
            if a0.dim() != 2 or b0.dim() != 2 or a0.shape[0] != b0.shape[1]:
                raise AggregationError(
                    f"LoRA pair {pair.a_key!r} {tuple(a0.shape)} / {pair.b_key!r} "
                    f"{tuple(b0.shape)}: expected A (r, in) and B (out, r)"
                )
            r = a0.shape[0]
            k = len(batch) * r if self.rank is None else self.rank
            a_new, b_new, s = _merge_module(
                batch.column(pair.a_key), batch.column(pair.b_key), batch.weights, k, workspace
            )
            out[pair.a_key] = a_new.to(a0.dtype)
            out[pair.b_key] = b_new.to(b0.dtype)
            energy = float((s * s).sum())
            kept = float((s[:k] * s[:k]).sum())
            total_energy += energy
            kept_energy += kept
            modules[pair.module] = {
                "input_rank": r,
                "output_rank": k,
                "dropped_energy": _share(energy - kept, energy),
            }
            in_ranks.add(r)
            out_ranks.add(k)
        out.update(fedavg_tensors(batch, tuple(others)))
        details: dict[str, Any] = {
            "input_rank": in_ranks.pop() if len(in_ranks) == 1 else None,
            "output_rank": out_ranks.pop() if len(out_ranks) == 1 else None,
            "dropped_energy": _share(total_energy - kept_energy, total_energy),
            "modules": modules,
            "fedavg_keys": others,
            "weights": dict(zip(batch.client_ids, batch.weights, strict=True)),
        }
        return AggregationResult(
            tensors={k: out[k] for k in batch.keys},
            accepted=batch.client_ids,
            rejected={},
            details=details,
        )


def _share(part: float, whole: float) -> float:
    # Clamp: part is a difference of float sums and may come out a hair below zero.
    return 0.0 if whole <= 0.0 else min(1.0, max(0.0, part / whole))


class _Workspace:
    """Scratch tensors reused across the modules of one call, by role and shape.

    A 7B-shaped adapter has hundreds of modules but two or three distinct factor shapes;
    allocating and freeing multi-MB temporaries per module leaves holes in the C heap
    that raised peak RSS to 2-7 updates beyond the output in measurements. With reuse,
    the only per-module allocations are the returned factors.
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._tensors: dict[tuple[object, ...], torch.Tensor] = {}

    def get(
        self, role: str, shape: tuple[int, ...], dtype: torch.dtype, *, fortran: bool = False
    ) -> torch.Tensor:
        key = (role, shape, dtype, fortran)
        t = self._tensors.get(key)
        if t is None:
            # LAPACK works column-major: a Fortran-ordered buffer is used in place.
            dims = shape[::-1] if fortran else shape
            t = torch.empty(dims, dtype=dtype, device=self._device)
            t = t.T if fortran else t
            self._tensors[key] = t
        return t


def _merge_module(
    a_list: list[torch.Tensor],
    b_list: list[torch.Tensor],
    weights: tuple[float, ...],
    k: int,
    ws: _Workspace,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A' (k x in), B' (out x k), all singular values of sum_i w_i B_i A_i).

    Householder QR without forming Q (``geqrf``); Q is applied only to the k kept
    columns (``ormqr``), which for k = r costs a tenth of building the (out x nr) Q.
    """
    dtype = accumulation_dtype(b_list[0].dtype)
    n, r = len(b_list), b_list[0].shape[1]
    out_dim, in_dim = b_list[0].shape[0], a_list[0].shape[1]
    nr = n * r
    # B_cat = [w_1 B_1 | ... | w_n B_n]: client i in columns i*r .. (i+1)*r
    b_cat = ws.get("b_cat", (out_dim, nr), dtype)
    torch.cat([b.to(dtype) for b in b_list], dim=1, out=b_cat)
    scale = torch.tensor(weights, dtype=dtype, device=b_cat.device)
    b_cat.view(out_dim, n, r).mul_(scale.view(1, n, 1))
    a_cat = ws.get("a_cat", (nr, in_dim), dtype)
    torch.cat([a.to(dtype) for a in a_list], dim=0, out=a_cat)

    h_b, tau_b = _householder(b_cat, "b", ws)
    h_a, tau_a = _householder(a_cat.T, "a", ws)
    r_b = h_b[: tau_b.numel()].triu()  # p x nr, p = min(out, nr)
    r_a = h_a[: tau_a.numel()].triu()  # q x nr
    u, s, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)
    kept = min(k, s.numel())
    root = s[:kept].sqrt()
    b_new = _apply_q(h_b, tau_b, u[:, :kept] * root, k, "b", ws)  # out x k
    a_new = _apply_q(h_a, tau_a, vh[:kept].T * root, k, "a", ws).T  # (in x k)^T
    # Fresh, C-contiguous results (safetensors needs contiguous tensors; the workspace
    # is overwritten by the next module).
    return (
        torch.empty(a_new.shape, dtype=dtype, device=a_new.device).copy_(a_new),
        torch.empty(b_new.shape, dtype=dtype, device=b_new.device).copy_(b_new),
        s,
    )


def _householder(x: torch.Tensor, side: str, ws: _Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = x.shape
    h = ws.get(f"h_{side}", (rows, cols), x.dtype, fortran=True)
    tau = ws.get(f"tau_{side}", (min(rows, cols),), x.dtype)
    torch.geqrf(x, out=(h, tau))
    return h, tau


def _apply_q(
    h: torch.Tensor, tau: torch.Tensor, small: torch.Tensor, k: int, side: str, ws: _Workspace
) -> torch.Tensor:
    """``Q @ [small; 0]`` as (rows of h) x k. Columns beyond ``small``'s stay zero: when
    there are fewer singular values than the requested rank (nr > min(out, in), or
    k > nr) every module still gets the same rank, as one adapter config requires."""
    rows = h.shape[0]
    padded = ws.get(f"pad_{side}", (rows, k), h.dtype, fortran=True)
    padded.zero_()
    padded[: small.shape[0], : small.shape[1]] = small
    return torch.ormqr(h, tau, padded, out=ws.get(f"q_{side}", (rows, k), h.dtype, fortran=True))
