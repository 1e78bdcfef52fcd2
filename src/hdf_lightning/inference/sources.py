"""Where frames come from: video files (any container and codec FFmpeg decodes, through PyAV) and
folders of frame images; and how the inputs of ``hdf predict`` expand into them.

A source is read in passes: :meth:`FrameSource.read` decodes the frames in order and converts only
the wanted ones to RGB arrays (converting is a large part of the cost of decoding), at the native
size or downscaled. Every error names the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from hdf_lightning.data.video import (
    IMAGE_EXTENSIONS,
    VideoLength,
    declared_frames,
    frame_rate,
    is_video,
    iter_video_frames,
    list_frames,
)

__all__ = [
    "FolderFrames",
    "FrameSource",
    "InputError",
    "VideoFile",
    "collect_inputs",
    "open_source",
]


class InputError(ValueError):
    """An input that cannot be read: the message names it."""


class FrameSource(Protocol):
    """A video to predict on."""

    path: Path
    fps: float
    width: int
    height: int

    @property
    def video_frames(self) -> int:
        """Frames the source yields (for a video: frames that decode)."""
        ...

    @property
    def length(self) -> VideoLength | None:
        """Declared vs decoded length of a video file; None for a frame folder."""
        ...

    def read(
        self, wanted: Callable[[int], bool], *, width: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Frames ``(i, (H', W', 3) uint8 RGB)`` for the indices ``wanted(i)`` accepts, in order.

        Args:
            wanted: which frame indices to convert and yield.
            width: downscale to this width (height keeps the aspect ratio, even), or None.
        """
        ...


def _scaled(width: int, height: int, target: int | None) -> tuple[int, int]:
    if target is None or target >= width:
        return width, height
    return target, max(2, round(height * target / width / 2) * 2)


