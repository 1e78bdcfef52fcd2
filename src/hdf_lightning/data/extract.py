"""Decode videos into DFEW-style frame folders (``<out_root>/<id>/00001.jpg ...``) with PyAV.

Frames are written to ``<id>.partial/`` and the folder is renamed to ``<id>/`` only when the video
has been decoded completely, so an existing ``<id>/`` with frames is always complete and a rerun
skips it (idempotent). Faces are not detected or cropped: ``size`` only resizes the whole frame.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import av
from PIL import Image

from hdf_lightning.data.errors import CorruptClipError, DatasetNotFoundError, EmptyClipError
from hdf_lightning.data.video import is_video

log = logging.getLogger(__name__)

FRAME_PATTERN = "{:05d}.jpg"
"""File name of frame i (1-based), as in DFEW's ``clip_224x224`` folders."""


def _is_complete(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.jpg"))


def extract_frames(
    video: str | Path, out_dir: str | Path, *, size: int | None = None, quality: int = 95
) -> int:
    """Decode every frame of ``video`` into ``out_dir/00001.jpg, 00002.jpg, ...``.

    Args:
        video: a video file PyAV can decode.
        out_dir: the frame folder to create; if it already holds frames nothing is decoded.
        size: resize frames to ``size × size`` (``None`` keeps the native size).
        quality: JPEG quality (1..95).

    Returns:
        Number of frames in ``out_dir``.

    Raises:
        CorruptClipError: the video cannot be opened or decoded (names the video).
        EmptyClipError: the video has no frame.
    """
    video, out_dir = Path(video), Path(out_dir)
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1 or None, got {size}")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be in 1..95, got {quality}")
    if _is_complete(out_dir):
        return len(list(out_dir.glob("*.jpg")))
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    count = 0
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise CorruptClipError(f"{video}: no video stream, expected one")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for count, frame in enumerate(container.decode(stream), start=1):
                image = frame.to_image()
                if size is not None:
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                image.save(partial / FRAME_PATTERN.format(count), quality=quality)
    except CorruptClipError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise CorruptClipError(f"{video}: cannot decode: {type(err).__name__}: {err}") from err
    if count == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise EmptyClipError(f"{video}: no decodable frame, expected at least one")
    if out_dir.exists():  # an empty leftover folder
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return count


def extract_tree(
    videos_dir: str | Path,
    out_root: str | Path,
    *,
    size: int | None = None,
    quality: int = 95,
    pad_ids: bool = True,
) -> dict[str, Any]:
    """Extract every video of ``videos_dir`` into ``out_root/<id>/`` (DFEW frame-folder layout).

    Complete folders are skipped; a video that fails is logged and reported, and the others go on.

    Args:
        videos_dir: folder of video files (not recursive).
        out_root: root of the frame folders (e.g. ``<DFEW root>/Clip/clip_224x224``).
        size: resize frames to ``size × size`` (``None`` keeps the native size).
        quality: JPEG quality.
        pad_ids: name folders of numeric video names with 5 digits (``1.mp4`` -> ``00001/``).

    Returns:
        ``{"videos": n, "extracted": n, "skipped": n, "frames": frames written,
        "failed": {video path: reason}}``.

    Raises:
        DatasetNotFoundError: ``videos_dir`` does not exist.
    """
    videos_dir, out_root = Path(videos_dir), Path(out_root)
    if not videos_dir.is_dir():
        raise DatasetNotFoundError(
            f"video folder not found: {videos_dir}. Expected a folder of video files "
            "(e.g. <DFEW root>/Clip/original/00001.mp4)."
        )
    videos = sorted(p for p in videos_dir.iterdir() if p.is_file() and is_video(p))
    result: dict[str, Any] = {
        "videos": len(videos),
        "extracted": 0,
        "skipped": 0,
        "frames": 0,
        "failed": {},
    }
    for video in videos:
        stem = video.stem
        out_dir = out_root / (stem.zfill(5) if pad_ids and stem.isdigit() else stem)
        if _is_complete(out_dir):
            result["skipped"] += 1
            continue
        try:
            result["frames"] += extract_frames(video, out_dir, size=size, quality=quality)
        except (CorruptClipError, EmptyClipError) as err:
            log.warning("extraction failed: %s", err)
            result["failed"][str(video)] = str(err)
            continue
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
