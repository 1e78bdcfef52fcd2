"""The orthonormal 7x7 two-dimensional DCT-II basis used by DAM's frequency branch."""

from __future__ import annotations

import math

import torch
from torch import Tensor

DCT_SIZE = 7
"""Side of the square DCT window."""

NUM_FREQUENCIES = DCT_SIZE * DCT_SIZE
"""Number of 2-D frequencies (basis filters) of the 7x7 DCT."""


def dct_1d(size: int = DCT_SIZE, dtype: torch.dtype = torch.float32) -> Tensor:
    """The orthonormal 1-D DCT-II matrix ``C[f, p] = c(f) cos(π (2p + 1) f / 2n)``.

    ``c(0) = sqrt(1/n)``, ``c(>0) = sqrt(2/n)``; the 2-D basis is its outer product,
    ``B_{u + 7v}[i, j] = C[u, i] C[v, j]``.

    Returns:
        ``(size, size)`` matrix, frequencies along rows, positions along columns.
    """
    pos = torch.arange(size, dtype=torch.float64)
    freq = torch.arange(size, dtype=torch.float64)
    scale = torch.full((size,), math.sqrt(2.0 / size), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / size)
    cos = torch.cos(math.pi * (2.0 * pos[None, :] + 1.0) * freq[:, None] / (2 * size))
    return (scale[:, None] * cos).to(dtype)


def dct_basis_7x7(dtype: torch.dtype = torch.float32) -> Tensor:
    """The 49 orthonormal 7x7 DCT-II basis filters, generated analytically.

    Filter ``k`` (``k = 0..48``) has row frequency ``u = k mod 7`` and column frequency
    ``v = k div 7``::

        B_k[i, j] = c(u) c(v) cos(π (2i + 1) u / 14) cos(π (2j + 1) v / 14),
        c(0) = sqrt(1/7),  c(>0) = sqrt(2/7),

    where ``i`` indexes rows (the H axis) and ``j`` columns (the W axis). With this convention
    ``B_0 ≡ 1/7`` and ``B_1[0, 0] = sqrt(2)/7 · cos(π/14) = 0.19697``; the 49 filters, flattened,
    form an orthonormal basis of R^49.

    Args:
        dtype: floating dtype of the result (computed in float64, then cast).

    Returns:
        The basis, shape ``(49, 7, 7)``.
    """
    cos1d = dct_1d(DCT_SIZE, torch.float64)  # (7 frequencies, 7 positions)
    # basis[v, u, i, j] = cos1d[u, i] * cos1d[v, j]; flattening (v, u) gives k = u + 7 v
    basis = torch.einsum("ui,vj->vuij", cos1d, cos1d)
    return basis.reshape(NUM_FREQUENCIES, DCT_SIZE, DCT_SIZE).to(dtype)
