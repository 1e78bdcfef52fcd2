"""Face detection, tracking across frames and the square face crop.

The network was trained on DFEW-style face crops: a square around the face with some margin,
resized to a square (``load_size``). Inference on raw video must crop the same way, in three steps:

1. a :class:`FaceDetector` finds face boxes in (a subset of) frames;
2. :func:`track_faces` keeps one face per frame (the largest, then the one that overlaps the
   previous choice), interpolates the boxes between detections, holds them over short gaps and
   smooths centre and size across frames;
3. :func:`crop_square` cuts the square (side ``(1 + 2·margin)`` times the box) and resizes it.

:class:`FaceCropper` runs the three steps on a video (:class:`FaceOptions` are its settings); it is
the one implementation ``hdf predict`` and ``hdf data extract --faces`` share, so a network trained
on extracted crops sees the same crops at inference, and :meth:`FaceCropper.record` describes them
(:class:`~hdf_lightning.data.face_crops.FaceCropRecord`).

Detectors: ``opencv`` (:class:`HaarFaceDetector`, OpenCV's bundled frontal-face Haar cascade: runs
offline, nothing downloads), ``none`` (:class:`FullFrameDetector`: the video already is a face
crop, as DFEW's clips are) or the import path of any class with the :class:`FaceDetector`
interface (``my_package.MyDetector``), built without arguments.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from hdf_lightning.data.face_crops import FRAME_SOURCE, FaceCropRecord
from hdf_lightning.data.opencv import opencv
from hdf_lightning.imports import import_object

if TYPE_CHECKING:
    from hdf_lightning.inference.sources import FrameSource

__all__ = [
    "DETECTORS",
    "FaceCropper",
    "FaceDetector",
    "FaceOptions",
    "FaceTrack",
    "FullFrameDetector",
    "HaarFaceDetector",
    "StageClock",
    "crop_square",
    "make_detector",
    "track_faces",
]


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in one RGB frame.

    ``full_frame`` is True for detectors that do not look at the pixels (the whole frame is the
    face); the engine then skips detection and resizes whole frames, as the training loader does.
    """

    full_frame: bool

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """Face boxes of one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB.

        Returns:
            ``(N, 4)`` float32 boxes ``x0, y0, x1, y1`` in the frame's pixels (``N`` may be 0).
        """
        ...


class FullFrameDetector:
    """The ``none`` detector: every frame is one face (videos that are already face crops)."""

    full_frame = True

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """The whole frame as one box, ``(1, 4)``."""
        h, w = frame.shape[:2]
        return np.array([[0.0, 0.0, float(w), float(h)]], dtype=np.float32)


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (the XML file ships inside ``opencv-python-headless``).

    Args:
        cascade: file name inside ``cv2.data.haarcascades`` or a path to a cascade XML.
        scale_factor: image pyramid step of ``detectMultiScale``.
        min_neighbors: detections a face needs to be kept (higher: fewer false faces).
        min_size: smallest face side as a fraction of the frame's shorter side.

    The detector runs on whatever frame it is given; the prediction engine hands it frames
    downscaled to ``--detect_width`` (320 px by default), where it runs at about 90 frames/s on one
    CPU core.
    """

    full_frame = False

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.1,
    ) -> None:
        cv2 = opencv()
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        if not path.is_file():
            raise FileNotFoundError(f"Haar cascade not found: {cascade} (nor in {path.parent})")
        self._cv2 = cv2
        self._classifier = cv2.CascadeClassifier(str(path))
        if self._classifier.empty():
            raise ValueError(f"cannot load the Haar cascade {path}")
        if scale_factor <= 1.0 or min_neighbors < 0 or not 0.0 <= min_size < 1.0:
            raise ValueError(
                "expected scale_factor > 1, min_neighbors >= 0 and 0 <= min_size < 1, got "
                f"{scale_factor=}, {min_neighbors=}, {min_size=}"
            )
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) -> ``(N, 4)`` boxes, largest first."""
        cv2 = self._cv2
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(gray)
        side = max(1, round(self.min_size * min(gray.shape[:2])))
        found = self._classifier.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
        )
        if len(found) == 0:
            return np.zeros((0, 4), dtype=np.float32)
        xywh = np.asarray(found, dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return boxes[np.argsort(-(xywh[:, 2] * xywh[:, 3]), kind="stable")]


DETECTORS: dict[str, type] = {"opencv": HaarFaceDetector, "none": FullFrameDetector}
"""Names accepted by :func:`make_detector` besides import paths."""


def make_detector(spec: str) -> FaceDetector:
    """A detector from a name in :data:`DETECTORS` or an import path ``package.module.Class``.

    Raises:
        ValueError: unknown name, a path that does not import, or a class without ``detect``.
    """
    cls = DETECTORS.get(spec)
    if cls is None:
        if "." not in spec.strip(".") and ":" not in spec:
            raise ValueError(
                f"unknown face detector {spec!r}: expected one of {sorted(DETECTORS)} or an "
                "import path package.module.Class"
            )
        try:
            cls = import_object(spec)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f"cannot import the face detector {spec!r}: {err}") from err
    detector = cls()
    if not callable(getattr(detector, "detect", None)):
        raise ValueError(f"face detector {spec!r} has no detect(frame) method")
    if not hasattr(detector, "full_frame"):
        detector.full_frame = False
    return detector


