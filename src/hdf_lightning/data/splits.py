"""How each dataset's splits are read: one small reader per dataset.

A reader turns a dataset's files into :class:`~hdf_lightning.data.datasets.ClipRecord` lists;
:class:`~hdf_lightning.data.datamodules.ClipDataModule` does everything else (protocols, sampling,
augmentation, loaders). Supporting a new dataset means writing a reader, not a DataModule.

The read functions (:func:`read_dfew_split`, :func:`read_ferv39k_split`, :func:`read_csv_split`)
are pure functions of the files on disk: they return one ``ClipRecord`` per split row, with labels
in DFEW order (:data:`~hdf_lightning.data.classes.CLASS_NAMES`). A row that cannot be used raises a
:class:`~hdf_lightning.data.errors.DatasetError` naming the split file and line, or, when an
``errors`` list is passed, is recorded there and skipped.

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from hdf_lightning.data.classes import CLASS_NAMES, FERV39K_CLASS_MAP, class_index
from hdf_lightning.data.datasets import ClipKind, ClipRecord
from hdf_lightning.data.errors import (
    DatasetError,
    DatasetNotFoundError,
    MissingClipError,
    SplitFileError,
)
from hdf_lightning.data.video import VIDEO_EXTENSIONS, is_video

FileSplit = Literal["train", "test"]
"""A split that a dataset's own split files define (DFEW's and FERV39k's train and test files)."""
Split = Literal["train", "val", "test"]
"""A split a :class:`SplitReader` is asked for (``"val"`` only where the dataset has one)."""

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
    split: FileSplit,
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
    clip_dir, kind, split_file = _dfew_files(Path(root), fold, split, variant)
    videos = _dfew_videos(clip_dir) if kind == "video" else {}
    records: list[ClipRecord] = []
    for number, fields in _read_rows(split_file, ","):
        if number == 1 and fields and fields[0] == "video_name":
            continue
        try:
            records.append(_dfew_record(f"{split_file}:{number}", fields, clip_dir, kind, videos))
        except DatasetError as err:
            _record_or_raise(err, errors)
    return records


def _dfew_files(root: Path, fold: int, split: str, variant: str) -> tuple[Path, ClipKind, Path]:
    """Check the arguments and that the DFEW files exist: (clip folder, kind of clip, split file).

    Raises:
        ValueError: fold, split or variant out of range.
        DatasetNotFoundError: missing root, clip folder or split file.
    """
    check_dfew_fold(fold)
    if split not in ("train", "test"):
        raise ValueError(f"DFEW split must be 'train' or 'test', got {split!r}")
    if variant not in DFEW_VARIANTS:
        raise ValueError(f"DFEW variant must be one of {sorted(DFEW_VARIANTS)}, got {variant!r}")
    origin = f"DFEW is distributed by its authors on request: {DFEW_URL}"
    clip_dir_name, kind = DFEW_VARIANTS[variant]
    clip_dir = root / clip_dir_name
    split_file = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
    for what, path in (("DFEW root", root), ("DFEW clip folder", clip_dir)):
        if not path.is_dir():
            raise _not_found(what, path, DFEW_LAYOUT, origin)
    if not split_file.is_file():
        raise _not_found("DFEW split file", split_file, DFEW_LAYOUT, origin)
    return clip_dir, kind, split_file


def _dfew_videos(clip_dir: Path) -> dict[str, Path]:
    """The videos of ``Clip/original`` by clip id (numeric stems padded to 5 digits)."""
    videos: dict[str, Path] = {}
    for file in clip_dir.iterdir():
        if is_video(file):
            videos[file.stem.zfill(5) if file.stem.isdigit() else file.stem] = file
    return videos


def _dfew_record(
    where: str, fields: list[str], clip_dir: Path, kind: ClipKind, videos: dict[str, Path]
) -> ClipRecord:
    """The record of one ``video_name,label`` row read at ``where`` (``<file>:<line>``).

    Raises:
        SplitFileError: malformed row or label outside 1..7.
        MissingClipError: the row's clip does not exist.
    """
    if len(fields) != 2:
        raise SplitFileError(f"{where}: expected 2 columns 'video_name,label', got {fields}")
    raw_id, raw_label = fields
    if not raw_label.isdigit() or not 1 <= int(raw_label) <= 7:
        raise SplitFileError(f"{where}: label {raw_label!r} of clip {raw_id!r} is not in 1..7")
    clip_id = raw_id.zfill(5) if raw_id.isdigit() else raw_id
    found = videos.get(clip_id) if kind == "video" else clip_dir / clip_id
    if found is None or not found.exists():
        expected = (
            f"{clip_dir}/{clip_id}.<{'|'.join(sorted(VIDEO_EXTENSIONS))}>"
            if kind == "video"
            else str(clip_dir / clip_id)
        )
        raise MissingClipError(f"{where}: clip {clip_id} not found, expected {expected}")
    return ClipRecord(found, int(raw_label) - 1, clip_id, kind, where)


def read_ferv39k_split(
    root: str | Path, split: FileSplit, *, errors: list[DatasetError] | None = None
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


DFEWVariant = Literal["clip_224x224", "clip_224x224_16f", "video"]


class SplitReader(Protocol):
    """Reads the splits of one dataset.

    Attributes:
        class_names: class names, index = label.
        has_val_split: the dataset has a validation split of its own; otherwise the
            DataModule's ``protocol`` derives one.
    """

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def has_val_split(self) -> bool: ...

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        """Records of ``split``. With ``errors`` given, unusable rows are appended there and
        skipped instead of raised."""
        ...


def _no_val(reader: object) -> ValueError:
    return ValueError(f"{type(reader).__name__} has no validation split of its own")


@dataclass(frozen=True)
class DFEWSplits:
    """DFEW's fold ``fold`` (1..5), see :func:`read_dfew_split`."""

    root: Path
    fold: int = 1
    variant: DFEWVariant = "clip_224x224"
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)
    has_val_split: bool = False

    def __post_init__(self) -> None:
        check_dfew_fold(self.fold)

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        if split == "val":
            raise _no_val(self)
        return read_dfew_split(self.root, self.fold, split, self.variant, errors=errors)


@dataclass(frozen=True)
class FERV39kSplits:
    """FERV39k's train/test split, see :func:`read_ferv39k_split`."""

    root: Path
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)
    has_val_split: bool = False

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        if split == "val":
            raise _no_val(self)
        return read_ferv39k_split(self.root, split, errors=errors)


@dataclass(frozen=True)
class CSVSplits:
    """``path,label`` CSV files, see :func:`read_csv_split`.

    ``csvs`` maps ``"train"``, ``"test"`` and optionally ``"val"`` to their files.
    """

    csvs: dict[str, Path]
    class_names: tuple[str, ...]
    base_dir: Path | None = None

    @property
    def has_val_split(self) -> bool:
        return "val" in self.csvs

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        path = self.csvs.get(split)
        if path is None:
            raise _no_val(self)
        return read_csv_split(path, list(self.class_names), self.base_dir, errors=errors)
