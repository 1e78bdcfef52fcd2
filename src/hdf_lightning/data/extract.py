"""Decode videos into DFEW-style frame folders (``<out_root>/<id>/00001.jpg ...``) with PyAV.

Frames are written to ``<id>.partial/`` and the folder is renamed to ``<id>/`` only when the video
has been decoded completely, so an existing ``<id>/`` with frames is always complete and a rerun
skips it (idempotent). Faces are not detected or cropped: ``size`` only resizes the whole frame.

The face crops of ``hdf data extract --faces`` (:mod:`hdf_lightning.inference.face_extract`) use
the same layout, folder names, staging folder, damaged-video check and totals (:func:`clip_name`,
:func:`list_videos`, :func:`staged_folder`, :func:`damaged_video_error`,
:func:`extraction_totals`).

The frames written are the frames that decode (:func:`~hdf_lightning.data.video.iter_video_frames`,
the loop every reader of the package uses). A video that decodes to fewer frames than its container
declares (truncated or damaged, see :class:`~hdf_lightning.data.video.VideoLength`) is refused
with both lengths, unless ``keep_damaged`` asks for the frames that decode; those are then listed
as damaged in the result.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
from PIL import Image

from hdf_lightning.data.errors import CorruptClipError, DatasetNotFoundError, EmptyClipError
from hdf_lightning.data.video import (
    VideoLength,
    declared_frames,
    frame_rate,
    is_video,
    iter_video_frames,
)

log = logging.getLogger(__name__)

FRAME_PATTERN = "{:05d}.jpg"
"""File name of frame i (1-based), as in DFEW's ``clip_224x224`` folders."""


class DamagedVideoError(CorruptClipError):
    """A video decodes to fewer frames than its container declares (truncated or damaged).

    Attributes:
        length: the declared and decoded length.
    """

    def __init__(self, message: str, length: VideoLength) -> None:
        super().__init__(message)
        self.length = length


def extraction_totals(videos: int) -> dict[str, Any]:
    """The totals of an extraction over ``videos`` videos before any is done, as ``hdf data
    extract`` prints them: ``videos``, ``extracted``, ``skipped`` (complete before), ``frames``
    (written), ``failed`` ``{video: reason}`` and ``damaged`` ``{video: lengths}``."""
    return {
        "videos": videos,
        "extracted": 0,
        "skipped": 0,
        "frames": 0,
        "failed": {},
        "damaged": {},
    }


