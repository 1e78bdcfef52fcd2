"""Split readers for DFEW, FERV39k and ``path,label`` CSVs, and the clip dataset.

The readers are pure functions of the files on disk: they return one :class:`ClipRecord` per split
row, with labels in DFEW order (:data:`~hdf_lightning.data.classes.CLASS_NAMES`). A row that cannot
be used raises a :class:`~hdf_lightning.data.errors.DatasetError` naming the split file and line,
or, when an ``errors`` list is passed, is recorded there and skipped.

Layouts read (``<root>`` is the folder given to the reader)::

    DFEW     <root>/Clip/clip_224x224/<5-digit id>/*.jpg          variant "clip_224x224"
             <root>/Clip/clip_224x224_16f/<5-digit id>/*.jpg      variant "clip_224x224_16f"
             <root>/Clip/original/<id>.<mp4|avi|...>              variant "video"
             <root>/EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv
    FERV39k  <root>/2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>/*.jpg
             <root>/4_setups/All_scenes/{train,test}_All.csv      (no header, space separated)
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from hdf_lightning.data.classes import FERV39K_CLASS_MAP, class_index
from hdf_lightning.data.errors import (
    CorruptClipError,
    DatasetError,
    DatasetNotFoundError,
    EmptyClipError,
    MissingClipError,
    SplitFileError,
)
from hdf_lightning.data.sampling import multi_view_indices, sample_indices
from hdf_lightning.data.video import (
    VIDEO_EXTENSIONS,
    VideoLength,
    decode_video,
    is_video,
    list_frames,
    load_frames,
    probe_video,
    read_frame_bytes,
)

log = logging.getLogger(__name__)

ClipKind = Literal["frames", "video"]
Split = Literal["train", "test"]

MULTI_VIEW_MODES: dict[str, Literal["segment", "dense"]] = {"segment": "segment", "dense": "dense"}
"""Sampler modes with deterministic evaluation views (:func:`multi_view_indices`)."""

DFEW_URL = "https://dfew-dataset.github.io"
FERV39K_URL = "https://github.com/wangyanckxx/FERV39k"

DFEW_VARIANTS: dict[str, tuple[str, ClipKind]] = {
    "clip_224x224": ("Clip/clip_224x224", "frames"),
    "clip_224x224_16f": ("Clip/clip_224x224_16f", "frames"),
    "video": ("Clip/original", "video"),
}
"""DFEW variant name -> (clip folder relative to the root, kind of clip stored there)."""

DFEW_LAYOUT = (
    "<root>/Clip/clip_224x224/<5-digit id>/00001.jpg ... (or Clip/clip_224x224_16f/<id>/, "
    "or Clip/original/<id>.mp4|.avi for variant 'video'); "
    "<root>/EmoLabel_DataSplit/train(single-labeled)/set_{1..5}.csv and "
    "test(single-labeled)/set_{1..5}.csv, header 'video_name,label', labels 1..7"
)
FERV39K_LAYOUT = (
    "<root>/2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>/*.jpg; "
    "<root>/4_setups/All_scenes/train_All.csv and test_All.csv, no header, "
    "space separated rows such as 'Action/Sad/0010 Sad'"
)
CSV_LAYOUT = (
    "a CSV file of 'path,label' rows (optional header 'path,label'); path is a frame folder or a "
    "video file, relative to the CSV's folder or absolute; label is a class name or a 0-based index"
)


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


def _not_found(what: str, path: Path, layout: str, origin: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{what} not found: {path}. Expected layout: {layout}. {origin}")


def _record_or_raise(err: DatasetError, errors: list[DatasetError] | None) -> None:
    if errors is None:
        raise err
    errors.append(err)


def _read_rows(path: Path, delimiter: str | None) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for every non-blank line of a split file."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if delimiter is None:
                yield number, line.split()
            else:
                fields = next(csv.reader([line], delimiter=delimiter))
                yield number, [field.strip() for field in fields]


DFEW_FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5)
"""The folds of DFEW's 5-fold protocol."""


def check_dfew_fold(fold: int) -> int:
    """Return ``fold`` if it is a DFEW fold (1..5), else raise a ``ValueError`` that says so."""
    if fold not in DFEW_FOLDS:
        raise ValueError(f"DFEW fold must be one of 1..5, got {fold}")
    return fold


