"""Reading clips: folders of JPEG/PNG frames (PIL) and video files (PyAV).

Every reader returns a ``uint8`` tensor of shape ``(3, T, H, W)`` (channels first, as a clip batch
``(B, 3, T, H, W)`` without the batch axis); float conversion, augmentation and normalisation
happen later, batched, in :mod:`hdf_lightning.data.transforms`.

Errors name the file or folder at fault: a missing folder or file raises ``FileNotFoundError``, an
empty folder or an undecodable image or video raises ``ValueError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import av
import numpy as np
import torch
from PIL import Image, ImageFile

try:  # libjpeg-turbo without PIL's Python-side header parsing; PIL is the fallback
    import simplejpeg
except ImportError:  # pragma: no cover - simplejpeg is a dependency; kept optional for safety
    simplejpeg = None

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoLength",
    "declared_frames",
    "decode_video",
    "frame_rate",
    "is_video",
    "iter_video_frames",
    "list_frames",
    "load_frames",
    "natural_sort_key",
    "probe_video",
    "read_frame_bytes",
    "video_num_frames",
    "write_video",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})
"""Lower-case suffixes of the frame files :func:`list_frames` picks up."""

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)
"""Lower-case suffixes treated as video files by :func:`is_video`."""

_DIGITS = re.compile(r"(\d+)")

# Errors PIL raises for unreadable or corrupt files (UnidentifiedImageError is an OSError).
_PIL_ERRORS = (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError)


def natural_sort_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key that orders digit runs by value: ``"2.jpg" < "10.jpg"``.

    ``re.split`` with a capturing group alternates text and digits, so the parts at the same
    position always have the same type; the full name breaks ties (``"1.jpg"`` vs ``"01.jpg"``).
    """
    parts = tuple(int(p) if i % 2 else p for i, p in enumerate(_DIGITS.split(name)))
    return parts, name


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video file suffix (:data:`VIDEO_EXTENSIONS`, case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_frames(folder: str | os.PathLike[str]) -> list[Path]:
    """The frame files (``*.jpg``, ``*.jpeg``, ``*.png``) of a clip folder in temporal order.

    Args:
        folder: Directory holding one clip's frames.

    Returns:
        Paths sorted by :func:`natural_sort_key` of the file name (``2.jpg`` before ``10.jpg``).

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a directory.
        ValueError: ``folder`` holds no frame files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"frame folder not found (expected a directory): {root}")
    with os.scandir(root) as entries:
        names = [
            e.name
            for e in entries
            if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        ]
    if not names:
        raise ValueError(
            f"no frames in {root}: expected image files with suffix "
            f"{sorted(IMAGE_EXTENSIONS)}, found none"
        )
    return [root / n for n in sorted(names, key=natural_sort_key)]


@contextlib.contextmanager
def _truncated_images_are_errors() -> Iterator[None]:
    """Make PIL raise on truncated files (``ImageFile.LOAD_TRUNCATED_IMAGES = False``).

    Some training code sets the flag to True process-wide, which makes PIL pad a truncated JPEG
    with grey instead of failing. The previous value is restored on exit. The flag is a module
    global of PIL, so this is not thread-safe (DataLoader workers are processes, which is fine).
    """
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


_JPEG_MAGIC = b"\xff\xd8"


def _decode_jpeg_turbo(path: Path, draft_size: int | None) -> np.ndarray | None:
    """A JPEG frame decoded by libjpeg-turbo (simplejpeg), or None to let PIL decode it.

    With ``draft_size`` the DCT scale is the smallest of 1, 1/2, 1/4, 1/8 that keeps both sides
    at least ``draft_size`` (what ``Image.draft`` picks, with identical pixels). Returns None for
    files that are not JPEGs and for JPEGs that libjpeg-turbo rejects (PIL then decodes them or
    raises its error, which names the problem).
    """
    if simplejpeg is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"frame file not found: {path}") from err
    if not data.startswith(_JPEG_MAGIC):
        return None
    size = draft_size or 0
    try:
        return cast(
            np.ndarray, simplejpeg.decode_jpeg(data, "RGB", min_height=size, min_width=size)
        )
    except ValueError:
        return None


def _decode_image(
    path: Path, draft_size: int | None, out_size: tuple[int, int] | None
) -> np.ndarray:
    """One frame as an ``(H, W, 3)`` uint8 array, resized to ``out_size`` = (W, H) if given."""
    turbo = _decode_jpeg_turbo(path, draft_size)
    if turbo is not None:
        if out_size is None or (turbo.shape[1], turbo.shape[0]) == out_size:
            return turbo
        return np.asarray(Image.fromarray(turbo).resize(out_size, Image.Resampling.BILINEAR))
    try:
        with Image.open(path) as img:
            if draft_size is not None:
                # JPEG only (no-op otherwise): decode at 1/2, 1/4 or 1/8 DCT scale, keeping the
                # result at least draft_size on each side.
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            if out_size is not None and rgb.size != out_size:
                rgb = rgb.resize(out_size, Image.Resampling.BILINEAR)
            return np.asarray(rgb)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"frame file not found: {path}") from err
    except _PIL_ERRORS as err:
        raise ValueError(f"cannot decode image {path}: {type(err).__name__}: {err}") from err


def load_frames(
    paths: Sequence[str | os.PathLike[str]], *, size: int | None = None, planar: bool = True
) -> torch.Tensor:
    """Decode frame images into one clip tensor.

    Each distinct path is decoded once, even when the sampled indices repeat a frame (short clips,
    M3DFEL sampling). JPEGs are decoded by libjpeg-turbo through ``simplejpeg`` (no PIL header
    parsing in Python; other formats, and JPEGs it rejects, go through PIL). With ``size`` set,
    JPEGs are decoded at a reduced DCT scale (as ``Image.draft``, same pixels: 224-px frames at
    ``size=112`` decode at half resolution, about 3× faster) and then resized (PIL bilinear,
    antialiased) to ``size × size`` when needed; the aspect ratio is not kept.

    Args:
        paths: ``T`` frame files, in the order wanted in the clip (repeats allowed).
        size: Output side ``S``; ``None`` keeps the first frame's native ``H × W`` (later frames of
            another size are resized to it).
        planar: Return a contiguous tensor. With False the result is a view of the decoded
            frame-major memory (``(T, H, W, 3)``, interleaved RGB), which skips a copy when the
            next step wants that layout (``transforms.crop_resize_flip_uint8``).

    Returns:
        ``uint8`` tensor ``(3, T, S, S)`` (or ``(3, T, H, W)`` when ``size`` is None).

    Raises:
        ValueError: no paths, ``size < 1``, or an image that cannot be decoded (corrupt, truncated,
            not an image); the message names the file.
        FileNotFoundError: a frame file does not exist.
    """
    if len(paths) == 0:
        raise ValueError("expected at least one frame path, got an empty sequence")
    if size is not None and size < 1:
        raise ValueError(f"expected size >= 1 or None, got size={size}")
    slots: dict[Path, int] = {}
    order = [slots.setdefault(Path(p), len(slots)) for p in paths]
    unique = list(slots)
    with _truncated_images_are_errors():
        if size is None:
            first = _decode_image(unique[0], None, None)
            native = (first.shape[1], first.shape[0])
            arrays = [first] + [_decode_image(p, None, native) for p in unique[1:]]
        else:
            arrays = [_decode_image(p, size, (size, size)) for p in unique]
    decoded = np.stack(arrays)  # (U, H, W, 3), one row per distinct path
    clip = decoded[np.asarray(order)] if len(unique) < len(order) else decoded
    return _channels_first(clip, planar)


def read_frame_bytes(paths: Sequence[str | os.PathLike[str]]) -> list[torch.Tensor]:
    """The encoded bytes of each frame file, for decoding elsewhere (e.g. on the GPU).

    Args:
        paths: ``T`` frame files (repeats allowed; a repeated path is read once and shared).

    Returns:
        ``T`` 1-D uint8 tensors holding the files' bytes, in the order of ``paths``.

    Raises:
        ValueError: no paths.
        FileNotFoundError: a frame file does not exist.
    """
    if len(paths) == 0:
        raise ValueError("expected at least one frame path, got an empty sequence")
    cache: dict[Path, torch.Tensor] = {}
    out = []
    for p in paths:
        path = Path(p)
        if path not in cache:
            try:
                data = path.read_bytes()
            except FileNotFoundError as err:
                raise FileNotFoundError(f"frame file not found: {path}") from err
            cache[path] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        out.append(cache[path])
    return out


def _channels_first(frames: np.ndarray, planar: bool) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 array -> ``(3, T, H, W)`` tensor, copied to planar if ``planar``.

    numpy's transposing copy is several times faster than torch's for uint8.
    """
    view = frames.transpose(3, 0, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(view) if planar else view)


