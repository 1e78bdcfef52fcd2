"""``hdf predict`` on one video: :class:`VideoPreparer` finds the face and cuts the window clips,
:class:`Predictor` classifies them.

For each video file or frame folder:

1. **detect** (pass 1): decode every ``detect_every``-th frame downscaled to ``detect_width`` and
   find faces; :func:`~hdf_lightning.inference.face.track_faces` turns the detections into one
   smoothed square box per frame (skipped for ``--detector none``);
2. **windows**: windows of ``--window`` length every ``--stride``
   (:func:`~hdf_lightning.inference.windows.sliding_windows`), each sampled to the checkpoint's
   ``T`` frames as at evaluation; a window whose sampled frames have a face in fewer than
   ``--min_face_fraction`` of them is reported as ``face: false`` with no probabilities;
3. **crop and classify** (pass 2): decode the frames the windows use, cut the square face crop with
   margin at ``load_size`` (as the DFEW-style training crops), resize and normalise as the
   DataModule did at evaluation, and run the network on batches of windows;
4. **write** (:mod:`~hdf_lightning.inference.writers`) ``<stem>.windows.jsonl``,
   ``<stem>.windows.csv`` and ``<stem>.timeline.png`` per video; the command
   (:mod:`~hdf_lightning.inference.predict_cli`) adds ``summary.json`` / ``summary.csv``.

Bad inputs (missing, unreadable, not a video, shorter than a window, no face) are reported one line
each, naming the file; the other videos are still processed and the exit code is 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TypeVar

import numpy as np
import torch

from hdf_lightning.data.face_crops import FaceCropRecord
from hdf_lightning.data.transforms import ClipEval
from hdf_lightning.inference.checkpoint import LoadedModel, Preprocessing, load_model
from hdf_lightning.inference.face import FaceCropper, FaceDetector, FaceTrack, make_detector
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.results import StageTimes, VideoResult, WindowResult
from hdf_lightning.inference.sources import FrameSource
from hdf_lightning.inference.windows import ShortVideoError, Window, parse_span, sliding_windows

__all__ = ["Predictor", "VideoPreparer", "build_predictor", "finish_windows"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class VideoPreparer:
    """The CPU side of :class:`Predictor`: detect and track the face, plan the windows and cut
    their clips. Needs no network, so worker processes run it (``hdf predict --workers``).

    Args:
        options: see :class:`PredictOptions`.
        preprocessing: the checkpoint's (``T``, sampler, ``load_size``).
        detector: a :class:`FaceDetector` (default: built from ``options.detector``).
    """

    def __init__(
        self,
        options: PredictOptions,
        preprocessing: Preprocessing,
        detector: FaceDetector | None = None,
    ) -> None:
        self.options = options
        self.preprocessing = preprocessing
        self.faces = FaceCropper(options, detector)
        self.detector = self.faces.detector

    @property
    def face_crop(self) -> FaceCropRecord:
        """How faces are cropped (at the checkpoint's ``load_size``)."""
        return self.faces.record(self.preprocessing.load_size)

    def prepare(self, source: FrameSource) -> tuple[VideoResult, dict[int, list[int]]]:
        """Pass 1 and the window plan: the result without probabilities, and for each window
        with a face the frame that feeds each of its ``T`` slots (face-less slots borrow the
        nearest frame of the same window that has one).

        Raises:
            InputError: the video cannot be decoded.
            ShortVideoError: the video is shorter than one window.
        """
        length = parse_span(self.options.window, source.fps, name="--window")
        stride = parse_span(self.options.stride, source.fps, name="--stride")
        times = StageTimes()
        track = self.faces.track(source, times)  # also counts the frames that decode
        windows = self._windows(source, length, stride)
        result = VideoResult(
            path=source.path,
            kind="frames" if source.path.is_dir() else "video",
            fps=source.fps,
            video_frames=source.video_frames,
            width=source.width,
            height=source.height,
            length=length,
            stride=stride,
            video_length=source.length,
            face_crop=self.face_crop,
            times=times,
            track=track,
        )
        plan: dict[int, list[int]] = {}
        for window in windows:
            window_result, frames = self._face_of(window, track, source)
            result.windows.append(window_result)
            if frames is not None:
                plan[window.index] = frames
        return result, plan

    def _windows(self, source: FrameSource, length: int, stride: int) -> list[Window]:
        """The sliding windows of a video of ``source.video_frames`` frames, each sampled to the
        checkpoint's ``T`` frames."""
        pre, video_frames = self.preprocessing, source.video_frames
        try:
            return sliding_windows(
                video_frames, length, stride, pre.num_frames, sampler=pre.sampler
            )
        except ShortVideoError as err:
            raise ShortVideoError(
                f"{source.path}: {video_frames} frames ({video_frames / source.fps:.2f} s "
                f"at {source.fps:g} fps), shorter than one window ({self.options.window} = "
                f"{length} frames); use a shorter --window"
            ) from err

    def _face_of(
        self, window: Window, track: FaceTrack, source: FrameSource
    ) -> tuple[WindowResult, list[int] | None]:
        """A window's face (its share of frames with one, the mean box) and, when the share
        reaches ``min_face_fraction``, the frame feeding each of its ``T`` slots (else None)."""
        slots = np.array(window.indices)
        has = track.found[slots]
        fraction = float(has.mean())
        box, frames = None, None
        if fraction >= self.options.min_face_fraction:
            faces = slots[has]
            frames = [int(faces[np.abs(faces - j).argmin()]) for j in slots]
            if not self.detector.full_frame:
                box = [round(float(v), 1) for v in track.boxes[faces].mean(axis=0)]
            else:
                box = [0.0, 0.0, float(source.width), float(source.height)]
        result = WindowResult(
            window=window,
            start_s=window.start / source.fps,
            end_s=window.end / source.fps,
            face_fraction=round(fraction, 4),
            face_box=box,
        )
        return result, frames

    def window_clips(
        self, source: FrameSource, result: VideoResult, plan: dict[int, list[int]]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Pass 2: ``(window index, (T, L, L, 3) uint8 clip)`` of every planned window, in the
        order their last frame is decoded; only the crops still needed are kept in memory."""
        if not plan or result.track is None:
            return
        needed = {j for frames in plan.values() for j in frames}
        order = sorted(plan, key=lambda w: max(plan[w]))
        crops: dict[int, np.ndarray] = {}
        cursor = 0
        faces = self.faces.crops(
            source,
            result.track,
            needed.__contains__,
            size=self.preprocessing.load_size,
            times=result.times,
        )
        for i, crop in faces:
            crops[i] = crop
            while cursor < len(order) and max(plan[order[cursor]]) <= i:
                index = order[cursor]
                cursor += 1
                yield index, np.stack([crops[j] for j in plan[index]])
            if cursor < len(order):
                keep = min(min(plan[w]) for w in order[cursor:])
                for j in [j for j in crops if j < keep]:
                    del crops[j]


def finish_windows(result: VideoResult, plan: dict[int, list[int]]) -> None:
    """Windows that were planned but got no clip (the decoder delivered fewer frames in pass 2
    than in pass 1) are marked face-less, with a warning."""
    missing = [index for index in plan if result.windows[index].probs is None]
    if missing:
        log.warning(
            "%s: only part of the video could be decoded; %d window(s) left without probabilities",
            result.path,
            len(missing),
        )
        for index in missing:
            result.windows[index].face_box = None


class Predictor:
    """Runs the network of a checkpoint on videos.

    Args:
        model: the network and its preprocessing (:func:`load_model`).
        options: see :class:`PredictOptions`.
        detector: a :class:`FaceDetector` (default: built from ``options.detector``).
    """

    def __init__(
        self,
        model: LoadedModel,
        options: PredictOptions,
        detector: FaceDetector | None = None,
    ) -> None:
        self.model = model
        self.options = options
        self.preparer = VideoPreparer(options, model.preprocessing, detector)
        self.faces = self.preparer.faces
        self.detector = self.preparer.detector
        self.device = torch.device(options.device)
        self.net = model.net.to(self.device).eval()
        pre = model.preprocessing
        self.transform = ClipEval(size=pre.crop_size, mean=pre.mean, std=pre.std).to(self.device)

    @property
    def face_crop(self) -> FaceCropRecord:
        """How this predictor crops faces (at the checkpoint's ``load_size``)."""
        return self.preparer.face_crop

    def crop_mismatch(self) -> str | None:
        """One line when the checkpoint was trained on face crops made differently from this
        predictor's, else None (also when the checkpoint does not record its crops)."""
        trained = self.model.face_crop
        if trained is None:
            return None
        differences = trained.differences(self.face_crop)
        if not differences:
            return None
        listed = ", ".join(f"{name} {mine} (this run: {ours})" for name, mine, ours in differences)
        flags = [f"--{name} {mine}" for name, mine, _ in differences if hasattr(self.options, name)]
        advice = f": pass {' '.join(flags)} to crop as in training" if flags else ""
        return (
            f"{self.model.path} was trained on face crops made with {listed}; crops made "
            f"differently can lower the accuracy{advice}"
        )

    def classify(self, clips: list[np.ndarray]) -> np.ndarray:
        """``B`` clips ``(T, L, L, 3)`` uint8 -> probabilities ``(B, K)``."""
        batch = torch.from_numpy(np.stack(clips)).to(self.device)  # (B, T, L, L, 3)
        batch = batch.permute(0, 4, 1, 2, 3)  # (B, 3, T, L, L)
        with torch.inference_mode():
            logits, _ = self.net(self.transform(batch))
            return logits.float().softmax(-1).cpu().numpy()

    def _classify(self, clips: list[np.ndarray], times: StageTimes) -> np.ndarray:
        start = time.perf_counter()
        probs = self.classify(clips)
        times.model += time.perf_counter() - start
        return probs

    def predict(self, source: FrameSource) -> VideoResult:
        """Probabilities of every window of one video, in batches of ``options.batch_size``.

        Raises:
            InputError: the video cannot be decoded.
            ShortVideoError: the video is shorter than one window.
        """
        wall = time.perf_counter()
        result, plan = self.preparer.prepare(source)
        clips = self.preparer.window_clips(source, result, plan)
        for batch in _batched(clips, self.options.batch_size):
            probs = self._classify([clip for _, clip in batch], result.times)
            for (index, _), p in zip(batch, probs, strict=True):
                result.windows[index].probs = p
        finish_windows(result, plan)
        result.wall = time.perf_counter() - wall
        return result


def _batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_predictor(
    ckpt_path: str, config: str | None, options: PredictOptions, threads: int | None = None
) -> Predictor:
    """Load a checkpoint and build its :class:`Predictor` (``hdf predict``, ``hdf app``).

    Raises:
        CheckpointError: the checkpoint cannot be used (one line naming it).
        ValueError, FileNotFoundError: an unusable detector.
    """
    detector = make_detector(options.detector)
    model = load_model(ckpt_path, config=config)
    if threads is not None:
        torch.set_num_threads(threads)
    return Predictor(model, options, detector)