def read_dfew_split(
    root: str | Path,
    fold: int,
    split: Split,
    variant: str = "clip_224x224",
    *,
    errors: list[DatasetError] | None = None,
) -> list[ClipRecord]:
    """Read one DFEW fold's train or test split.

    Args:
        root: DFEW root (holds ``Clip/`` and ``EmoLabel_DataSplit/``).
        fold: 1..5.
        split: ``"train"`` or ``"test"``.
        variant: ``"clip_224x224"``, ``"clip_224x224_16f"`` (frame folders) or ``"video"``
            (original videos ``Clip/original/<id>.<ext>``, any extension of ``VIDEO_EXTENSIONS``).
        errors: when given, unusable rows are appended here and skipped instead of raised.

    Returns:
        One record per row, in file order; ids padded to 5 digits, labels 1..7 mapped to 0..6.

    Raises:
        DatasetNotFoundError: missing root, clip folder or split file.
        SplitFileError: malformed row or label outside 1..7 (names file and line).
        MissingClipError: a row whose clip does not exist (names file, line and path).
    """
    check_dfew_fold(fold)
    if split not in ("train", "test"):
        raise ValueError(f"DFEW split must be 'train' or 'test', got {split!r}")
    if variant not in DFEW_VARIANTS:
        raise ValueError(f"DFEW variant must be one of {sorted(DFEW_VARIANTS)}, got {variant!r}")
    root = Path(root)
    origin = f"DFEW is distributed by its authors on request: {DFEW_URL}"
    clip_dir_name, kind = DFEW_VARIANTS[variant]
    clip_dir = root / clip_dir_name
    split_file = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
    for what, path in (("DFEW root", root), ("DFEW clip folder", clip_dir)):
        if not path.is_dir():
            raise _not_found(what, path, DFEW_LAYOUT, origin)
    if not split_file.is_file():
        raise _not_found("DFEW split file", split_file, DFEW_LAYOUT, origin)

    videos: dict[str, Path] = {}
    if kind == "video":
        for file in clip_dir.iterdir():
            if is_video(file):
                videos[file.stem.zfill(5) if file.stem.isdigit() else file.stem] = file

    records: list[ClipRecord] = []
    for number, fields in _read_rows(split_file, ","):
        where = f"{split_file}:{number}"
        if number == 1 and fields and fields[0] == "video_name":
            continue
        if len(fields) != 2:
            _record_or_raise(
                SplitFileError(f"{where}: expected 2 columns 'video_name,label', got {fields}"),
                errors,
            )
            continue
        raw_id, raw_label = fields
        if not raw_label.isdigit() or not 1 <= int(raw_label) <= 7:
            _record_or_raise(
                SplitFileError(f"{where}: label {raw_label!r} of clip {raw_id!r} is not in 1..7"),
                errors,
            )
            continue
        clip_id = raw_id.zfill(5) if raw_id.isdigit() else raw_id
        found = videos.get(clip_id) if kind == "video" else clip_dir / clip_id
        if found is None or not found.exists():
            expected = (
                f"{clip_dir}/{clip_id}.<{'|'.join(sorted(VIDEO_EXTENSIONS))}>"
                if kind == "video"
                else str(clip_dir / clip_id)
            )
            _record_or_raise(
                MissingClipError(f"{where}: clip {clip_id} not found, expected {expected}"),
                errors,
            )
            continue
        records.append(ClipRecord(found, int(raw_label) - 1, clip_id, kind, where))
    return records