def _open_video(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as err:
        raise ValueError(f"cannot open video {path}: {type(err).__name__}: {err}") from err
    if not container.streams.video:
        container.close()
        raise ValueError(f"no video stream in {path}: expected a file with one video stream")
    return container


@dataclass(frozen=True)
class VideoLength:
    """How long a video is: as its container declares it, and as it decodes.

    The decodable frames are the one frame count of a video in this package: the loader samples
    from them, ``hdf data verify`` and ``hdf data extract`` report them and ``hdf predict`` plans
    its windows on them. A video whose decodable frames fall short of what its container declares
    (a truncated download or copy, a damaged file) is :attr:`damaged`.

    Attributes:
        path: the video file.
        decoded: frames that decode (:func:`iter_video_frames`).
        declared: frames the container declares (the stream's frame count, else its duration
            times its frame rate), or None when it declares neither.
        fps: the stream's frame rate (25 when it declares none).
    """

    path: Path
    decoded: int
    declared: int | None
    fps: float

    @property
    def missing(self) -> int:
        """Declared frames that do not decode (0 when nothing is declared)."""
        return max(0, self.declared - self.decoded) if self.declared else 0

    @property
    def damaged(self) -> bool:
        """More than ``max(2, 1 %)`` of the declared frames do not decode (the tolerance covers
        containers that declare their length from a rounded duration)."""
        return self.declared is not None and self.missing > max(2, round(0.01 * self.declared))

    def describe(self) -> str:
        """One line: ``<path>: damaged or truncated video: N of M declared frames decode ...``."""
        declared = self.declared or 0
        return (
            f"{self.path}: damaged or truncated video: {self.decoded} of the {declared} frames "
            f"the container declares decode ({self.decoded / self.fps:.2f} s of "
            f"{declared / self.fps:.2f} s)"
        )

    def to_dict(self) -> dict[str, int | bool | None]:
        """``{"decoded_frames", "declared_frames", "damaged"}`` for JSON and CSV outputs."""
        return {
            "decoded_frames": self.decoded,
            "declared_frames": self.declared,
            "damaged": self.damaged,
        }


def frame_rate(stream: av.VideoStream) -> float:
    """The stream's average (else guessed) frame rate; 25 when it declares none."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 25.0


def declared_frames(container: av.container.InputContainer, stream: av.VideoStream) -> int | None:
    """The stream's declared frame count, else its (or the container's) duration × frame rate."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    seconds: float | None = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    return round(seconds * frame_rate(stream)) if seconds else None