@dataclass
class VideoFile:
    """A video file decoded with PyAV.

    ``video_frames`` is the number of frames that decode (the package's one frame count, see
    :class:`~hdf_lightning.data.video.VideoLength`): a complete :meth:`read` pass counts them, and
    reading ``video_frames`` before any pass decodes the video once to count them. ``length`` then
    holds the declared and the decoded length, and whether the file is damaged.
    """

    path: Path
    fps: float = field(init=False)
    width: int = field(init=False)
    height: int = field(init=False)
    declared_frames: int | None = field(init=False)
    _decoded: int | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        import av

        try:
            with av.open(str(self.path), mode="r") as container:
                if not container.streams.video:
                    raise InputError(f"{self.path}: no video stream (not a video file)")
                stream = container.streams.video[0]
                self.fps = frame_rate(stream)
                self.width = int(stream.codec_context.width)
                self.height = int(stream.codec_context.height)
                self.declared_frames = declared_frames(container, stream)
        except av.FFmpegError as err:
            raise InputError(f"{self.path}: cannot read the video ({err.strerror or err})") from err
        if self.width < 1 or self.height < 1:
            raise InputError(f"{self.path}: the video has no frames")

    @property
    def video_frames(self) -> int:
        """Frames that decode (counted by a decoding pass the first time it is needed)."""
        if self._decoded is None:
            for _ in self.read(lambda i: False):
                pass
        assert self._decoded is not None
        return self._decoded

    @property
    def length(self) -> VideoLength:
        """Declared vs decoded length of the video."""
        return VideoLength(self.path, self.video_frames, self.declared_frames, self.fps)

    def read(
        self, wanted: Callable[[int], bool], *, width: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        import av

        out_w, out_h = _scaled(self.width, self.height, width)
        scale = (out_w, out_h) != (self.width, self.height)
        count = 0
        try:
            with av.open(str(self.path), mode="r") as container:
                for i, frame in enumerate(iter_video_frames(container, self.path)):
                    count = i + 1
                    if not wanted(i):
                        continue
                    if scale:
                        array = frame.to_ndarray(
                            width=out_w, height=out_h, format="rgb24", interpolation="AREA"
                        )
                    else:
                        array = frame.to_ndarray(format="rgb24")
                    yield i, array
        except av.FFmpegError as err:
            raise InputError(
                f"{self.path}: cannot decode the video ({err.strerror or err})"
            ) from err
        except ValueError as err:  # no frame decodes
            raise InputError(f"{self.path}: the video has no decodable frames") from err
        self._decoded = count  # reached only when the pass went through the whole video


@dataclass
class FolderFrames:
    """A folder of frame images (``*.jpg``, ``*.jpeg``, ``*.png``) in natural name order."""

    path: Path
    fps: float
    video_frames: int = field(init=False)
    width: int = field(init=False)
    height: int = field(init=False)
    files: list[Path] = field(init=False, repr=False)
    length: None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        from PIL import Image

        try:
            self.files = list_frames(self.path)
        except (OSError, ValueError) as err:
            raise InputError(f"{self.path}: {err}") from err
        self.video_frames = len(self.files)
        try:
            with Image.open(self.files[0]) as image:
                self.width, self.height = image.size
        except OSError as err:
            raise InputError(f"{self.files[0]}: cannot read the image ({err})") from err

    def read(
        self, wanted: Callable[[int], bool], *, width: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        from PIL import Image

        size = _scaled(self.width, self.height, width)
        for i, file in enumerate(self.files):
            if not wanted(i):
                continue
            try:
                with Image.open(file) as image:
                    if size != (self.width, self.height):
                        image.draft("RGB", size)  # JPEG: decode at a reduced DCT scale
                    rgb = image.convert("RGB")
                    if rgb.size != size:
                        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
                    yield i, np.asarray(rgb)
            except OSError as err:
                raise InputError(f"{file}: cannot read the image ({err})") from err


def open_source(path: Path, *, fps: float) -> FrameSource:
    """A :class:`FolderFrames` for a directory, else a :class:`VideoFile`.

    Args:
        path: a video file or a folder of frames.
        fps: frame rate assumed for frame folders.

    Raises:
        InputError: missing, unreadable or not a video (the message names the path).
    """
    if path.is_dir():
        return FolderFrames(path, fps=fps)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    return VideoFile(path)


def _has_frames(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(
            e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in entries
        )


def collect_inputs(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand the inputs of ``hdf predict`` into videos and frame folders.

    A file is taken as given (it fails later if it is not a video). A folder that holds frame
    images is one video; any other folder is searched recursively for video files (by suffix,
    :data:`~hdf_lightning.data.video.VIDEO_EXTENSIONS`) and frame folders.

    Returns:
        ``(items, problems)``: the videos and frame folders in order, and ``(path, message)`` for
        inputs that do not exist, folders that cannot be listed and folders without any video.
    """
    items: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for path in inputs:
        if not path.exists():
            problems.append((path, f"{path}: no such file or folder"))
            continue
        if not path.is_dir():
            items.append(path)
            continue
        found: list[Path] = []

        def unreadable(err: OSError, top: Path = path) -> None:
            where = Path(err.filename) if err.filename else top
            problems.append((where, f"{where}: cannot list the folder ({err.strerror or err})"))

        try:
            if _has_frames(path):
                items.append(path)
                continue
        except OSError as err:
            unreadable(err)
            continue
        for root, dirs, files in os.walk(path, onerror=unreadable):
            dirs.sort()
            here = Path(root)
            for name in list(dirs):
                try:
                    if _has_frames(here / name):
                        found.append(here / name)
                        dirs.remove(name)  # a frame folder is a leaf
                except OSError as err:
                    unreadable(err)
                    dirs.remove(name)
            found.extend(here / f for f in sorted(files) if is_video(f))
        if not found and not any(p == path or path in p.parents for p, _ in problems):
            problems.append((path, f"{path}: no video files or frame folders found in this folder"))
        items.extend(sorted(found))
    return items, problems
