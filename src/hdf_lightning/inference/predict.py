"""``hdf predict``: expression probabilities for a user's own videos, window by window.

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
4. **write** ``<stem>.windows.jsonl``, ``<stem>.windows.csv`` and ``<stem>.timeline.png`` per video
   and ``summary.json`` / ``summary.csv`` for the run, each written atomically.

Bad inputs (missing, unreadable, not a video, shorter than a window, no face) are reported one line
each, naming the file; the other videos are still processed and the exit code is 1.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdf_lightning.data.face_crops import FaceCropRecord
from hdf_lightning.data.transforms import ClipEval
from hdf_lightning.data.video import VideoLength
from hdf_lightning.inference.checkpoint import (
    LoadedModel,
    Preprocessing,
    load_model,
)
from hdf_lightning.inference.face import (
    FaceCropper,
    FaceDetector,
    FaceOptions,
    FaceTrack,
    add_face_arguments,
    make_detector,
)
from hdf_lightning.inference.sources import FrameSource
from hdf_lightning.inference.windows import ShortVideoError, Window, parse_span, sliding_windows
from hdf_lightning.io import atomic_write_text

__all__ = [
    "PredictOptions",
    "Predictor",
    "StageTimes",
    "VideoPreparer",
    "VideoResult",
    "WindowResult",
    "add_predict_options",
    "build_predictor",
    "predict_options",
    "video_summary",
    "write_outputs",
]

log = logging.getLogger(__name__)

STAGES = ("decode", "detect", "crop", "model")


@dataclass
class PredictOptions(FaceOptions):
    """Options of ``hdf predict`` (the CLI flags of the same names; the face options are
    :class:`~hdf_lightning.inference.face.FaceOptions`')."""

    window: str = "2s"
    stride: str = "0.5s"
    fps: float = 25.0
    batch_size: int = 1  # per clip, batch 1 is the cheapest on a CPU; raise it on a GPU
    device: str = "cpu"
    timeline: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ranges(
            ("fps", self.fps > 0, "> 0"), ("batch_size", self.batch_size >= 1, ">= 1")
        )


@dataclass
class StageTimes:
    """Seconds spent per stage of one video."""

    decode: float = 0.0
    detect: float = 0.0
    crop: float = 0.0
    model: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 4) for k in STAGES}

    @property
    def total(self) -> float:
        return sum(getattr(self, k) for k in STAGES)


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
    """The windows of one video and what it cost."""

    path: Path
    kind: str
    fps: float
    num_frames: int
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
        return self.num_frames / self.fps

    @property
    def damaged(self) -> bool:
        """The video decodes to fewer frames than its container declares (see ``video_length``)."""
        return self.video_length is not None and self.video_length.damaged

    def length_record(self) -> dict[str, Any]:
        """``decoded_frames``, ``declared_frames`` and ``damaged`` for the outputs."""
        if self.video_length is None:  # a frame folder: what is there is what it declares
            return {"decoded_frames": self.num_frames, "declared_frames": None, "damaged": False}
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
        options, pre = self.options, self.preprocessing
        length = parse_span(options.window, source.fps, name="--window")
        stride = parse_span(options.stride, source.fps, name="--stride")
        times = StageTimes()
        track = self.faces.track(source, times)  # also counts the frames that decode
        num_frames = source.num_frames
        try:
            windows = sliding_windows(
                num_frames, length, stride, pre.num_frames, sampler=pre.sampler
            )
        except ShortVideoError as err:
            raise ShortVideoError(
                f"{source.path}: {num_frames} frames ({num_frames / source.fps:.2f} s "
                f"at {source.fps:g} fps), shorter than one window ({options.window} = {length} "
                "frames); use a shorter --window"
            ) from err
        result = VideoResult(
            path=source.path,
            kind="frames" if source.path.is_dir() else "video",
            fps=source.fps,
            num_frames=num_frames,
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
            slots = np.array(window.indices)
            has = track.found[slots]
            fraction = float(has.mean())
            box = None
            if fraction >= options.min_face_fraction:
                faces = slots[has]
                plan[window.index] = [int(faces[np.abs(faces - j).argmin()]) for j in slots]
                if not self.detector.full_frame:
                    box = [round(float(v), 1) for v in track.boxes[faces].mean(axis=0)]
                else:
                    box = [0.0, 0.0, float(source.width), float(source.height)]
            result.windows.append(
                WindowResult(
                    window=window,
                    start_s=window.start / source.fps,
                    end_s=window.end / source.fps,
                    face_fraction=round(fraction, 4),
                    face_box=box,
                )
            )
        return result, plan

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
        times = result.times
        pending: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            if pending:
                probs = self._classify([clip for _, clip in pending], times)
                for (index, _), p in zip(pending, probs, strict=True):
                    result.windows[index].probs = p
                pending.clear()

        for item in self.preparer.window_clips(source, result, plan):
            pending.append(item)
            if len(pending) == self.options.batch_size:
                flush()
        flush()
        finish_windows(result, plan)
        result.wall = time.perf_counter() - wall
        return result


# ------------------------------------------------------------------------------------- output


def _round(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def _probs_dict(names: tuple[str, ...], probs: np.ndarray | None) -> dict[str, float] | None:
    return None if probs is None else dict(zip(names, _round(probs), strict=True))


def crop_records(face_crop: FaceCropRecord | None, model: LoadedModel) -> dict[str, Any]:
    """``face_crop`` (the crops made here) and ``checkpoint_face_crop`` (those the checkpoint
    was trained on; None when it does not record them) for the outputs."""
    trained = model.face_crop
    return {
        "face_crop": None if face_crop is None else face_crop.to_dict(),
        "checkpoint_face_crop": None if trained is None else trained.to_dict(),
    }


def video_summary(result: VideoResult, names: tuple[str, ...]) -> dict[str, Any]:
    """The per-video record: mean probabilities over windows with a face and the top class."""
    mean = result.mean_probs()
    top = None if mean is None else int(mean.argmax())
    return {
        "video": str(result.path),
        "status": "ok" if mean is not None else "no_face",
        "top_class": None if top is None else names[top],
        "top_prob": None if mean is None or top is None else round(float(mean[top]), 6),
        "probs": _probs_dict(names, mean),
        "windows": len(result.windows),
        "face_windows": len(result.face_windows()),
        "duration_s": round(result.duration, 4),
        "num_frames": result.num_frames,
        **result.length_record(),
        "fps": round(result.fps, 4),
        "timing_s": {**result.times.to_dict(), "total": round(result.wall, 4)},
    }


def write_outputs(
    result: VideoResult,
    out: Path,
    name: str,
    model: LoadedModel,
    options: PredictOptions,
    *,
    run: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``<name>.windows.jsonl``, ``<name>.windows.csv`` and ``<name>.timeline.png``.

    ``run`` (:func:`~hdf_lightning.inference.runner.run_fingerprint`) goes into the JSONL header:
    a later run with the same fingerprint skips the video.

    Returns:
        The paths written, by kind (``jsonl``, ``csv``, ``timeline``).
    """
    pre = model.preprocessing
    names = pre.class_names
    header = {
        "record": "video",
        "video": str(result.path),
        "kind": result.kind,
        "fps": round(result.fps, 4),
        "num_frames": result.num_frames,
        **result.length_record(),
        "duration_s": round(result.duration, 4),
        "width": result.width,
        "height": result.height,
        "checkpoint": str(model.path.resolve()),
        "network": model.net_config.get("class_path"),
        "preprocessing": pre.to_dict(),
        "class_names": list(names),
        "window": {
            "length_frames": result.length,
            "stride_frames": result.stride,
            "length_s": round(result.length / result.fps, 4),
            "stride_s": round(result.stride / result.fps, 4),
        },
        **crop_records(result.face_crop, model),
        "min_face_fraction": options.min_face_fraction,
        "run": run,
    }
    lines = [json.dumps(header)]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(
        [
            "video", "window", "start_s", "end_s", "start_frame", "end_frame", "face",
            "face_fraction", "face_x0", "face_y0", "face_x1", "face_y1", "top_class", "top_prob",
            *(f"p_{n}" for n in names), "checkpoint",
        ]
    )  # fmt: skip
    for w in result.windows:
        top = None if w.probs is None else int(w.probs.argmax())
        row = {
            "record": "window",
            "window": w.window.index,
            "start_s": round(w.start_s, 4),
            "end_s": round(w.end_s, 4),
            "start_frame": w.window.start,
            "end_frame": w.window.end,
            "frames": list(w.window.indices),
            "face": w.probs is not None,
            "face_fraction": w.face_fraction,
            "face_box": w.face_box if w.probs is not None else None,
            "probs": _probs_dict(names, w.probs),
            "top_class": None if top is None else names[top],
            "top_prob": None if top is None or w.probs is None else round(float(w.probs[top]), 6),
        }
        lines.append(json.dumps(row))
        box: list[Any] = list(w.face_box) if w.probs is not None and w.face_box else [""] * 4
        cells: list[Any] = [""] * len(names) if w.probs is None else _round(w.probs)
        writer.writerow(
            [
                str(result.path), w.window.index, row["start_s"], row["end_s"], w.window.start,
                w.window.end, int(w.probs is not None), w.face_fraction, *box,
                row["top_class"] or "", "" if row["top_prob"] is None else row["top_prob"],
                *cells, str(model.path.resolve()),
            ]
        )  # fmt: skip
    lines.append(json.dumps({"record": "summary", **video_summary(result, names)}))
    out.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": out / f"{name}.windows.jsonl", "csv": out / f"{name}.windows.csv"}
    atomic_write_text(paths["jsonl"], "\n".join(lines) + "\n")
    atomic_write_text(paths["csv"], table.getvalue())
    if options.timeline:
        from hdf_lightning.inference.timeline import timeline_figure, write_png

        table_probs = result.window_probs(len(names))
        mean = result.mean_probs()
        verdict = "no face" if mean is None else f"{names[int(mean.argmax())]} {mean.max():.2f}"
        figure = timeline_figure(
            [w.start_s for w in result.windows],
            [w.end_s for w in result.windows],
            table_probs,
            names,
            title=f"{result.path.name}: {verdict} (mean over windows with a face)",
            duration=result.duration,
        )
        paths["timeline"] = write_png(figure, out / f"{name}.timeline.png")
    return {k: str(v) for k, v in paths.items()}


# ---------------------------------------------------------------------------------------- CLI


def add_predict_options(parser: Any) -> None:
    """Add the options of :class:`PredictOptions` (and ``--threads``) to a jsonargparse parser:
    the one declaration ``hdf predict`` and ``hdf app`` share."""
    defaults = PredictOptions()
    parser.add_argument("--window", type=str, default=defaults.window, help="'2s' or '50f'")
    parser.add_argument("--stride", type=str, default=defaults.stride, help="'0.5s' or '12f'")
    add_face_arguments(parser)
    parser.add_argument("--fps", type=float, default=defaults.fps, help="fps of frame folders")
    parser.add_argument(
        "--batch_size", type=int, default=defaults.batch_size, help="windows per network call"
    )
    parser.add_argument("--device", type=str, default=defaults.device)
    parser.add_argument("--threads", type=int | None, default=None, help="torch CPU threads")
    parser.add_argument("--timeline", type=bool, default=True, help="write the timeline PNGs")


def predict_options(cfg: Any) -> PredictOptions:
    """The :class:`PredictOptions` of parsed :func:`add_predict_options` flags.

    Raises:
        ValueError: a value out of range or a window/stride that does not parse.
    """
    options = PredictOptions(
        **FaceOptions.face_fields(cfg),
        window=cfg.window,
        stride=cfg.stride,
        fps=cfg.fps,
        batch_size=cfg.batch_size,
        device=cfg.device,
        timeline=cfg.timeline,
    )
    parse_span(options.window, 25.0, name="--window")
    parse_span(options.stride, 25.0, name="--stride")
    return options


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
