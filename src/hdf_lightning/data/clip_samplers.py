"""Which clips a DataLoader draws: seeded, DDP-sharded samplers and the stratified split.

These choose *clips* (items of a dataset); :mod:`hdf_lightning.data.frame_sampling` chooses the
*frames* of one clip. Pure and Lightning-free: they depend only on torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Resolve (num_replicas, rank): explicit values, else torch.distributed, else (1, 0)."""
    initialized = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    return num_replicas, rank


class EpochSampler(DistributedSampler):
    """Seeded shuffling sampler, sharded over ranks, that yields ``(index, epoch)`` keys.

    A :class:`DistributedSampler` (so Lightning neither replaces nor wraps it, and calls
    :meth:`set_epoch` every epoch) whose keys carry the epoch to
    :class:`~hdf_lightning.data.datasets.ClipDataset`, so per-item frame sampling is reproducible
    whatever the number of workers, persistent or not.

    Args:
        dataset: a sized dataset.
        num_replicas: number of ranks (default: torch.distributed's world size, else 1).
        rank: this rank (default: torch.distributed's rank, else 0).
        shuffle: shuffle with ``seed + epoch``.
        seed: base seed.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        num_replicas, rank = _world(num_replicas, rank)
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self._skip = 0

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` items of the next iteration only (resuming an epoch)."""
        self._skip = int(count)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self._skip = self._skip, 0
        for position, index in enumerate(super().__iter__()):
            if position >= skip:
                yield index, self.epoch


class DistributedWeightedSampler(DistributedSampler):
    """Weighted sampling (e.g. class-balanced) that works across ranks; yields ``(index, epoch)``.

    Every rank draws the same seeded global sample of ``num_samples`` indices with
    ``torch.multinomial(weights, ...)`` (seed ``seed + epoch``) and keeps the positions
    ``rank, rank + num_replicas, ...``: the ranks' shards partition the global sample.

    Args:
        weights: (N,) non-negative sampling weight of every item.
        num_samples: size of the global sample per epoch (default N), rounded up to a multiple of
            ``num_replicas``.
        num_replicas: number of ranks (default: torch.distributed's world size, else 1).
        rank: this rank (default: torch.distributed's rank, else 0).
        seed: base seed.
        replacement: draw with replacement (needed to over-sample rare classes).
    """

    def __init__(
        self,
        weights: Sequence[float] | torch.Tensor,
        *,
        num_samples: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        replacement: bool = True,
    ) -> None:
        w = torch.as_tensor(weights, dtype=torch.double)
        if w.ndim != 1 or len(w) == 0 or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError(
                "weights must be a non-empty 1-D sequence of non-negative numbers with a positive "
                f"sum, got shape {tuple(w.shape)}"
            )
        num_replicas, rank = _world(num_replicas, rank)
        items: Any = range(len(w))  # DistributedSampler only needs len()
        super().__init__(items, num_replicas=num_replicas, rank=rank, seed=seed)
        total = len(w) if num_samples is None else num_samples
        if total < 1:
            raise ValueError(f"num_samples must be >= 1, got {total}")
        self.num_samples = math.ceil(total / num_replicas)
        self.total_size = self.num_samples * num_replicas
        if not replacement and self.total_size > int((w > 0).sum()):
            raise ValueError(
                f"cannot draw {self.total_size} items without replacement from "
                f"{int((w > 0).sum())} items of positive weight"
            )
        self.weights = w
        self.replacement = replacement
        self._skip = 0

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` items of the next iteration only (resuming an epoch)."""
        self._skip = int(count)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self._skip = self._skip, 0
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(
            self.weights, self.total_size, self.replacement, generator=generator
        )
        for index in draws[self.rank : self.total_size : self.num_replicas].tolist()[skip:]:
            yield index, self.epoch

    def __len__(self) -> int:
        return self.num_samples


def stratified_split(
    labels: Sequence[int], fraction: float, *, seed: int
) -> tuple[list[int], list[int]]:
    """Split positions into (keep, held out), holding out ``fraction`` of every class.

    Each class with at least two items gives ``max(1, round(fraction * n))`` items (never all of
    them), chosen with a generator seeded by ``seed``; both lists are sorted.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    held: list[int] = []
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        if len(members) < 2:
            continue
        n_held = min(len(members) - 1, max(1, round(fraction * len(members))))
        order = torch.randperm(len(members), generator=generator)[:n_held].tolist()
        held.extend(members[i] for i in order)
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)
