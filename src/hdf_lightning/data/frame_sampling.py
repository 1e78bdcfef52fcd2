"""Clip sampling: which frame indices of a clip of ``source_len`` frames make a ``clip_len`` clip.

Naming: ``source_len`` (``N``) is the number of frames the source clip *has* (frame files or
decodable video frames); ``clip_len`` (``K``) the number of frames *sampled* from it, which the
DataModules and models call ``num_frames``.

Pure, stateless functions of (number of frames, clip length, mode, generator), in the style of
pytorchvideo's ``clip_sampling`` and mmaction2's ``SampleFrames``. Every function returns a plain
``list[int]`` of length ``clip_len`` with values in ``[0, source_len)``.

Randomness comes from ``generator`` when one is given, else from torch's global generator (which a
``DataLoader`` seeds differently in every worker, so no extra worker seeding is needed).

Segment boundaries: the clip is split into ``K = clip_len`` segments, segment ``i`` covering the
frames ``[b_i, b_{i+1})`` with ``b_i = floor(N·i/K)``. When ``N >= K`` every segment holds at least
one frame.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch

__all__ = [
    "SAMPLERS",
    "ClipSampler",
    "dense_indices",
    "m3dfel_indices",
    "multi_view_indices",
    "sample_indices",
    "segment_indices",
]


class ClipSampler(Protocol):
    """Common signature of the samplers in :data:`SAMPLERS`."""

    def __call__(
        self,
        source_len: int,
        clip_len: int,
        *,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> list[int]: ...


def _check_lengths(source_len: int, clip_len: int) -> None:
    if source_len < 1:
        raise ValueError(f"expected a clip with at least 1 frame, got source_len={source_len}")
    if clip_len < 1:
        raise ValueError(f"expected clip_len >= 1, got clip_len={clip_len}")


def _pad_short(source_len: int, clip_len: int) -> list[int]:
    """All frames in order, then the last frame repeated up to ``clip_len`` (for N < K)."""
    return list(range(source_len)) + [source_len - 1] * (clip_len - source_len)


def _segment_bounds(source_len: int, clip_len: int) -> tuple[list[int], list[int]]:
    """Start and length of each of the ``clip_len`` segments (lengths >= 1 when N >= K)."""
    bounds = [(source_len * i) // clip_len for i in range(clip_len + 1)]
    starts = bounds[:-1]
    lengths = [bounds[i + 1] - bounds[i] for i in range(clip_len)]
    return starts, lengths


def _uniform_ints(highs: list[int], generator: torch.Generator | None) -> list[int]:
    """One uniform integer in ``[0, high)`` for each ``high`` (float64 draw, floor, clamp)."""
    u = torch.rand(len(highs), generator=generator, dtype=torch.float64)
    return [min(int(x * h), h - 1) for x, h in zip(u.tolist(), highs, strict=True)]


def segment_indices(
    source_len: int,
    clip_len: int,
    *,
    train: bool,
    generator: torch.Generator | None = None,
) -> list[int]:
    """TSN-style segment sampling (docs/method.md §7, the default sampler).

    The clip is split into ``K = clip_len`` segments of (near) equal length. Training takes a
    uniformly random frame inside each segment; evaluation takes the segment centre
    ``b_i + len_i // 2`` (deterministic). Clips shorter than ``K`` frames return every frame once,
    in order, followed by the last frame repeated (the same in training and evaluation).

    Args:
        source_len: Number of frames ``N`` in the clip (>= 1).
        clip_len: Number of indices ``K`` to return (>= 1).
        train: Random in-segment frame when True, segment centre when False.
        generator: Optional generator for the training draw.

    Returns:
        ``K`` non-decreasing frame indices in ``[0, N)``.

    Example:
        ``segment_indices(32, 16, train=False) == [1, 3, 5, ..., 31]``.
    """
    _check_lengths(source_len, clip_len)
    if source_len < clip_len:
        return _pad_short(source_len, clip_len)
    starts, lengths = _segment_bounds(source_len, clip_len)
    offsets = _uniform_ints(lengths, generator) if train else [n // 2 for n in lengths]
    return [s + o for s, o in zip(starts, offsets, strict=True)]


def m3dfel_indices(
    source_len: int,
    clip_len: int,
    *,
    generator: torch.Generator | None = None,
    max_jitter: int | None = None,
) -> list[int]:
    """M3DFEL's sampler, kept for fidelity with its released DFEW loader (opt-in).

    Index ``i`` is ``min(floor(N·i/K) + j_i, N - 1)`` with an independent jitter ``j_i`` uniform in
    ``[0, max_jitter)`` (``max_jitter`` defaults to ``K``, i.e. "up to 16 frames" for 16-frame
    clips). Unlike :func:`segment_indices` this sampler

    * is random at test time too (M3DFEL applies the jitter in both modes), so evaluation with it
      is not deterministic unless a seeded ``generator`` is passed;
    * does not preserve temporal order: the jitter (up to K frames) is larger than the spacing
      ``N/K`` of the base indices for clips shorter than about ``K²`` frames, so indices can go
      backwards;
    * clamps to the last frame, so the end of the clip is over-represented.

    Args:
        source_len: Number of frames ``N`` in the clip (>= 1).
        clip_len: Number of indices ``K`` to return (>= 1).
        generator: Optional generator for the jitter.
        max_jitter: Exclusive upper bound of the jitter (>= 1); ``None`` means ``clip_len``.

    Returns:
        ``K`` frame indices in ``[0, N)``, not necessarily ordered.
    """
    _check_lengths(source_len, clip_len)
    jitter = clip_len if max_jitter is None else max_jitter
    if jitter < 1:
        raise ValueError(f"expected max_jitter >= 1 (or None for clip_len), got {max_jitter}")
    offsets = _uniform_ints([jitter] * clip_len, generator)
    return [min((source_len * i) // clip_len + o, source_len - 1) for i, o in enumerate(offsets)]


def _dense_span(clip_len: int, stride: int) -> int:
    """Number of frames covered by ``clip_len`` frames at ``stride`` (first to last, inclusive)."""
    return (clip_len - 1) * stride + 1


def _dense_from_start(start: int, source_len: int, clip_len: int, stride: int) -> list[int]:
    return [min(start + k * stride, source_len - 1) for k in range(clip_len)]


def dense_indices(
    source_len: int,
    clip_len: int,
    *,
    stride: int = 2,
    train: bool,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Dense sampling: ``K`` frames at a fixed ``stride`` from one window of the clip.

    The window spans ``(K - 1)·stride + 1`` frames. Training starts it at a uniformly random frame
    in ``[0, N - span]``; evaluation centres it (start ``(N - span) // 2``). Clips shorter than the
    span start at frame 0 and repeat the last frame once the stride runs past the end.

    Args:
        source_len: Number of frames ``N`` in the clip (>= 1).
        clip_len: Number of indices ``K`` to return (>= 1).
        stride: Step between consecutive indices (>= 1).
        train: Random window start when True, centred window when False.
        generator: Optional generator for the training draw.

    Returns:
        ``K`` non-decreasing frame indices in ``[0, N)``.
    """
    _check_lengths(source_len, clip_len)
    if stride < 1:
        raise ValueError(f"expected stride >= 1, got stride={stride}")
    max_start = max(source_len - _dense_span(clip_len, stride), 0)
    start = _uniform_ints([max_start + 1], generator)[0] if train else max_start // 2
    return _dense_from_start(start, source_len, clip_len, stride)