def read_ferv39k_split(
    root: str | Path, split: Split, *, errors: list[DatasetError] | None = None
) -> list[ClipRecord]:
    """Read FERV39k's train or test split (``4_setups/All_scenes/{split}_All.csv``).

    The split files have no header: the first line is a clip and is kept. Each row is
    ``<Scene>/<Emotion>/<clip> <Emotion>``; the emotion name is mapped to DFEW order.

    Args:
        root: FERV39k root (holds ``2_ClipsforFaceCrop/`` and ``4_setups/``).
        split: ``"train"`` or ``"test"``.
        errors: when given, unusable rows are appended here and skipped instead of raised.

    Returns:
        One frame-folder record per row, in file order.

    Raises:
        DatasetNotFoundError: missing root, frame folder or split file.
        SplitFileError: wrong column count or unknown emotion name (names file and line).
        MissingClipError: a row whose frame folder does not exist.
    """
    if split not in ("train", "test"):
        raise ValueError(f"FERV39k split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    origin = f"FERV39k is distributed by its authors on request: {FERV39K_URL}"
    clip_dir = root / "2_ClipsforFaceCrop"
    split_file = root / "4_setups" / "All_scenes" / f"{split}_All.csv"
    for what, path in (("FERV39k root", root), ("FERV39k frame folder", clip_dir)):
        if not path.is_dir():
            raise _not_found(what, path, FERV39K_LAYOUT, origin)
    if not split_file.is_file():
        raise _not_found("FERV39k split file", split_file, FERV39K_LAYOUT, origin)

    records: list[ClipRecord] = []
    for number, fields in _read_rows(split_file, None):
        where = f"{split_file}:{number}"
        if len(fields) != 2:
            _record_or_raise(
                SplitFileError(
                    f"{where}: expected 2 space-separated columns '<Scene>/<Emotion>/<clip> "
                    f"<Emotion>', got {fields}"
                ),
                errors,
            )
            continue
        clip_id, name = fields
        label = FERV39K_CLASS_MAP.get(name.lower())
        if label is None:
            _record_or_raise(
                SplitFileError(
                    f"{where}: unknown emotion {name!r} for clip {clip_id!r}, expected one of "
                    f"{sorted(n.capitalize() for n in FERV39K_CLASS_MAP)}"
                ),
                errors,
            )
            continue
        path = clip_dir / clip_id
        if not path.is_dir():
            _record_or_raise(
                MissingClipError(f"{where}: clip {clip_id} not found, expected folder {path}"),
                errors,
            )
            continue
        records.append(ClipRecord(path, label, clip_id, "frames", where))
    return records


def read_csv_split(
    csv_path: str | Path,
    classes: Sequence[str],
    base_dir: str | Path | None = None,
    *,
    errors: list[DatasetError] | None = None,
) -> list[ClipRecord]:
    """Read a ``path,label`` CSV of frame folders and/or video files.

    Args:
        csv_path: the CSV; a first row ``path,label`` is a header, any other first row is a clip.
        classes: class names; a label is a name in ``classes`` (case-insensitive) or a 0-based
            index into it.
        base_dir: folder that relative paths start from (default: the CSV's folder).
        errors: when given, unusable rows are appended here and skipped instead of raised.

    Returns:
        One record per row, in file order; ``kind`` is ``"video"`` for files with a video
        extension and ``"frames"`` for folders.

    Raises:
        DatasetNotFoundError: the CSV does not exist.
        SplitFileError: wrong column count, unknown class name or index out of range.
        MissingClipError: a path that does not exist, or a file that is not a video.
    """
    csv_path = Path(csv_path)
    if not classes:
        raise ValueError("classes must name at least one class")
    if not csv_path.is_file():
        raise _not_found("CSV split file", csv_path, CSV_LAYOUT, "Write it with one row per clip.")
    base = Path(base_dir) if base_dir is not None else csv_path.parent
    records: list[ClipRecord] = []
    for number, fields in _read_rows(csv_path, ","):
        where = f"{csv_path}:{number}"
        if number == 1 and [f.lower() for f in fields] == ["path", "label"]:
            continue
        if len(fields) != 2:
            _record_or_raise(
                SplitFileError(f"{where}: expected 2 columns 'path,label', got {fields}"), errors
            )
            continue
        raw_path, raw_label = fields
        label = int(raw_label) if raw_label.isdigit() else class_index(raw_label, classes)
        if label is None or not 0 <= label < len(classes):
            _record_or_raise(
                SplitFileError(
                    f"{where}: label {raw_label!r} of {raw_path!r} is neither a class of "
                    f"{list(classes)} nor an index in 0..{len(classes) - 1}"
                ),
                errors,
            )
            continue
        path = Path(raw_path) if Path(raw_path).is_absolute() else base / raw_path
        if path.is_dir():
            kind: ClipKind = "frames"
        elif path.is_file() and is_video(path):
            kind = "video"
        else:
            found = "a file that is not a video" if path.exists() else "nothing"
            _record_or_raise(
                MissingClipError(
                    f"{where}: {path} is {found}; expected a frame folder or a video file "
                    f"({', '.join(sorted(VIDEO_EXTENSIONS))})"
                ),
                errors,
            )
            continue
        records.append(ClipRecord(path, label, raw_path, kind, where))
    return records


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
    ``(V, 3, T, L, L)``, the views of :func:`~hdf_lightning.data.sampling.multi_view_indices`
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
    "read_csv_split",
    "read_dfew_split",
    "read_ferv39k_split",
    "scan_index",
]
