"""The clip dataset: :class:`ClipRecord` (one clip of a split, as the readers of
:mod:`hdf_lightning.data.splits` return them), listing a clip's frames, and :class:`ClipDataset`,
which samples and loads clips as uint8 tensors.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from hdf_lightning.data.errors import (
    CorruptClipError,
    DatasetError,
    EmptyClipError,
    MissingClipError,
)
from hdf_lightning.data.frame_sampling import multi_view_indices, sample_indices
from hdf_lightning.data.video import (
    VideoLength,
    decode_video,
    list_frames,
    load_frames,
    probe_video,
    read_frame_bytes,
)

log = logging.getLogger(__name__)

ClipKind = Literal["frames", "video"]

MULTI_VIEW_MODES: dict[str, Literal["segment", "dense"]] = {"segment": "segment", "dense": "dense"}
"""Sampler modes with deterministic evaluation views (:func:`multi_view_indices`)."""


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a split.

    Attributes:
        path: frame folder (``kind="frames"``) or video file (``kind="video"``).
        label: 0-based class index in the dataset's class order (DFEW order for DFEW and FERV39k).
        clip_id: the clip's name in its split file (DFEW ids padded to 5 digits).
        kind: ``"frames"`` or ``"video"``.
        source: ``"<split file>:<line>"`` the record was read from, for error messages.
    """

    path: Path
    label: int
    clip_id: str
    kind: ClipKind
    source: str = ""


def _describe(record: ClipRecord) -> str:
    origin = f" (from {record.source})" if record.source else ""
    return f"clip {record.clip_id} at {record.path}{origin}"


def clip_frames(record: ClipRecord) -> tuple[int, list[Path]]:
    """Frame count of a clip and, for frame folders, its sorted frame files (``[]`` for videos).

    A video's count is the number of frames that decode (one decoding pass without colour
    conversion, :func:`~hdf_lightning.data.video.probe_video`); a damaged or truncated video is
    logged as a warning with its declared and decoded length.

    Raises:
        MissingClipError: the folder or video does not exist.
        EmptyClipError: no frames.
        CorruptClipError: the video cannot be opened.
    """
    n, paths, length = clip_length(record)
    if length is not None and length.damaged:
        log.warning("%s", length.describe())
    return n, paths


def clip_length(record: ClipRecord) -> tuple[int, list[Path], VideoLength | None]:
    """:func:`clip_frames` plus, for a video, its declared and decoded length (None for a frame
    folder), without the warning.

    Raises:
        MissingClipError: the folder or video does not exist.
        EmptyClipError: no frames.
        CorruptClipError: the video cannot be opened.
    """
    if not record.path.exists():
        raise MissingClipError(f"{_describe(record)}: not found")
    length: VideoLength | None = None
    try:
        if record.kind == "frames":
            paths = list_frames(record.path)
            n = len(paths)
        else:
            paths = []
            length = probe_video(record.path)
            n = length.decoded
    except FileNotFoundError as err:
        raise MissingClipError(f"{_describe(record)}: {err}") from err
    except ValueError as err:
        if record.kind == "frames":
            raise EmptyClipError(f"{_describe(record)}: {err}") from err
        raise CorruptClipError(f"{_describe(record)}: {err}") from err
    except OSError as err:
        raise CorruptClipError(f"{_describe(record)}: {err}") from err
    if n <= 0:
        raise EmptyClipError(f"{_describe(record)}: no frames found, expected at least one")
    return n, paths, length


def clip_num_frames(record: ClipRecord) -> int:
    """Number of frames of a clip (frame files in its folder, or frames of its video).

    Raises:
        MissingClipError: the folder or video does not exist.
        EmptyClipError: no frames.
        CorruptClipError: the video cannot be opened.
    """
    return clip_frames(record)[0]


def scan_index(
    records: Sequence[ClipRecord], *, skip_bad: bool
) -> tuple[list[ClipRecord], list[tuple[int, list[Path]]], list[DatasetError]]:
    """List every clip once, without decoding: its frame count and sorted frame files.

    Args:
        records: clips to check.
        skip_bad: drop bad clips (returned in the third element) instead of raising.

    Returns:
        ``(good records, their (frame count, frame files) as clip_frames returns them, errors
        of the dropped clips)``; pass the second element to ``ClipDataset(index=...)``.
    """
    good: list[ClipRecord] = []
    index: list[tuple[int, list[Path]]] = []
    bad: list[DatasetError] = []
    for record in records:
        try:
            index.append(clip_frames(record))
        except DatasetError as err:
            if not skip_bad:
                raise
            bad.append(err)
            continue
        good.append(record)
    return good, index, bad


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A torch generator seeded from ``(seed, epoch, index)``, independent of worker layout."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class ClipItem(TypedDict, total=False):
    """One dataset item: ``video`` uint8 (3, T, L, L) or (V, 3, T, L, L) (or, with
    ``decode_on="device"``, ``jpeg``: T byte tensors), label, split row."""

    video: torch.Tensor
    jpeg: list[torch.Tensor]
    label: int
    index: int


