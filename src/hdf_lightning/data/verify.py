"""Dataset verification: clips per split and class, frames per clip, missing and unreadable items.

``verify_datamodule(dm, decode=True)`` checks every split a DataModule reads (train, val, test,
under its protocol); :func:`verify_records` does the same for any lists of
:class:`~hdf_lightning.data.datasets.ClipRecord`. :func:`format_report` renders the result as text
tables.
"""

from __future__ import annotations

import io
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from hdf_lightning.data.datasets import ClipRecord, clip_length
from hdf_lightning.data.errors import (
    CorruptClipError,
    DatasetError,
    MissingClipError,
    SplitFileError,
)
from hdf_lightning.data.video import load_frames

log = logging.getLogger(__name__)

_DECODE_SIZE = 16  # frames are decoded (and resized to a tiny square) only to prove they decode
_DECODE_CHUNK = 64  # frames decoded at a time, to bound memory on long clips
_SPLITS = ("train", "test", "val")  # val last: under the paper protocol it is the test split
_COLUMNS = (
    "split",
    "clips",
    "frames min",
    "median",
    "max",
    "short",
    "missing",
    "unreadable",
    "damaged",
    "bad rows",
)


@dataclass
class SplitReport:
    """Counts and problems of one split.

    Attributes:
        num_clips: usable rows of the split file (clips that exist).
        class_counts: clips per class (length K).
        frames_min, frames_median, frames_max: frames per readable clip (0 when none).
        num_short: readable clips with fewer frames than the clip length.
        missing: clips (rows) that point at nothing, or a missing dataset / split file.
        unreadable: empty clips and clips with a frame or video that does not decode.
        damaged: videos that decode to fewer frames than their container declares (truncated or
            damaged files), with both lengths; the loader uses the frames that decode.
        bad_rows: split-file rows that cannot be parsed (column count, label, class name).
        same_as: name of an earlier split with exactly the same clips (paper protocol: val).
    """

    num_clips: int = 0
    class_counts: list[int] = field(default_factory=list)
    frames_min: int = 0
    frames_median: float = 0.0
    frames_max: int = 0
    num_short: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    bad_rows: list[str] = field(default_factory=list)
    same_as: str | None = None

    @property
    def problems(self) -> list[str]:
        """All problem messages of the split."""
        return [*self.missing, *self.unreadable, *self.damaged, *self.bad_rows]


