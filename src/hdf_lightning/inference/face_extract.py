"""``hdf data extract --faces``: raw videos into DFEW-style face-crop frame folders.

For each video of a folder (any container and codec FFmpeg decodes):

1. **track** (pass 1 of :class:`~hdf_lightning.inference.face.FaceCropper`, the one ``hdf
   predict`` runs): decode every frame, detect faces on every ``detect_every``-th one at
   ``detect_width``, and track one smoothed square box over all frames. The pass counts the
   frames that decode, so a damaged or truncated video is refused here, with its decoded and
   declared length, before anything is written (``keep_damaged`` keeps the frames that decode);
2. **coverage**: a clip whose share of frames with a face is below ``min_face_fraction`` (none
   at all, or too few) is not written; it is listed with its coverage;
3. **crop and write** (pass 2): every frame with a face is cut as ``hdf predict`` cuts it (the
   square with ``margin`` on each side, at ``size``; frames without a face are left out) and
   written as ``00001.jpg, 00002.jpg, ...`` (libjpeg-turbo through simplejpeg) into
   ``<out>/<clip>.partial/``, renamed to ``<out>/<clip>/`` when complete.

Videos are spread over ``workers`` processes (each with OpenCV single-threaded: the workers are
the parallelism). ``<out>/manifest.json`` holds the crop's
:class:`~hdf_lightning.data.face_crops.FaceCropRecord` and, per clip, its status, the frames kept
(ranges of decoded-frame indices), the face coverage and the decoded and declared lengths (and,
for a clip not written, why: one line naming the video). It is
written atomically before the first clip, every few seconds while clips finish, and at the end
(also when the run is interrupted). A rerun skips the clips the manifest lists as done whose
folder exists, makes every other clip again, and refuses an output folder whose crops were made
with other settings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg

from hdf_lightning.data.extract import (
    FRAME_PATTERN,
    clip_name,
    damaged_video_error,
    extraction_totals,
    list_videos,
    staged_folder,
)
from hdf_lightning.data.face_crops import MANIFEST_NAME, FaceCropRecord
from hdf_lightning.data.opencv import opencv
from hdf_lightning.errors import ConfigError
from hdf_lightning.inference.face import FaceCropper, FaceOptions, FaceTrack, StageClock
from hdf_lightning.inference.progress import video_progress
from hdf_lightning.inference.sources import InputError, VideoFile
from hdf_lightning.io import atomic_write_text, check_writable

__all__ = [
    "ClipResult",
    "ExtractTimes",
    "FaceExtractOptions",
    "extract_face_clip",
    "extract_faces",
    "kept_ranges",
]

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "hdf face crops 1"
"""``format`` of the manifest, changed when its layout changes."""

MANIFEST_EVERY_S = 5.0
"""Seconds between rewrites of the manifest while clips finish."""


@dataclass
class FaceExtractOptions(FaceOptions):
    """Options of ``hdf data extract --faces``: the face options of ``hdf predict``
    (:class:`~hdf_lightning.inference.face.FaceOptions`) and the crops' side, JPEG quality and
    what to do with damaged videos.

    Attributes:
        size: side of the square face crops in pixels.
        quality: JPEG quality of the written frames, 1..100.
        keep_damaged: write the frames that decode of truncated or damaged videos (refused by
            default).
    """

    size: int = 224
    quality: int = 95
    keep_damaged: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size < 8:
            raise ValueError(f"--size must be >= 8 for face crops, got {self.size}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality must be in 1..100, got {self.quality}")


@dataclass
class ExtractTimes(StageClock):
    """Seconds spent per stage: decoding, face detection, cropping and writing the JPEGs (summed
    over clips, each clip's in one process)."""

    write: float = 0.0


STAGES = ExtractTimes.stages()
"""``("decode", "detect", "crop", "write")``: the stages of :class:`ExtractTimes`."""


@dataclass
class ClipResult:
    """What happened to one video.

    Attributes:
        clip: the clip folder's name.
        video: the video file.
        status: ``ok`` (written), ``no_face``, ``low_face`` (coverage below the threshold),
            ``damaged`` (refused: fewer frames decode than declared) or ``failed`` (unreadable).
        message: for any status but ``ok``, one line naming the video and the reason.
        frames: frames written.
        kept: ``[start, stop)`` ranges of the decoded-frame indices written, in order.
        face_fraction: share of the decoded frames with a tracked face.
        length: ``decoded_frames``, ``declared_frames``, ``damaged``.
        fps: the video's frame rate.
        times: seconds per stage.
    """

    clip: str
    video: str
    status: str
    message: str | None = None
    frames: int = 0
    kept: list[list[int]] = field(default_factory=list)
    face_fraction: float | None = None
    length: dict[str, Any] | None = None
    fps: float | None = None
    times: ExtractTimes = field(default_factory=ExtractTimes)

    def manifest_entry(self) -> dict[str, Any]:
        """The clip's entry in ``manifest.json``."""
        entry = {k: v for k, v in asdict(self).items() if k not in ("clip", "times", "length")}
        entry.update(self.length or {})
        if entry["message"] is None:
            del entry["message"]
        return entry


def kept_ranges(found: np.ndarray) -> list[list[int]]:
    """``[start, stop)`` ranges of the True entries of a boolean vector."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], found.astype(np.int8), [0]])))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]


def extract_face_clip(
    video: Path,
    out_dir: Path,
    options: FaceExtractOptions,
    cropper: FaceCropper,
    name: str | None = None,
) -> ClipResult:
    """Track, check and crop one video into ``out_dir`` (see the module's steps).

    Never raises for a bad video: the result's ``status`` and ``message`` say what happened, and
    nothing is left in ``out_dir`` or ``<out_dir>.partial`` unless the clip was written whole.
    ``name`` is the clip's name in the manifest (default: ``out_dir``'s name).
    """
    result = ClipResult(name or out_dir.name, str(video), "failed")
    times = result.times
    try:
        source = VideoFile(video)
        track = cropper.track(source, times)
        length = source.length
        result.length, result.fps = length.to_dict(), round(source.fps, 4)
        found = track.found
        result.face_fraction = round(float(found.mean()), 4)
        if length.damaged and not options.keep_damaged:
            result.status, result.message = "damaged", str(damaged_video_error(length))
        elif not found.any():
            result.status = "no_face"
            result.message = f"{video}: no face found in any of its {len(found)} frames"
        elif found.mean() < options.min_face_fraction:
            result.status = "low_face"
            result.message = (
                f"{video}: a face in {found.mean():.0%} of its frames ({int(found.sum())} of "
                f"{len(found)}), below --min_face_fraction {options.min_face_fraction:g}"
            )
        else:
            result.frames = _write_crops(source, track, out_dir, options, cropper, times)
            result.status, result.kept = "ok", kept_ranges(found)
    except InputError as err:
        result.message = str(err)
    except Exception as err:  # one bad video (or a full disk) must not stop the others
        log.debug("face extraction failed on %s", video, exc_info=True)
        result.message = f"{video}: {type(err).__name__}: {err}"
    return result


def _write_crops(
    source: VideoFile,
    track: FaceTrack,
    out_dir: Path,
    options: FaceExtractOptions,
    cropper: FaceCropper,
    times: ExtractTimes,
) -> int:
    """Pass 2: the crops of the frames with a face, as JPEG files in a staged folder."""
    found = track.found
    expected = int(found.sum())
    count = 0
    with staged_folder(out_dir) as partial:
        wanted = lambda i: i < len(found) and bool(found[i])  # noqa: E731
        for _, crop in cropper.crops(source, track, wanted, size=options.size, times=times):
            start = time.perf_counter()
            data = simplejpeg.encode_jpeg(crop, quality=options.quality, colorspace="RGB")
            count += 1
            (partial / FRAME_PATTERN.format(count)).write_bytes(data)
            times.write += time.perf_counter() - start
        if count != expected:
            raise InputError(
                f"{source.path}: {count} frames with a face decoded in the second pass, "
                f"{expected} in the first; the video does not decode the same way twice"
            )
    return count


# ------------------------------------------------------------------------------------ processes

_worker_cropper: FaceCropper | None = None


def _start_worker(options: FaceExtractOptions) -> None:
    """Initializer of a worker process: OpenCV on one thread, one detector per process."""
    global _worker_cropper
    opencv().setNumThreads(1)  # a forked worker starts without OpenCV's pool (data/opencv.py)
    _worker_cropper = FaceCropper(options)


def _work(video: Path, out_dir: Path, options: FaceExtractOptions, name: str) -> ClipResult:
    assert _worker_cropper is not None, "the worker was not started by _start_worker"
    return extract_face_clip(video, out_dir, options, _worker_cropper, name)


def _results(
    jobs: list[tuple[Path, Path, str]], options: FaceExtractOptions, workers: int
) -> Iterator[ClipResult]:
    """The result of each job as it finishes, computed here or by ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        cropper = FaceCropper(options)
        for video, out_dir, name in jobs:
            yield extract_face_clip(video, out_dir, options, cropper, name)
        return
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), initializer=_start_worker, initargs=(options,)
    )
    futures: list[Future[ClipResult]] = []
    try:
        futures = [pool.submit(_work, *job[:2], options, job[2]) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------ manifest


def _read_manifest(out: Path, record: FaceCropRecord, quality: int) -> dict[str, Any]:
    """The clips of a previous run into ``out`` (empty for a new folder).

    Raises:
        ConfigError: ``out`` holds other files and no manifest, a manifest that does not read, or
            crops made with other settings.
    """
    path = out / MANIFEST_NAME
    if not path.is_file():
        others = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        if others:
            raise ConfigError(
                f"--out {out} is not empty ({', '.join(others[:3])}{' ...' if others[3:] else ''})"
                f" and holds no {MANIFEST_NAME}: face crops go into an empty folder or one that "
                "hdf data extract --faces made"
            )
        return {}
    try:
        content = json.loads(path.read_text())
        previous = FaceCropRecord.from_dict(content["face_crop"])
        clips = dict(content["clips"])
        previous_quality = int(content["quality"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"cannot read {path} ({type(err).__name__}: {err}); remove the folder or choose "
            "another --out"
        ) from err
    if previous != record or previous_quality != quality:
        raise ConfigError(
            f"{out} holds face crops made with {previous.describe()}, JPEG quality "
            f"{previous_quality}; this run makes {record.describe()}, JPEG quality {quality}. "
            "Use the same options to continue it, or another --out"
        )
    return clips


def _manifest_text(
    record: FaceCropRecord, options: FaceExtractOptions, videos: Path, clips: dict[str, Any]
) -> str:
    manifest = {
        "format": MANIFEST_FORMAT,
        "face_crop": record.to_dict(),
        "quality": options.quality,
        "min_face_fraction": options.min_face_fraction,
        "keep_damaged": options.keep_damaged,
        "videos": str(videos),
        "frame_names": FRAME_PATTERN,
    }
    head = json.dumps(manifest, indent=1)[: -len("\n}")]  # without its closing brace
    rows = [f"  {json.dumps(name)}: {json.dumps(clips[name])}" for name in sorted(clips)]
    body = "{\n" + ",\n".join(rows) + "\n }" if rows else "{}"
    return f'{head},\n "clips": {body}\n}}\n'  # one line per clip


def _plan(
    videos: list[Path],
    out: Path,
    done: set[str],
    result: dict[str, Any],
    *,
    pad_ids: bool,
    root: Path | None,
) -> list[tuple[Path, Path, str]]:
    """``(video, clip folder, clip name)`` of the videos still to crop; counts those done before
    in ``result["skipped"]`` and refuses (in ``result["failed"]``) two videos of one folder name."""
    jobs: list[tuple[Path, Path, str]] = []
    owner: dict[str, Path] = {}
    for video in videos:
        name = clip_name(video, pad_ids, root)
        if name in owner:
            result["failed"][str(video)] = (
                f"{video}: its clip folder {name} is also the folder of {owner[name]}; rename one"
            )
            continue
        owner[name] = video
        if name in done:
            result["skipped"] += 1
        else:
            jobs.append((video, out / name, name))
    return jobs


def _count(clip: ClipResult, result: dict[str, Any]) -> None:
    """Add one finished video to the totals of :func:`extract_faces`."""
    if clip.length and clip.length["damaged"]:
        result["damaged"][clip.video] = clip.length
    if clip.status == "ok":
        result["extracted"] += 1
        result["frames"] += clip.frames
    else:
        result["failed"][clip.video] = clip.message


def _done_clips(out: Path, record: FaceCropRecord, quality: int) -> dict[str, Any]:
    """The manifest entries of the clips a previous run into ``out`` wrote completely (status
    ``ok``, folder present); see :func:`_read_manifest` for what it refuses."""
    clips = _read_manifest(out, record, quality)
    return {n: c for n, c in clips.items() if c.get("status") == "ok" and (out / n).is_dir()}


def _crop_all(
    jobs: list[tuple[Path, Path, str]],
    options: FaceExtractOptions,
    workers: int,
    clips: dict[str, Any],
    result: dict[str, Any],
    save_manifest: Callable[[], None],
    progress: bool | None,
    on_result: Callable[[ClipResult], None] | None,
) -> ExtractTimes:
    """Crop the planned videos (``jobs`` of :func:`_plan`) and return the seconds per stage.

    Each finished video goes into ``clips`` (the manifest's entries), into the totals
    ``result`` and to ``on_result``. The manifest is saved before the first video, every
    :data:`MANIFEST_EVERY_S` seconds and at the end, also when a video raises.
    """
    save_manifest()
    times = ExtractTimes()
    written = time.monotonic()
    try:
        with video_progress("face crops", progress) as bar:
            task = bar.add_task("extract", total=len(jobs))
            for clip in _results(jobs, options, workers):
                bar.advance(task)
                times.add(clip.times)
                clips[clip.clip] = clip.manifest_entry()
                _count(clip, result)
                if on_result is not None:
                    on_result(clip)
                if time.monotonic() - written > MANIFEST_EVERY_S:
                    save_manifest()
                    written = time.monotonic()
    finally:
        save_manifest()
    return times


def extract_faces(
    videos_dir: str | Path,
    out_root: str | Path,
    options: FaceExtractOptions | None = None,
    *,
    workers: int = 1,
    pad_ids: bool = True,
    recursive: bool = False,
    progress: bool | None = None,
    on_result: Callable[[ClipResult], None] | None = None,
) -> dict[str, Any]:
    """Face crops of every video of ``videos_dir`` into ``out_root/<clip>/`` (see the module).

    Args:
        videos_dir: folder of video files (not recursive).
        out_root: root of the crop folders (created); gets ``manifest.json``.
        options: see :class:`FaceExtractOptions`.
        workers: processes over videos (1: this process).
        pad_ids: name folders of numeric video names with 5 digits (``1.mp4`` -> ``00001/``).
        recursive: also the videos of sub-folders, each cropped into the same relative folder
            (``Actor_01/02-01-...mp4`` -> ``<out>/Actor_01/02-01-.../``), one manifest at the root.
        progress: show a progress bar over videos on stderr (None: when stderr is a terminal).
        on_result: called with each video's :class:`ClipResult` as it finishes.

    Returns:
        ``{"videos", "extracted", "skipped", "frames", "failed": {video: reason},
        "damaged": {video: lengths}, "face_crop", "manifest", "timing_s", "wall_s"}``:
        ``failed`` holds one line per video not written (no face, low coverage, damaged,
        unreadable); ``damaged`` the damaged videos, written or not.

    Raises:
        DatasetNotFoundError: ``videos_dir`` does not exist.
        RunFolderError: ``out_root`` cannot be written.
        ConfigError: an option is out of range, or ``out_root`` holds crops made otherwise.
    """
    start = time.perf_counter()
    options = options if options is not None else FaceExtractOptions()
    videos_dir, out = Path(videos_dir), Path(out_root)
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    videos = list_videos(videos_dir, recursive)
    check_writable(out, "--out")
    record = FaceCropper(options).record(options.size)  # refuses an unknown detector early
    clips = _done_clips(out, record, options.quality)
    result = {
        **extraction_totals(len(videos)),
        "face_crop": record.to_dict(),
        "manifest": str(out / MANIFEST_NAME),
    }
    root = videos_dir if recursive else None
    jobs = _plan(videos, out, set(clips), result, pad_ids=pad_ids, root=root)

    def save_manifest() -> None:
        atomic_write_text(out / MANIFEST_NAME, _manifest_text(record, options, videos_dir, clips))

    times = _crop_all(jobs, options, workers, clips, result, save_manifest, progress, on_result)
    result["timing_s"] = times.to_dict()
    result["wall_s"] = round(time.perf_counter() - start, 4)
    log.info(
        "face crops of %d of %d videos (%d skipped, %d not extracted) in %s",
        result["extracted"], result["videos"], result["skipped"], len(result["failed"]), out,
    )  # fmt: skip
    return result