def collate_clips(items: Sequence[ClipItem]) -> dict[str, Any]:
    """``default_collate``, except that ``jpeg`` (variable-length byte tensors) stays a list of
    B lists of T tensors, for :func:`~hdf_lightning.data.transforms.decode_jpeg_clips`.

    A batch mixing JPEG-bytes items and decoded items (videos under ``decode_on="device"``) is
    not supported: use frame folders, or ``decode_on="loader"``, for videos.
    """
    if items and "jpeg" in items[0]:
        if any("jpeg" not in item for item in items):
            raise ValueError("a batch mixes JPEG-bytes items and decoded clips")
        rest = default_collate([{k: v for k, v in item.items() if k != "jpeg"} for item in items])
        rest["jpeg"] = [item["jpeg"] for item in items]
        return cast(dict[str, Any], rest)
    return cast(dict[str, Any], default_collate(list(items)))


class ClipDataset(Dataset[ClipItem]):
    """Clips of a split, loaded as uint8 tensors with a frame sampler.

    Items are ``{"video": uint8 (3, T, L, L), "label": int, "index": int}`` with
    T = ``num_frames`` and L = ``load_size``; with ``views > 1`` the video is
    ``(V, 3, T, L, L)``, the views of :func:`~hdf_lightning.data.frame_sampling.multi_view_indices`
    (for evaluation, where predictions are averaged over views).

    Keys are either an index or ``(index, epoch)`` (as the DataModule's samplers yield): the
    frames are drawn with a generator seeded from ``(seed, epoch, index)``, so training samples do
    not depend on the number of workers. A plain index uses the epoch set by :meth:`set_epoch`.

    With ``skip_bad=True`` a clip that fails to load is replaced by the next loadable clip and
    counted in :attr:`skipped` (a counter shared with DataLoader worker processes); otherwise a
    :class:`~hdf_lightning.data.errors.DatasetError` naming the clip is raised.

    Args:
        records: the split's clips.
        num_frames: clip length T.
        load_size: frames are resized to ``load_size × load_size`` when loaded.
        sampler: frame sampler mode (``"segment"``, ``"m3dfel"`` or ``"dense"``).
        train: training sampling (random) or evaluation sampling.
        views: number of evaluation views (1 gives ``(3, T, L, L)``).
        seed: base seed of the per-item generators.
        skip_bad: replace unloadable clips instead of raising.
        transform: per-clip augmentation run in the loader (e.g.
            :meth:`~hdf_lightning.data.transforms.ClipAugment.augment_clip`), called as
            ``transform(clip, generator)`` on each uint8 ``(3, T, L, L)`` view with the item's
            generator (after the frame sampler has drawn from it); its output side replaces L.
        decode_on: ``"loader"`` decodes here; ``"device"`` returns the sampled frames' JPEG
            bytes (key ``jpeg``) for a batched decode on the GPU
            (:func:`~hdf_lightning.data.transforms.decode_jpeg_clips`; batch with
            :func:`collate_clips`). Frame folders only; videos are decoded here either way.
        index: ``(frame count, sorted frame files)`` of every record, as
            :func:`clip_frames` returns them (e.g. from :func:`scan_index`); listed here
            when None. Either way each clip is listed once, not per item.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        num_frames: int,
        load_size: int,
        sampler: str = "segment",
        train: bool = False,
        views: int = 1,
        seed: int = 0,
        skip_bad: bool = False,
        transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        decode_on: Literal["loader", "device"] = "loader",
        index: Sequence[tuple[int, Sequence[Path]]] | None = None,
    ) -> None:
        if decode_on not in ("loader", "device"):
            raise ValueError(f"decode_on must be 'loader' or 'device', got {decode_on!r}")
        if decode_on == "device" and (transform is not None or views != 1):
            raise ValueError(
                "decode_on='device' returns JPEG bytes: it takes no loader transform and one view"
            )
        if index is not None and len(index) != len(records):
            raise ValueError(
                f"expected one index entry per record, got {len(index)} for {len(records)}"
            )
        if num_frames < 1 or load_size < 1 or views < 1:
            raise ValueError(
                f"num_frames, load_size and views must be >= 1, got {num_frames}, {load_size}, "
                f"{views}"
            )
        if train and views != 1:
            raise ValueError(f"views > 1 is for evaluation only, got views={views} with train=True")
        self.records = list(records)
        self.num_frames = num_frames
        self.load_size = load_size
        self.sampler = sampler
        self.train = train
        self.views = views
        self.seed = seed
        self.skip_bad = skip_bad
        self.transform = transform
        self.decode_on = decode_on
        self.epoch = 0
        self._skipped = multiprocessing.Value("q", 0)
        # Frame count and sorted frame names of every clip, listed once here rather than per
        # item; names are kept joined in one string per clip (compact, and cheap to share with
        # forked workers). A clip that cannot be listed keeps None and raises when loaded.
        self._index: list[tuple[int, str] | None] = []
        for i, record in enumerate(self.records):
            if index is not None:
                n, paths = index[i]
            else:
                try:
                    n, paths = clip_frames(record)
                except DatasetError:
                    self._index.append(None)
                    continue
            self._index.append((n, "\n".join(Path(p).name for p in paths)))

    def frames_of(self, index: int) -> tuple[int, list[Path]]:
        """Frame count and sorted frame files of clip ``index`` (``[]`` for videos), from the index
        built at construction.

        Raises:
            DatasetError: the clip could not be listed (missing, empty, unreadable video).
        """
        entry = self._index[index]
        if entry is None:
            return clip_frames(self.records[index])  # raises the clip's error
        n, names = entry
        folder = self.records[index].path
        return n, [folder / name for name in names.split("\n")] if names else []

    def __len__(self) -> int:
        return len(self.records)

    @property
    def skipped(self) -> int:
        """Number of items replaced because their clip failed to load (all workers)."""
        return int(self._skipped.value)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer keys."""
        self.epoch = epoch

    def labels(self) -> list[int]:
        """Labels of all records, in order."""
        return [r.label for r in self.records]

    def __getitem__(self, key: int | tuple[int, int]) -> ClipItem:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        n = len(self.records)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a split of {n} clips")
        for offset in range(n):
            i = (index + offset) % n
            try:
                video = self.load(i, epoch)
            except DatasetError as err:
                if not self.skip_bad:
                    raise
                with self._skipped.get_lock():
                    self._skipped.value += 1
                log.warning("skipping a bad clip: %s", err)
                continue
            if isinstance(video, list):
                return {"jpeg": video, "label": self.records[i].label, "index": i}
            return {"video": video, "label": self.records[i].label, "index": i}
        raise DatasetError(f"none of the {n} clips of the split could be loaded")

    def load(self, index: int, epoch: int = 0) -> torch.Tensor | list[torch.Tensor]:
        """Load clip ``index``: uint8 (3, T, L, L), or (V, 3, T, L, L) with views, or with
        ``decode_on="device"`` the T frames' JPEG bytes (videos are still decoded here).

        Raises:
            DatasetError: the clip is missing, empty or cannot be decoded (names the clip).
        """
        record = self.records[index]
        n, paths = self.frames_of(index)
        generator = item_generator(self.seed, epoch, index)
        if self.views > 1 and self.sampler in MULTI_VIEW_MODES:
            groups = multi_view_indices(
                n, self.num_frames, views=self.views, mode=MULTI_VIEW_MODES[self.sampler]
            )
        else:  # random samplers (m3dfel) draw their views one after the other
            groups = [
                sample_indices(
                    self.sampler, n, self.num_frames, train=self.train, generator=generator
                )
                for _ in range(self.views)
            ]
        # A transform gets the decoded frame-major layout it works in; otherwise copy to planar.
        planar = self.transform is None
        try:
            if self.decode_on == "device" and record.kind == "frames":
                return read_frame_bytes([paths[i] for i in groups[0]])
            if record.kind == "frames":
                clips = [
                    load_frames([paths[i] for i in g], size=self.load_size, planar=planar)
                    for g in groups
                ]
            else:
                clips = [
                    decode_video(record.path, g, size=self.load_size, planar=planar) for g in groups
                ]
        except (ValueError, OSError) as err:
            raise CorruptClipError(f"{_describe(record)}: {err}") from err
        if self.transform is not None:
            clips = [self.transform(clip, generator) for clip in clips]
        # views: V x (3, T, L, L) -> (V, 3, T, L, L)
        return clips[0] if self.views == 1 else torch.stack(clips)


__all__ = [
    "ClipDataset",
    "ClipItem",
    "ClipRecord",
    "clip_frames",
    "clip_num_frames",
    "collate_clips",
    "item_generator",
    "scan_index",
]
