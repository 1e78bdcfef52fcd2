"""The files ``hdf predict`` writes per video: ``<name>.windows.jsonl`` (a video header, one record
per window, a summary), ``<name>.windows.csv`` (one row per window) and ``<name>.timeline.png``,
each written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from hdf_lightning.data.face_crops import FaceCropRecord
from hdf_lightning.inference.checkpoint import LoadedModel
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.results import VideoResult, WindowResult
from hdf_lightning.io import atomic_write_text

__all__ = ["crop_records", "video_summary", "write_outputs"]

WINDOW_COLUMNS = (
    "video", "window", "start_s", "end_s", "start_frame", "end_frame", "face", "face_fraction",
    "face_x0", "face_y0", "face_x1", "face_y1", "top_class", "top_prob",
)  # fmt: skip
"""The columns of ``<name>.windows.csv`` before the per-class ``p_<class>`` and ``checkpoint``."""


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
    """The per-video record: mean probabilities over windows with a face and the top class.

    Its ``video_frames`` is the video's length in frames (the frames that decode); the clip
    length ``T`` is in the header's ``preprocessing``.
    """
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
        "video_frames": result.video_frames,
        **result.length_record(),
        "fps": round(result.fps, 4),
        "timing_s": {**result.times.to_dict(), "total": round(result.wall, 4)},
    }


def _video_header(
    result: VideoResult, model: LoadedModel, options: PredictOptions, run: dict[str, Any] | None
) -> dict[str, Any]:
    """The first JSONL record: the video, the checkpoint, the windows and the crops."""
    return {
        "record": "video",
        "video": str(result.path),
        "kind": result.kind,
        "fps": round(result.fps, 4),
        "video_frames": result.video_frames,
        **result.length_record(),
        "duration_s": round(result.duration, 4),
        "width": result.width,
        "height": result.height,
        "checkpoint": str(model.path.resolve()),
        "network": model.net_config.get("class_path"),
        "preprocessing": model.preprocessing.to_dict(),
        "class_names": list(model.preprocessing.class_names),
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


def _window_record(w: WindowResult, names: tuple[str, ...]) -> dict[str, Any]:
    """The JSONL record of one window."""
    top = None if w.probs is None else int(w.probs.argmax())
    return {
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


def _window_row(
    video: str, w: WindowResult, record: dict[str, Any], num_classes: int, checkpoint: str
) -> list[Any]:
    """The CSV row of one window (``record`` is its JSONL record, ``num_classes`` ``K``)."""
    face = w.probs is not None
    box: list[Any] = list(w.face_box) if face and w.face_box else [""] * 4
    cells: list[Any] = [""] * num_classes if w.probs is None else _round(w.probs)
    top_prob = "" if record["top_prob"] is None else record["top_prob"]
    return [
        video, w.window.index, record["start_s"], record["end_s"], w.window.start, w.window.end,
        int(face), w.face_fraction, *box, record["top_class"] or "", top_prob, *cells, checkpoint,
    ]  # fmt: skip


def _write_timeline(result: VideoResult, names: tuple[str, ...], path: Path) -> Path:
    """The timeline PNG of one video: class probabilities over its windows."""
    from hdf_lightning.inference.timeline import timeline_figure, write_png

    mean = result.mean_probs()
    verdict = "no face" if mean is None else f"{names[int(mean.argmax())]} {mean.max():.2f}"
    figure = timeline_figure(
        [w.start_s for w in result.windows],
        [w.end_s for w in result.windows],
        result.window_probs(len(names)),
        names,
        title=f"{result.path.name}: {verdict} (mean over windows with a face)",
        duration=result.duration,
    )
    return write_png(figure, path)


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
    names = model.preprocessing.class_names
    checkpoint = str(model.path.resolve())
    lines = [json.dumps(_video_header(result, model, options, run))]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow([*WINDOW_COLUMNS, *(f"p_{n}" for n in names), "checkpoint"])
    for w in result.windows:
        record = _window_record(w, names)
        lines.append(json.dumps(record))
        writer.writerow(_window_row(str(result.path), w, record, len(names), checkpoint))
    lines.append(json.dumps({"record": "summary", **video_summary(result, names)}))
    out.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": out / f"{name}.windows.jsonl", "csv": out / f"{name}.windows.csv"}
    atomic_write_text(paths["jsonl"], "\n".join(lines) + "\n")
    atomic_write_text(paths["csv"], table.getvalue())
    if options.timeline:
        paths["timeline"] = _write_timeline(result, names, out / f"{name}.timeline.png")
    return {k: str(v) for k, v in paths.items()}