@dataclass
class VerifyReport:
    """Result of a verification: one :class:`SplitReport` per split.

    Attributes:
        class_names: class names, index = label.
        clip_len: clip length T the short-clip count refers to.
        decoded: whether every frame / video was decoded.
        splits: split name -> report.
    """

    class_names: list[str]
    clip_len: int
    decoded: bool
    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no split has a missing, unreadable, damaged or malformed item."""
        return not any(s.problems for s in self.splits.values())


def _classify(report: SplitReport, err: DatasetError) -> None:
    if isinstance(err, SplitFileError):
        report.bad_rows.append(str(err))
    elif isinstance(err, MissingClipError | FileNotFoundError):
        report.missing.append(str(err))
    else:
        report.unreadable.append(str(err))


def _decode_all(record: ClipRecord, paths: Sequence[Any]) -> None:
    """Decode every frame of a frame folder (a video's frames were decoded to count them).

    Raises:
        DatasetError: a frame does not decode (names the clip and file at fault).
    """
    try:
        for start in range(0, len(paths), _DECODE_CHUNK):
            load_frames(paths[start : start + _DECODE_CHUNK], size=_DECODE_SIZE)
    except (ValueError, OSError) as err:
        raise _unreadable(record, err) from err


def _unreadable(record: ClipRecord, err: Exception) -> DatasetError:
    origin = f" (from {record.source})" if record.source else ""
    return CorruptClipError(f"clip {record.clip_id} at {record.path}{origin}: {err}")


def verify_split(
    records: Sequence[ClipRecord],
    *,
    num_classes: int,
    clip_len: int,
    decode: bool,
    row_errors: Sequence[DatasetError] = (),
) -> SplitReport:
    """Check the clips of one split.

    Args:
        records: the split's clips (as returned by a reader).
        num_classes: K, the length of ``class_counts``.
        clip_len: clips with fewer frames count as short.
        decode: decode every frame of frame folders (slow) rather than only counting them
            (videos are always decoded: their frame count is the frames that decode).
        row_errors: errors the reader collected for rows it skipped.
    """
    report = SplitReport(class_counts=[0] * num_classes)
    for err in row_errors:
        _classify(report, err)
    frame_counts: list[int] = []
    for record in records:
        report.num_clips += 1
        report.class_counts[record.label] += 1
        try:
            n, paths, length = clip_length(record)
            if decode and record.kind == "frames":
                _decode_all(record, paths)
        except DatasetError as err:
            _classify(report, err)
            continue
        if length is not None and length.damaged:
            origin = f" (from {record.source})" if record.source else ""
            report.damaged.append(f"clip {record.clip_id}{origin}: {length.describe()}")
        frame_counts.append(n)
    if frame_counts:
        report.frames_min = min(frame_counts)
        report.frames_median = float(statistics.median(frame_counts))
        report.frames_max = max(frame_counts)
        report.num_short = sum(n < clip_len for n in frame_counts)
    return report


def verify_records(
    splits: Mapping[str, Sequence[ClipRecord]],
    *,
    class_names: Sequence[str],
    clip_len: int,
    decode: bool,
    row_errors: Mapping[str, Sequence[DatasetError]] | None = None,
) -> VerifyReport:
    """Check several splits of clips (e.g. ``{"train": [...], "test": [...]}``).

    Args:
        splits: split name -> clips.
        class_names: class names, index = label.
        clip_len: clip length T (clips with fewer frames are counted as short).
        decode: decode every frame / video rather than only counting frames.
        row_errors: split name -> errors of rows the reader skipped.
    """
    report = VerifyReport(list(class_names), clip_len, decode)
    seen: list[tuple[str, Sequence[ClipRecord]]] = []
    for name, records in splits.items():
        errors = (row_errors or {}).get(name, ())
        twin = next((n for n, r in seen if list(r) == list(records) and not errors), None)
        if twin is not None:
            report.splits[name] = replace(report.splits[twin], same_as=twin)
            continue
        report.splits[name] = verify_split(
            records,
            num_classes=len(class_names),
            clip_len=clip_len,
            decode=decode,
            row_errors=errors,
        )
        seen.append((name, records))
    return report


def verify_datamodule(
    datamodule: Any, *, decode: bool = True, splits: Sequence[str] = _SPLITS
) -> VerifyReport:
    """Check every split a :class:`~hdf_lightning.data.datamodules.ClipDataModule` reads.

    Unusable rows are reported rather than raised; a missing dataset or split file is reported
    as a missing item of the split.

    Args:
        datamodule: a ClipDataModule (anything with ``split_records(split, errors)``,
            ``class_names`` and ``num_frames``).
        decode: decode every frame / video rather than only counting frames.
        splits: splits to check (``"val"`` is the test split under the paper protocol).
    """
    records: dict[str, list[ClipRecord]] = {}
    row_errors: dict[str, list[DatasetError]] = {}
    for split in splits:
        errors: list[DatasetError] = []
        try:
            records[split] = datamodule.split_records(split, errors)
        except DatasetError as err:
            records[split] = []
            errors.append(err)
        row_errors[split] = errors
    return verify_records(
        records,
        class_names=datamodule.class_names,
        clip_len=datamodule.num_frames,
        decode=decode,
        row_errors=row_errors,
    )


def format_report(report: VerifyReport, *, max_problems: int = 20) -> str:
    """Render a report as text: a table of splits, a table of class counts and the problems.

    Args:
        report: the report.
        max_problems: problems listed per split (the rest are counted).
    """
    summary = Table(title=f"clips (clip length {report.clip_len}, decoded: {report.decoded})")
    for column in _COLUMNS:
        summary.add_column(column, justify="left" if column == "split" else "right")
    for name, s in report.splits.items():
        values = (s.num_clips, s.frames_min, f"{s.frames_median:g}", s.frames_max, s.num_short)
        problems = (len(s.missing), len(s.unreadable), len(s.damaged), len(s.bad_rows))
        label = name if s.same_as is None else f"{name} (= {s.same_as})"
        summary.add_row(label, *(str(v) for v in (*values, *problems)))
    classes = Table(title="clips per class")
    classes.add_column("class")
    for name in report.splits:
        classes.add_column(name, justify="right")
    for k, class_name in enumerate(report.class_names):
        classes.add_row(
            f"{k} {class_name}", *(str(s.class_counts[k]) for s in report.splits.values())
        )
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None, force_terminal=False)
    console.print(summary)
    console.print(classes)
    for name, s in report.splits.items():
        if s.same_as is not None or not s.problems:
            continue
        console.print(f"{name}: {len(s.problems)} problem(s)", soft_wrap=True)
        for problem in s.problems[:max_problems]:
            console.print(f"  - {problem}", soft_wrap=True, markup=False, highlight=False)
        if len(s.problems) > max_problems:
            console.print(f"  ... and {len(s.problems) - max_problems} more", soft_wrap=True)
    console.print("OK" if report.ok else "NOT OK: the dataset has problems (listed above)")
    return buffer.getvalue()