def multi_view_indices(
    source_len: int,
    clip_len: int,
    *,
    views: int,
    mode: Literal["segment", "dense"] = "segment",
    stride: int = 2,
) -> list[list[int]]:
    """Deterministic evaluation views spread over the clip (average the predictions of the views).

    * ``"segment"``: view ``v`` takes, in every segment, the frame at fraction ``(v + ½)/V`` of
      the segment: ``b_i + floor(len_i·(2v + 1)/(2V))``. One view equals the evaluation output of
      :func:`segment_indices`.
    * ``"dense"``: view ``v`` starts its window at ``floor(max_start·(2v + 1)/(2V))`` with
      ``max_start = max(N - span, 0)``. One view equals the evaluation output of
      :func:`dense_indices`.

    Short clips give identical (padded) views.

    Args:
        source_len: Number of frames ``N`` in the clip (>= 1).
        clip_len: Number of indices ``K`` per view (>= 1).
        views: Number of views ``V`` (>= 1).
        mode: ``"segment"`` or ``"dense"``.
        stride: Frame stride of the dense windows (ignored for ``"segment"``).

    Returns:
        ``V`` lists of ``K`` non-decreasing frame indices in ``[0, N)``.
    """
    _check_lengths(source_len, clip_len)
    if views < 1:
        raise ValueError(f"expected views >= 1, got views={views}")
    if mode == "segment":
        if source_len < clip_len:
            return [_pad_short(source_len, clip_len) for _ in range(views)]
        starts, lengths = _segment_bounds(source_len, clip_len)
        return [
            [s + (n * (2 * v + 1)) // (2 * views) for s, n in zip(starts, lengths, strict=True)]
            for v in range(views)
        ]
    if mode == "dense":
        if stride < 1:
            raise ValueError(f"expected stride >= 1, got stride={stride}")
        max_start = max(source_len - _dense_span(clip_len, stride), 0)
        return [
            _dense_from_start(
                (max_start * (2 * v + 1)) // (2 * views), source_len, clip_len, stride
            )
            for v in range(views)
        ]
    raise ValueError(f"unknown multi-view mode {mode!r}; expected one of ['dense', 'segment']")


def _m3dfel_sampler(
    source_len: int,
    clip_len: int,
    *,
    train: bool,
    generator: torch.Generator | None = None,
) -> list[int]:
    """:func:`m3dfel_indices` under the common signature (random in both modes, as M3DFEL)."""
    del train  # M3DFEL jitters at test time as well
    return m3dfel_indices(source_len, clip_len, generator=generator)


SAMPLERS: dict[str, ClipSampler] = {
    "segment": segment_indices,
    "m3dfel": _m3dfel_sampler,
    "dense": dense_indices,
}
"""Config name -> sampler with the common signature ``(N, K, *, train, generator) -> list[int]``."""


def sample_indices(
    mode: str,
    source_len: int,
    clip_len: int,
    *,
    train: bool,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Dispatch to the sampler named ``mode`` in :data:`SAMPLERS`.

    Args:
        mode: ``"segment"`` (default in the configs), ``"m3dfel"`` or ``"dense"`` (stride 2).
        source_len: Number of frames ``N`` in the clip (>= 1).
        clip_len: Number of indices ``K`` to return (>= 1).
        train: Training (random) or evaluation sampling.
        generator: Optional generator for the random draws.

    Returns:
        ``K`` frame indices in ``[0, N)``.

    Raises:
        ValueError: unknown ``mode`` (the message lists the valid ones), ``source_len < 1`` or
            ``clip_len < 1``.
    """
    sampler = SAMPLERS.get(mode)
    if sampler is None:
        raise ValueError(f"unknown sampling mode {mode!r}; expected one of {sorted(SAMPLERS)}")
    _check_lengths(source_len, clip_len)
    return sampler(source_len, clip_len, train=train, generator=generator)