# ------------------------------------------------------------------------------------- tracking


@dataclass(frozen=True)
class FaceTrack:
    """One face per frame of a video.

    Attributes:
        boxes: ``(N, 4)`` float32 square boxes ``x0, y0, x1, y1`` (the face, no margin) in the
            video's pixels; rows of frames without a face are NaN.
        found: ``(N,)`` bool, whether frame ``i`` has a face.
    """

    boxes: np.ndarray
    found: np.ndarray

    @property
    def video_frames(self) -> int:
        return len(self.found)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` (4,) with boxes ``b`` (N, 4) -> (N,)."""
    lo = np.maximum(a[:2], b[:, :2])
    hi = np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    area_a = np.prod(a[2:] - a[:2])
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 with edge padding, ``(N, C) -> (N, C)``."""
    if width <= 1 or len(values) <= 1:
        return values
    half = width // 2
    padded = np.concatenate([values[:1].repeat(half, 0), values, values[-1:].repeat(half, 0)])
    cumulative = np.cumsum(np.concatenate([np.zeros_like(values[:1]), padded]), axis=0)
    return (cumulative[2 * half + 1 :] - cumulative[: -2 * half - 1]) / (2 * half + 1)


def track_faces(
    video_frames: int,
    detections: dict[int, np.ndarray],
    *,
    max_gap: int,
    hold: int,
    smooth: int,
) -> FaceTrack:
    """One smoothed square face box per frame from detections on some frames.

    Args:
        video_frames: frames in the video ``N``.
        detections: frame index -> ``(M, 4)`` boxes found there (``M`` may be 0); frames not in
            the dict were not examined.
        max_gap: two frames with a face at most this far apart are joined by linear
            interpolation, also across examined frames where the detector missed the face.
        hold: a frame not joined so is given the box of the nearest frame with a face when that
            frame is at most ``hold`` frames away and no examined face-less frame is nearer.
        smooth: width in frames of the centred moving average applied to the box centre and side
            within each run of consecutive frames with a face (1: no smoothing).

    Returns:
        The :class:`FaceTrack`; boxes are squares (side = the larger side of the detection).
    """
    chosen: dict[int, np.ndarray] = {}
    previous: np.ndarray | None = None
    for i in sorted(detections):
        boxes = np.asarray(detections[i], dtype=np.float32).reshape(-1, 4)
        if not 0 <= i < video_frames or len(boxes) == 0:
            continue
        pick = int(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1).argmax())  # the largest face
        if previous is not None:
            overlap = _iou(previous, boxes)
            if overlap.max() > 0.2:  # the face followed so far, when it is still there
                pick = int(overlap.argmax())
        previous = boxes[pick]
        chosen[i] = boxes[pick]
    # (cx, cy, side) per frame with a face
    values = np.full((video_frames, 3), np.nan, dtype=np.float64)
    for i, box in chosen.items():
        values[i] = [
            (box[0] + box[2]) / 2,
            (box[1] + box[3]) / 2,
            max(box[2] - box[0], box[3] - box[1]),
        ]
    with_face = sorted(chosen)
    for a, b in itertools.pairwise(with_face):
        if 1 < b - a <= max_gap:
            w = np.linspace(0.0, 1.0, b - a + 1)[1:-1, None]
            values[a + 1 : b] = (1 - w) * values[a] + w * values[b]
    examined = np.array(sorted(i for i in detections if 0 <= i < video_frames), dtype=np.int64)
    faces = np.array(with_face, dtype=np.int64)
    if len(faces):
        for frame in np.flatnonzero(np.isnan(values[:, 0])).tolist():
            nearest = int(faces[np.abs(faces - frame).argmin()])
            distance = abs(nearest - frame)
            blocked = len(examined) and np.any(
                (np.abs(examined - frame) < distance) & ~np.isin(examined, faces)
            )
            if distance <= hold and not blocked:
                values[frame] = values[nearest]
    found = ~np.isnan(values[:, 0])
    # smooth within runs of consecutive face frames
    edges = np.flatnonzero(np.diff(np.concatenate([[0], found.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        values[start:stop] = _moving_average(values[start:stop], smooth)
    half = values[:, 2:3] / 2
    boxes = np.concatenate([values[:, :2] - half, values[:, :2] + half], axis=1).astype(np.float32)
    return FaceTrack(boxes=boxes, found=found)


def crop_square(
    frame: np.ndarray, box: np.ndarray | None, *, margin: float, size: int
) -> np.ndarray:
    """The face crop of a frame, as the training data was cropped.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        box: square face box ``x0, y0, x1, y1`` in the frame's pixels, or None for the whole frame
            (resized without keeping the aspect ratio, as the training loader resizes frames).
        margin: fraction of the box side added on each side (side ``(1 + 2·margin)·s``); parts
            outside the frame are black.
        size: output side ``S``.

    Returns:
        ``(S, S, 3)`` uint8 RGB (area interpolation when shrinking, bilinear when enlarging).
    """
    cv2 = opencv()
    if box is None:
        region = frame
    else:
        h, w = frame.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(1, round(float(box[2] - box[0]) * (1 + 2 * margin)))
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        x1, y1 = x0 + side, y0 + side
        inner = frame[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
        if inner.shape[:2] == (side, side):
            region = inner
        else:
            region = np.zeros((side, side, 3), dtype=np.uint8)
            if inner.size:
                oy, ox = max(y0, 0) - y0, max(x0, 0) - x0
                region[oy : oy + inner.shape[0], ox : ox + inner.shape[1]] = inner
    if region.shape[:2] == (size, size):
        return np.ascontiguousarray(region)
    shrink = region.shape[0] > size or region.shape[1] > size
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interpolation)


# ---------------------------------------------------------------------------- detect, track, crop


@dataclass
class FaceOptions:
    """How faces are found, followed and cropped (the ``--detector`` ... ``--min_face_fraction``
    options of ``hdf predict``, ``hdf app`` and ``hdf data extract --faces``).

    Attributes:
        detector: ``opencv`` (Haar cascade), ``none`` (the videos already are face crops) or an
            import path ``package.Class`` (see :func:`make_detector`).
        detect_every: run the detector on every ``detect_every``-th frame.
        detect_width: ... downscaled to this width in pixels.
        margin: crop margin per side, a fraction of the face box.
        smooth: frames of the moving average over box centre and side.
        max_gap: join detections at most this many frames apart (default ``2 × detect_every``).
        min_face_fraction: the fraction of frames with a face below which a window (``hdf
            predict``) or a clip (``hdf data extract --faces``) counts as having no face.
    """

    detector: str = "opencv"
    detect_every: int = 5
    detect_width: int = 320
    margin: float = 0.15
    smooth: int = 5
    max_gap: int | None = None
    min_face_fraction: float = 0.5

    def __post_init__(self) -> None:
        self.check_ranges(
            ("detect_every", self.detect_every >= 1, ">= 1"),
            ("detect_width", self.detect_width >= 32, ">= 32"),
            ("margin", 0.0 <= self.margin <= 2.0, "in [0, 2]"),
            ("smooth", self.smooth >= 1, ">= 1"),
            ("min_face_fraction", 0.0 < self.min_face_fraction <= 1.0, "in (0, 1]"),
        )
        if self.max_gap is not None and self.max_gap < 0:
            raise ValueError(f"--max_gap must be >= 0, got {self.max_gap}")

    def check_ranges(self, *checks: tuple[str, bool, str]) -> None:
        """Raise ``ValueError("--<name> must be <expected>, got <value>")`` for the first
        ``(name, ok, expected)`` check that failed (the options' flags have their names)."""
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"--{name} must be {expected}, got {getattr(self, name)}")

    @property
    def gap(self) -> int:
        """``max_gap``, or its default ``2 × detect_every``."""
        return self.max_gap if self.max_gap is not None else 2 * self.detect_every


@dataclass
class StageClock:
    """Seconds spent per stage of one video: :class:`FaceCropper` adds to ``decode``, ``detect``
    and ``crop``; a subclass adds its last stage as a field (``StageTimes.model`` of
    ``hdf predict``, ``ExtractTimes.write`` of ``hdf data extract --faces``)."""

    decode: float = 0.0
    detect: float = 0.0
    crop: float = 0.0

    @classmethod
    def stages(cls) -> tuple[str, ...]:
        """The stages, in the order the outputs list them (the fields)."""
        return tuple(f.name for f in fields(cls))

    def add(self, other: StageClock) -> None:
        """Add ``other``'s seconds stage by stage (``other`` of the same class)."""
        for stage in self.stages():
            setattr(self, stage, getattr(self, stage) + getattr(other, stage))

    def to_dict(self) -> dict[str, float]:
        """``{stage: seconds}`` rounded to 0.1 ms, as the outputs write them."""
        return {stage: round(getattr(self, stage), 4) for stage in self.stages()}

    @property
    def total(self) -> float:
        """Seconds over all stages."""
        return sum(getattr(self, stage) for stage in self.stages())


def _timed(iterator: Iterator[Any], times: StageClock) -> Iterator[Any]:
    """Yield from ``iterator``, adding the time spent inside it to ``times.decode``."""
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            times.decode += time.perf_counter() - start
            return
        times.decode += time.perf_counter() - start
        yield item


class FaceCropper:
    """Detect, track and crop the face of a video: the crops ``hdf predict`` classifies and
    ``hdf data extract --faces`` writes.

    Two passes over a :class:`~hdf_lightning.inference.sources.FrameSource`: :meth:`track` decodes
    every ``detect_every``-th frame at ``detect_width``, detects faces and tracks them over all
    frames (:func:`track_faces`); :meth:`crops` decodes the wanted frames at full size and cuts
    the square crop of each (:func:`crop_square`).

    Args:
        options: see :class:`FaceOptions`.
        detector: a :class:`FaceDetector` (default: built from ``options.detector``).
    """

    def __init__(self, options: FaceOptions, detector: FaceDetector | None = None) -> None:
        self.options = options
        self.detector = detector if detector is not None else make_detector(options.detector)

    @property
    def full_frame(self) -> bool:
        """The detector takes whole frames as the face (``--detector none``)."""
        return bool(self.detector.full_frame)

    def record(self, size: int) -> FaceCropRecord:
        """How the crops at side ``size`` are made."""
        o = self.options
        if self.full_frame:
            return FaceCropRecord(o.detector, None, size, None, None, None, None, FRAME_SOURCE)
        return FaceCropRecord(
            detector=o.detector,
            margin=float(o.margin),
            size=size,
            detect_every=o.detect_every,
            detect_width=o.detect_width,
            smooth=o.smooth,
            max_gap=o.gap,
            frame_source=FRAME_SOURCE,
        )

    def track(self, source: FrameSource, times: StageClock) -> FaceTrack:
        """Pass 1: faces on every ``detect_every``-th frame, tracked over all frames.

        The pass decodes the whole video, so it also counts the frames that decode, which is
        ``source.video_frames`` afterwards (without a detector, a counting pass does that).
        """
        k = self.options.detect_every
        if self.full_frame:
            start = time.perf_counter()
            n = source.video_frames
            times.decode += time.perf_counter() - start
            box = np.array([0.0, 0.0, source.width, source.height], dtype=np.float32)
            return FaceTrack(boxes=np.tile(box, (n, 1)), found=np.ones(n, dtype=bool))
        detections: dict[int, np.ndarray] = {}
        frames = source.read(lambda i: i % k == 0, width=self.options.detect_width)
        for i, small in _timed(frames, times):
            start = time.perf_counter()
            boxes = np.asarray(self.detector.detect(small), dtype=np.float32).reshape(-1, 4)
            detections[i] = boxes * (source.width / small.shape[1])
            times.detect += time.perf_counter() - start
        gap, smooth = self.options.gap, self.options.smooth
        return track_faces(source.video_frames, detections, max_gap=gap, hold=k - 1, smooth=smooth)

    def crops(
        self,
        source: FrameSource,
        track: FaceTrack,
        wanted: Callable[[int], bool],
        *,
        size: int,
        times: StageClock,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Pass 2: ``(i, (size, size, 3) uint8 RGB crop)`` of the frames ``wanted(i)`` accepts, in
        order (whole frames resized for a full-frame detector)."""
        for i, frame in _timed(source.read(wanted), times):
            start = time.perf_counter()
            box = None if self.full_frame else track.boxes[i]
            crop = crop_square(frame, box, margin=self.options.margin, size=size)
            times.crop += time.perf_counter() - start
            yield i, crop
