"""All-gather along the batch axis with gradients, for losses that need the global batch.

Both functions accept tensors whose first dimension differs between ranks (the last batch of an
epoch may be smaller): the sizes are gathered first, every rank pads to the largest size, and the
padding is removed after the gather. Without an initialised process group (or with one rank) they
return their input unchanged.

Gradient convention of :func:`gather_with_grad`: the backward pass sums, over all ranks, the
gradient each rank computed for a slice and hands the sum to the rank that owns the slice. When
every rank evaluates the *same* loss ``L`` on the gathered batch, rank ``r`` therefore receives
``R · ∂L/∂x_r`` for its local ``x_r``; DistributedDataParallel then averages the parameter
gradients over the ``R`` ranks, which gives exactly ``∂L/∂θ`` — the gradient of a single process
that sees the concatenated batch. No extra factor is needed in the loss.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_tensor", "gather_with_grad", "rank", "world_size"]


def world_size() -> int:
    """Number of ranks of the default process group, 1 when torch.distributed is not in use."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    """Rank of this process in the default process group, 0 when torch.distributed is not in use."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def _gather_sizes(x: Tensor) -> list[int]:
    """First-dimension sizes of ``x`` on every rank, in rank order."""
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _pad_to(x: Tensor, length: int) -> Tensor:
    """Zero-pad ``x`` (N, ...) along the first dimension to (length, ...)."""
    if x.shape[0] == length:
        return x.contiguous()
    padding = x.new_zeros((length - x.shape[0], *x.shape[1:]))
    return torch.cat([x, padding], dim=0)


def _all_gather_padded(x: Tensor, sizes: list[int]) -> Tensor:
    """Gather ``x`` (n_r, ...) from every rank into (Σ n_r, ...), in rank order."""
    longest = max(sizes)
    padded = _pad_to(x, longest)  # (max n_r, ...)
    pieces = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:n] for piece, n in zip(pieces, sizes, strict=True)], dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the gradients of every rank and keeps the local slice."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        sizes = _gather_sizes(x)
        ctx.sizes = sizes
        ctx.rank = rank()
        return _all_gather_padded(x, sizes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        sizes: list[int] = ctx.sizes
        longest = max(sizes)
        # (Σ n_r, ...) -> (R · max n_r, ...): every rank's slice padded to the same length
        chunks = torch.split(grad, sizes, dim=0)
        padded = torch.cat([_pad_to(chunk, longest) for chunk in chunks], dim=0).contiguous()
        dist.all_reduce(padded, op=dist.ReduceOp.SUM)
        start = ctx.rank * longest
        return padded[start : start + sizes[ctx.rank]]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks in rank order, with gradients flowing back.

    Args:
        x: (n_r, ...) local tensor; n_r may differ between ranks, the other dimensions may not.

    Returns:
        (Σ_r n_r, ...) tensor; rows ``[Σ_{q<r} n_q, Σ_{q≤r} n_q)`` are rank ``r``'s ``x``. The
        gradient reaching the local ``x`` is the sum over ranks of the gradient each rank computed
        for that slice (see the module docstring). Identity without a process group.
    """
    if world_size() == 1:
        return x
    return cast(Tensor, _GatherWithGrad.apply(x))


def gather_tensor(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks in rank order, without gradients (e.g. labels).

    Args:
        x: (n_r, ...) local tensor; n_r may differ between ranks.

    Returns:
        (Σ_r n_r, ...) tensor in rank order; identity without a process group.
    """
    if world_size() == 1:
        return x
    with torch.no_grad():
        return _all_gather_padded(x.detach(), _gather_sizes(x))
