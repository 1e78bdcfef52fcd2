"""What ``hdf predict`` finds in one video: the windows, their faces and probabilities, and the
time each stage took (:class:`VideoResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hdf_lightning.data.face_crops import FaceCropRecord
from hdf_lightning.data.video import VideoLength
from hdf_lightning.inference.face import FaceTrack, StageClock
from hdf_lightning.inference.windows import Window

__all__ = ["STAGES", "StageTimes", "VideoResult", "WindowResult"]


@dataclass
class StageTimes(StageClock):
    """Seconds spent per stage of one video by ``hdf predict``: decoding, face detection,
    cropping and the model."""

    model: float = 0.0


STAGES = StageTimes.stages()
"""``("decode", "detect", "crop", "model")``: the stages of :class:`StageTimes`."""


@dataclass
class WindowResult:
    """One window: its span, its face and, when it has one, the class probabilities ``(K,)``."""

    window: Window
    start_s: float
    end_s: float
    face_fraction: float
    face_box: list[float] | None
    probs: np.ndarray | None = None

    @property
    def face(self) -> bool:
        return self.probs is not None or self.face_box is not None


@dataclass
class VideoResult:
    """The windows of one video and what it cost.

    Attributes:
        path: the video file or frame folder.
        kind: ``video`` or ``frames``.
        fps: its frame rate.
        video_frames: the frames of the video that decode (its length; the clip length ``T`` is
            the checkpoint's ``num_frames``).
        width: frame width in pixels.
        height: frame height in pixels.
        length: window length in frames.
        stride: frames between window starts.
        video_length: decoded and declared lengths of a video file (None for a frame folder).
        face_crop: how the faces were cropped.
        windows: one result per window.
        times: seconds per stage.
        wall: seconds the whole video took.
    """

    path: Path
    kind: str
    fps: float
    video_frames: int
    width: int
    height: int
    length: int
    stride: int
    video_length: VideoLength | None = None
    face_crop: FaceCropRecord | None = None
    windows: list[WindowResult] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)
    wall: float = 0.0
    track: FaceTrack | None = field(default=None, repr=False)
    """The face box of every frame (not written to the outputs; the web page draws it)."""

    @property
    def duration(self) -> float:
        return self.video_frames / self.fps

    @property
    def damaged(self) -> bool:
        """The video decodes to fewer frames than its container declares (see ``video_length``)."""
        return self.video_length is not None and self.video_length.damaged

    def length_record(self) -> dict[str, Any]:
        """``decoded_frames``, ``declared_frames`` and ``damaged`` for the outputs."""
        if self.video_length is None:  # a frame folder: what is there is what it declares
            return {"decoded_frames": self.video_frames, "declared_frames": None, "damaged": False}
        return self.video_length.to_dict()

    def window_probs(self, num_classes: int) -> np.ndarray:
        """``(W, K)`` probabilities of every window; rows of windows without a face are NaN."""
        return np.array(
            [w.probs if w.probs is not None else np.full(num_classes, np.nan) for w in self.windows]
        )

    def face_windows(self) -> list[WindowResult]:
        return [w for w in self.windows if w.probs is not None]

    def mean_probs(self) -> np.ndarray | None:
        """Mean probabilities over the windows with a face ``(K,)``, or None without any."""
        faces = self.face_windows()
        if not faces:
            return None
        return np.stack([w.probs for w in faces if w.probs is not None]).mean(axis=0)
