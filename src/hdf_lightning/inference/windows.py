"""Sliding windows over a video: where each window starts and ends and which frames it feeds.

A window of ``L`` frames covers ``[start, start + L)``; windows start every ``S`` frames, and when
the last regular window leaves frames uncovered, one more window is aligned to the video's end, so
every frame belongs to at least one window. Inside a window the clip's ``T`` frames are chosen by
the checkpoint's evaluation sampler (segment centres for ``segment``), exactly as a training clip of
``L`` frames is sampled at evaluation.

Lengths are given as ``"2s"`` (seconds), ``"48f"`` (frames) or a bare number (seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from hdf_lightning.data.frame_sampling import sample_indices

__all__ = ["ShortVideoError", "Window", "num_windows", "parse_span", "sliding_windows"]

_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|f)?\s*$", re.IGNORECASE)


class ShortVideoError(ValueError):
    """The video has fewer frames than one window."""


@dataclass(frozen=True)
class Window:
    """One window of a video.

    Attributes:
        index: position in the video's window list (0-based).
        start: first frame of the window.
        end: one past its last frame (``end - start`` is the window length).
        indices: the ``T`` frame indices of its clip, in ``[start, end)``, non-decreasing.
    """

    index: int
    start: int
    end: int
    indices: tuple[int, ...]


def parse_span(value: str | float | int, fps: float, *, name: str = "span") -> int:
    """A length in frames from ``"2s"``, ``"0.5s"``, ``"48f"`` or a bare number of seconds.

    Args:
        value: the length; seconds are converted with ``fps`` and rounded to the nearest frame.
        fps: frames per second of the video.
        name: the option's name, for the error message.

    Returns:
        The length in frames, at least 1.

    Raises:
        ValueError: unparsable or non-positive value.
    """
    match = _SPAN.match(str(value))
    if match is None:
        raise ValueError(
            f"{name} must be a length like '2s', '0.5s' or '48f' (seconds or frames), got {value!r}"
        )
    number, unit = float(match.group(1)), (match.group(2) or "s").lower()
    if unit == "f" and not number.is_integer():
        raise ValueError(f"{name} in frames must be a whole number, got {value!r}")
    frames = int(number) if unit == "f" else round(number * fps)
    if frames < 1:
        raise ValueError(f"{name} must be at least one frame, got {value!r} at {fps:g} fps")
    return frames


def sliding_windows(
    video_frames: int,
    length: int,
    stride: int,
    clip_len: int,
    *,
    sampler: str = "segment",
    seed: int = 0,
) -> list[Window]:
    """The windows of a video of ``video_frames`` frames.

    Args:
        video_frames: frames in the video ``N``.
        length: window length ``L`` in frames.
        stride: frames between window starts ``S``.
        clip_len: frames per clip ``T`` (the network's input length).
        sampler: the evaluation sampler (:data:`hdf_lightning.data.frame_sampling.SAMPLERS`); random
            samplers draw from a generator seeded with ``seed``, so a run is reproducible.
        seed: seed of random samplers.

    Returns:
        ``ceil((N - L) / S) + 1`` windows in start order.

    Raises:
        ShortVideoError: ``N < L``.
        ValueError: ``length``, ``stride`` or ``clip_len`` below 1.
    """
    for key, value in (("length", length), ("stride", stride), ("clip_len", clip_len)):
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
    if video_frames < length:
        raise ShortVideoError(f"{video_frames} frames, shorter than one window of {length} frames")
    starts = list(range(0, video_frames - length + 1, stride))
    if starts[-1] + length < video_frames:
        starts.append(video_frames - length)
    generator = torch.Generator().manual_seed(seed)
    windows = []
    for i, start in enumerate(starts):
        offsets = sample_indices(sampler, length, clip_len, train=False, generator=generator)
        windows.append(Window(i, start, start + length, tuple(start + o for o in offsets)))
    return windows


def num_windows(video_frames: int, length: int, stride: int) -> int:
    """How many windows :func:`sliding_windows` returns (0 for a video shorter than a window)."""
    if video_frames < length:
        return 0
    regular = (video_frames - length) // stride + 1
    return regular + int((regular - 1) * stride + length < video_frames)
