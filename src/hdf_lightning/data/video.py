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
    "decode_video",
    "is_video",
    "list_frames",
    "load_frames",
    "natural_sort_key",
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


def video_num_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames in the first video stream of ``path``.

    Counts the non-empty packets of the stream by demuxing the whole file (no decoding). The
    container's own count (``stream.frames``) is not used: it is 0 for many containers (WebM,
    MKV, some AVI) and approximate for others.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable video (message names it and the PyAV error).
    """
    video = Path(path)
    with _open_video(video) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
        except av.FFmpegError as err:
            raise ValueError(f"cannot read video {video}: {type(err).__name__}: {err}") from err


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
    codecs); only the requested indices are converted to RGB, and decoding stops at the largest
    requested index. Indices may repeat and come in any order.

    The decodable frames can be fewer than the packets :func:`video_num_frames` counts (packets
    that decode to no frame, corrupt packets). Packets the decoder rejects are skipped (logged as
    a warning naming the file; an error only when no frame decodes), and indices past
    the last decodable frame are clamped to it, so a clip whose packet count overstates its frames
    still loads; ``decode_video(path, None).shape[1]`` is the number of decodable frames (what
    ``hdf data verify`` reports).

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
    wanted: set[int] | None = None
    last = -1
    if indices is not None:
        if len(indices) == 0:
            raise ValueError(f"expected at least one frame index for {video}, got none")
        if min(indices) < 0:
            raise ValueError(f"expected non-negative frame indices for {video}, got {indices}")
        wanted = set(indices)
        last = max(wanted)
    frames: dict[int, np.ndarray] = {}
    count = 0
    with _open_video(video) as container:
        stream = container.streams.video[0]
        # Slice threading only: frame threading delays frames, and a corrupt packet then loses
        # the frames in flight, so the decodable count would depend on the number of cores.
        stream.thread_type = "SLICE"
        last_frame: av.VideoFrame | None = None  # the latest frame not converted
        error: av.FFmpegError | None = None
        done = False
        for packet in container.demux(stream):  # ends with an empty packet that flushes
            try:
                decoded = packet.decode()
            except av.FFmpegError as err:  # a corrupt packet: skip it, keep decoding
                error = err
                continue
            for frame in decoded:
                i = count
                count += 1
                if wanted is None or i in wanted:
                    frames[i] = _frame_to_array(frame, size)
                else:
                    last_frame = frame
                if i >= last >= 0:
                    done = True
                    break
            if done:
                break
        if error is not None:
            if count == 0:
                raise ValueError(f"cannot decode video {video}: {type(error).__name__}: {error}")
            log.warning(
                "%s: skipped undecodable packets: %s: %s", video, type(error).__name__, error
            )
        if count == 0:
            raise ValueError(f"no decodable frames in {video}")
        if last >= count and count - 1 not in frames and last_frame is not None:
            frames[count - 1] = _frame_to_array(last_frame, size)
    # Indices past the last decodable frame take that frame (see above).
    order = sorted(frames) if indices is None else [min(i, count - 1) for i in indices]
    return _channels_first(np.stack([frames[i] for i in order]), planar)


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