def iter_video_frames(
    container: av.container.InputContainer, path: str | os.PathLike[str]
) -> Iterator[av.VideoFrame]:
    """Every decodable frame of the first video stream of an open container, in order.

    The one decoding loop of the package (:func:`decode_video`, :func:`probe_video`, ``hdf
    predict``, ``hdf data extract``), so that all of them see the same frames. Packets the decoder
    rejects are skipped and logged as a warning naming the file; a file whose rest cannot be
    demuxed (truncated) ends at the last frame that decoded. Slice threading only: frame threading
    delays frames, and a corrupt packet then loses the frames in flight, so the count would
    depend on the number of cores.

    Raises:
        ValueError: no frame decodes (names the file and the PyAV error).
    """
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    error: av.FFmpegError | None = None
    count = 0
    packets = container.demux(stream)  # ends with an empty packet that flushes the decoder
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as err:  # the rest of the file cannot be read
            error = err
            break
        try:
            decoded = packet.decode()
        except av.FFmpegError as err:  # a corrupt packet: skip it, keep decoding
            error = err
            continue
        for frame in decoded:
            count += 1
            yield frame
    if count == 0:
        reason = f": {type(error).__name__}: {error}" if error is not None else ""
        raise ValueError(f"no decodable frames in video {path}{reason}")
    if error is not None:
        log.warning("%s: skipped undecodable data: %s: %s", path, type(error).__name__, error)


def probe_video(path: str | os.PathLike[str]) -> VideoLength:
    """Decode a video without converting its frames and report its :class:`VideoLength`.

    Costs a full decode (no colour conversion, about 0.4 s for 20 s of 640×360 H.264 on one
    core): the declared length alone cannot tell a truncated or damaged file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable video, or no frame decodes (names the file).
    """
    video = Path(path)
    with _open_video(video) as container:
        stream = container.streams.video[0]
        declared = declared_frames(container, stream)
        fps = frame_rate(stream)
        decoded = sum(1 for _ in iter_video_frames(container, video))
    return VideoLength(video, decoded, declared, fps)


def video_num_frames(path: str | os.PathLike[str]) -> int:
    """Number of decodable frames in the first video stream of ``path`` (see
    :class:`VideoLength`; the container's own count is not used: it is 0 for many containers
    and overstates truncated or damaged files).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable video (message names it and the PyAV error).
    """
    return probe_video(path).decoded