def _is_complete(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.jpg"))


def damaged_video_error(length: VideoLength) -> DamagedVideoError:
    """The error refusing a damaged or truncated video, with both lengths."""
    return DamagedVideoError(
        f"{length.describe()}; not extracted (--keep_damaged true writes the frames that decode)",
        length,
    )


def clip_name(video: Path, pad_ids: bool = True, root: Path | None = None) -> str:
    """The frame folder name of a video: its stem, numeric stems padded to 5 digits (DFEW ids)
    when ``pad_ids``; with ``root``, under the video's folders relative to ``root``
    (``Actor_01/02-01-06-01-02-01-01``), so a corpus keeps its layout."""
    stem = video.stem
    name = stem.zfill(5) if pad_ids and stem.isdigit() else stem
    if root is None:
        return name
    return (video.parent.relative_to(root) / name).as_posix()


def list_videos(videos_dir: Path, recursive: bool = False) -> list[Path]:
    """The video files of a folder (with ``recursive``, of its sub-folders too, hidden ones
    left out), sorted.

    Raises:
        DatasetNotFoundError: the folder does not exist.
    """
    if not videos_dir.is_dir():
        raise DatasetNotFoundError(
            f"video folder not found: {videos_dir}. Expected a folder of video files "
            "(e.g. <DFEW root>/Clip/original/00001.mp4)."
        )
    if not recursive:
        return sorted(p for p in videos_dir.iterdir() if p.is_file() and is_video(p))
    return sorted(
        p
        for p in videos_dir.rglob("*")
        if p.is_file()
        and is_video(p)
        and not any(part.startswith(".") for part in p.relative_to(videos_dir).parts)
    )


@contextlib.contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Yield ``<out_dir>.partial/`` (emptied) to write a clip into; renamed to ``out_dir`` when the
    block ends without error, removed when it raises (so ``out_dir`` is complete or absent)."""
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if out_dir.exists():  # an empty leftover folder, or a clip made again
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def extract_frames(
    video: str | Path,
    out_dir: str | Path,
    *,
    size: int | None = None,
    quality: int = 95,
    keep_damaged: bool = False,
) -> int:
    """Decode every frame of ``video`` into ``out_dir/00001.jpg, 00002.jpg, ...``.

    Args:
        video: a video file PyAV can decode.
        out_dir: the frame folder to create; if it already holds frames nothing is decoded.
        size: resize frames to ``size × size`` (``None`` keeps the native size).
        quality: JPEG quality (1..95).
        keep_damaged: write the frames that decode of a damaged or truncated video (raises
            :class:`DamagedVideoError` otherwise, writing nothing).

    Returns:
        Number of frames in ``out_dir``.

    Raises:
        CorruptClipError: the video cannot be opened or decoded (names the video).
        DamagedVideoError: fewer frames decode than the container declares (names the video and
            both lengths), and ``keep_damaged`` is False.
        EmptyClipError: the video has no frame.
    """
    video, out_dir = Path(video), Path(out_dir)
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1 or None, got {size}")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be in 1..95, got {quality}")
    if _is_complete(out_dir):
        return len(list(out_dir.glob("*.jpg")))
    return _decode_to_folder(video, out_dir, size, quality, keep_damaged).decoded


def _decode_to_folder(
    video: Path, out_dir: Path, size: int | None, quality: int, keep_damaged: bool
) -> VideoLength:
    """:func:`extract_frames` without the complete-folder check; returns the video's length."""
    count = 0
    with staged_folder(out_dir) as partial:
        try:
            with av.open(str(video)) as container:
                if not container.streams.video:
                    raise CorruptClipError(f"{video}: no video stream, expected one")
                stream = container.streams.video[0]
                declared, fps = declared_frames(container, stream), frame_rate(stream)
                for count, frame in enumerate(iter_video_frames(container, video), start=1):
                    image = frame.to_image()
                    if size is not None:
                        image = image.resize((size, size), Image.Resampling.BILINEAR)
                    image.save(partial / FRAME_PATTERN.format(count), quality=quality)
        except CorruptClipError:
            raise
        except (av.error.FFmpegError, OSError) as err:  # PyAV's errors are ValueErrors too
            raise CorruptClipError(f"{video}: cannot decode: {type(err).__name__}: {err}") from err
        except ValueError as err:  # no frame decodes
            raise EmptyClipError(f"{video}: no decodable frame, expected at least one") from err
        length = VideoLength(video, count, declared, fps)
        if length.damaged and not keep_damaged:
            raise damaged_video_error(length)
    return length


def extract_tree(
    videos_dir: str | Path,
    out_root: str | Path,
    *,
    size: int | None = None,
    quality: int = 95,
    pad_ids: bool = True,
    keep_damaged: bool = False,
) -> dict[str, Any]:
    """Extract every video of ``videos_dir`` into ``out_root/<id>/`` (DFEW frame-folder layout).

    Complete folders are skipped; a video that fails is logged and reported, and the others go on.

    Args:
        videos_dir: folder of video files (not recursive).
        out_root: root of the frame folders (e.g. ``<DFEW root>/Clip/clip_224x224``).
        size: resize frames to ``size × size`` (``None`` keeps the native size).
        quality: JPEG quality.
        pad_ids: name folders of numeric video names with 5 digits (``1.mp4`` -> ``00001/``).
        keep_damaged: extract the frames that decode of damaged or truncated videos (they are
            failed otherwise); either way they are named with both lengths.

    Returns:
        ``{"videos": n, "extracted": n, "skipped": n, "frames": frames written,
        "failed": {video path: reason}, "damaged": {video path: {"decoded_frames",
        "declared_frames", "damaged"}}}``; a damaged video is in ``failed`` too unless
        ``keep_damaged``.

    Raises:
        DatasetNotFoundError: ``videos_dir`` does not exist.
    """
    videos_dir, out_root = Path(videos_dir), Path(out_root)
    videos = list_videos(videos_dir)
    result = extraction_totals(len(videos))
    for video in videos:
        out_dir = out_root / clip_name(video, pad_ids)
        if _is_complete(out_dir):
            result["skipped"] += 1
            continue
        try:
            length = _decode_to_folder(video, out_dir, size, quality, keep_damaged)
        except (CorruptClipError, EmptyClipError) as err:
            log.warning("extraction failed: %s", err)
            result["failed"][str(video)] = str(err)
            if isinstance(err, DamagedVideoError):
                result["damaged"][str(video)] = err.length.to_dict()
            continue
        if length.damaged:
            log.warning("extracted the frames that decode: %s", length.describe())
            result["damaged"][str(video)] = length.to_dict()
        result["frames"] += length.decoded
        result["extracted"] += 1
    log.info(
        "extracted %d of %d videos (%d skipped, %d failed) into %s",
        result["extracted"],
        result["videos"],
        result["skipped"],
        len(result["failed"]),
        out_root,
    )
    return result