def _frame_to_array(frame: av.VideoFrame, size: int | None) -> np.ndarray:
    """``(H, W, 3)`` RGB uint8 array of a decoded frame, rescaled to ``size × size`` if given."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="BILINEAR")


def decode_video(
    path: str | os.PathLike[str],
    indices: Sequence[int] | None,
    *,
    size: int | None = None,
    planar: bool = True,
) -> torch.Tensor:
    """Decode chosen frames of a video file with PyAV.

    Frames are decoded sequentially from the start (no seeking, which is frame-inexact for many
    codecs) by :func:`iter_video_frames`; only the requested indices are converted to RGB, and
    decoding stops at the largest requested index. Indices may repeat and come in any order.
    Indices past the last decodable frame take that frame, so a sampler given a longer count
    than the video holds still gets a clip; ``decode_video(path, None).shape[1]`` equals
    :func:`video_num_frames`.

    Args:
        path: Video file.
        indices: ``T`` frame indices (decode order, 0-based), or ``None`` for every frame.
        size: Output side ``S`` (bilinear rescale by swscale); ``None`` keeps the native size.
        planar: Return a contiguous tensor, else a view of frame-major memory (see
            :func:`load_frames`).

    Returns:
        ``uint8`` tensor ``(3, T, S, S)`` (or ``(3, T, H, W)`` when ``size`` is None).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file or no decodable frame (message names it and the PyAV error),
            empty or negative indices.
    """
    video = Path(path)
    if size is not None and size < 1:
        raise ValueError(f"expected size >= 1 or None, got size={size}")
    wanted = _wanted_indices(video, indices)
    with _open_video(video) as container:
        frames, count = _convert_wanted(iter_video_frames(container, video), wanted, size)
    order = sorted(frames) if indices is None else [min(i, count - 1) for i in indices]
    return _channels_first(np.stack([frames[i] for i in order]), planar)


def _wanted_indices(video: Path, indices: Sequence[int] | None) -> set[int] | None:
    """The distinct requested frame indices of ``video`` (None: every frame).

    Raises:
        ValueError: empty or negative indices.
    """
    if indices is None:
        return None
    if len(indices) == 0:
        raise ValueError(f"expected at least one frame index for {video}, got none")
    if min(indices) < 0:
        raise ValueError(f"expected non-negative frame indices for {video}, got {indices}")
    return set(indices)


def _convert_wanted(
    decoded: Iterator[av.VideoFrame], wanted: set[int] | None, size: int | None
) -> tuple[dict[int, np.ndarray], int]:
    """``(H, W, 3)`` RGB arrays of the ``wanted`` frames (all when None) by index, and the number
    of frames decoded.

    Decoding stops at the largest wanted index. When the video ends before it, its last frame is
    converted too, as the frame that the indices past the end take.
    """
    last = max(wanted) if wanted is not None else -1
    frames: dict[int, np.ndarray] = {}
    count = 0
    last_frame: av.VideoFrame | None = None  # the latest frame not converted
    for i, frame in enumerate(decoded):
        count = i + 1
        if wanted is None or i in wanted:
            frames[i] = _frame_to_array(frame, size)
        else:
            last_frame = frame
        if i >= last >= 0:
            break
    if last >= count and count - 1 not in frames and last_frame is not None:
        frames[count - 1] = _frame_to_array(last_frame, size)
    return frames, count


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: int = 25) -> None:
    """Encode ``frames`` into a small video file (tests and synthetic data).

    Uses H.264 (``libx264``, near-lossless CRF 10) when PyAV's FFmpeg has it, else MPEG-4 part 2
    (``mpeg4``, high bit rate), with ``yuv420p`` pixels. The container follows the suffix of
    ``path`` (``.mp4``, ``.avi``, ``.mkv`` ...).

    Args:
        path: Output file.
        frames: ``uint8`` array ``(T, H, W, 3)`` RGB with even ``H`` and ``W`` (yuv420p).
        fps: Frame rate.

    Raises:
        ValueError: wrong shape, dtype, odd sides, empty clip or ``fps < 1``.
    """
    array = np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 frames of shape (T, H, W, 3), got {array.dtype} {array.shape}"
        )
    num, height, width, _ = array.shape
    if num == 0 or height % 2 or width % 2:
        raise ValueError(
            f"expected at least one frame with even height and width (yuv420p), got {array.shape}"
        )
    if fps < 1:
        raise ValueError(f"expected fps >= 1, got {fps}")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = cast(av.VideoStream, container.add_stream(codec, rate=fps))
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "veryfast"}
        else:
            stream.bit_rate = 20_000_000
        for rgb in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    log.debug("wrote %d frames (%dx%d, %s) to %s", num, width, height, codec, path)
