"""The ``hdf predict`` command: options, the run over the inputs, the console lines and the
run's ``summary.json`` / ``summary.csv`` (the work itself is :mod:`~hdf_lightning.inference.predict`
for one video and :mod:`~hdf_lightning.inference.runner` for many)."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from hdf_lightning.data.video import VideoLength
from hdf_lightning.errors import RunFolderError, command_error
from hdf_lightning.inference.checkpoint import CheckpointError
from hdf_lightning.inference.options import (
    FIT_CONFIG,
    PredictOptions,
    add_options,
    command_parser,
    options_from,
)
from hdf_lightning.inference.predict import Predictor, build_predictor
from hdf_lightning.inference.runner import Job, Outcome, run_on_devices
from hdf_lightning.inference.sources import collect_inputs
from hdf_lightning.inference.writers import crop_records
from hdf_lightning.io import atomic_write_text, check_writable

__all__ = ["add_predict_arguments", "predict_main"]


def _output_name(path: Path, taken: set[str]) -> str:
    stem = path.stem if path.is_file() else path.name
    stem = stem or "video"
    name, count = stem, 1
    while name in taken:
        count += 1
        name = f"{stem}-{count}"
    taken.add(name)
    return name


def _line(record: dict[str, Any]) -> str:
    """The console line of one video's summary record."""
    t = record["timing_s"]
    cost = (
        f"{record['duration_s']:.1f} s of video in {t['total']:.1f} s (decode {t['decode']:.1f}, "
        f"detect {t['detect']:.1f}, crop {t['crop']:.1f}, model {t['model']:.1f})"
    )
    faces = f"{record['face_windows']}/{record['windows']} windows with a face"
    if record["probs"] is None:
        return f"FAIL {record['video']}: no face found ({faces}); {cost}"
    ranked = sorted(record["probs"].items(), key=lambda item: -item[1])
    runner = f", then {ranked[1][0]} {ranked[1][1]:.2f}" if len(ranked) > 1 else ""
    return f"ok   {record['video']}: {ranked[0][0]} {ranked[0][1]:.2f}{runner}; {faces}; {cost}"


def add_predict_arguments(parser: Any) -> None:
    """The flags of :class:`~hdf_lightning.inference.options.PredictOptions` and ``--threads``:
    the options ``hdf predict`` and ``hdf app`` share."""
    add_options(parser, PredictOptions)
    parser.add_argument("--threads", type=int | None, default=None, help="torch CPU threads")


def _parser() -> Any:
    parser = command_parser(
        "hdf predict",
        "Recognise facial expressions in your own videos: decode, find and crop the face, "
        "classify sliding windows, and write per-window and per-video probabilities "
        "(<out>/<video>.windows.jsonl/.csv, <video>.timeline.png, summary.json/.csv).",
        checkpoint=True,
    )
    parser.add_argument(
        "inputs", type=str, nargs="+", help="video files, folders of videos, frame folders"
    )
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder")
    add_predict_arguments(parser)
    parser.add_argument(
        "--workers", type=int, default=0, help="processes that decode, detect and crop (0: none)"
    )
    parser.add_argument(
        "--devices",
        type=list[str] | None,
        default=None,
        help="one process per device, videos dealt out, e.g. [cuda:0,cuda:1] (default: --device)",
    )
    parser.add_argument(
        "--overwrite", type=bool, default=False, help="redo videos whose outputs already exist"
    )
    return parser


def predict_main(argv: list[str]) -> int:
    """``hdf predict VIDEO_OR_FOLDER ... --ckpt_path CKPT [--out DIR]``; returns the exit code.

    0 when every video was classified, 1 when any input failed (each named on stderr and in
    ``summary.json``), 2 for a usage error (bad option, unusable checkpoint).
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cfg = _parser().parse_args(argv)
    try:
        options, devices, predictor = _setup(cfg)
    except (CheckpointError, RunFolderError, ValueError, FileNotFoundError) as err:
        return command_error("predict", err)
    mismatch = predictor.crop_mismatch()
    if mismatch is not None:
        print(f"WARN {mismatch}", file=sys.stderr)
    items, problems = collect_inputs([Path(p) for p in cfg.inputs])
    failed: list[dict[str, str]] = [{"video": str(p), "error": m} for p, m in problems]
    for _, message in problems:
        print(f"FAIL {message}", file=sys.stderr)
    taken: set[str] = set()
    jobs = [Job(i, path, _output_name(path, taken)) for i, path in enumerate(items)]
    outcomes = run_on_devices(
        jobs,
        predictor,
        cfg.out,
        devices=devices,
        workers=cfg.workers,
        overwrite=cfg.overwrite,
        config=cfg[FIT_CONFIG],
        threads=cfg.threads,
        report=report_outcome,
    )
    videos = _videos(outcomes, failed)
    summary = _summary(predictor, options, videos, failed, outcomes)
    _write_summary(cfg.out, summary, predictor.model.preprocessing.class_names)
    _print_totals(summary, cfg.out)
    return 1 if failed else 0


def _setup(cfg: Any) -> tuple[PredictOptions, list[str], Predictor]:
    """The options, the devices and the predictor of a parsed command line.

    Raises:
        ValueError: an option out of range; CheckpointError, RunFolderError, FileNotFoundError: an
            unusable checkpoint, output folder or detector.
    """
    options = options_from(PredictOptions, cfg)
    if cfg.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {cfg.workers}")
    if cfg.devices is not None and not cfg.devices:
        raise ValueError("--devices must name at least one device, e.g. [cuda:0,cuda:1]")
    check_writable(cfg.out, "--out")
    # the main process holds the network on the CPU when other processes use the devices
    devices: list[str] = cfg.devices or [options.device]
    main_options = options if len(devices) == 1 else replace(options, device="cpu")
    predictor = build_predictor(cfg.ckpt_path, cfg[FIT_CONFIG], main_options, cfg.threads)
    return options, devices, predictor


def _videos(outcomes: list[Outcome], failed: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The summary records of the videos that were read; adds the failures to ``failed``."""
    videos: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome.record is None:
            failed.append({"video": str(outcome.job.path), "error": outcome.error or "failed"})
            continue
        record = outcome.record
        videos.append(record)
        if record["status"] != "ok":
            error = f"{record['video']}: no face found in any window"
            failed.append({"video": record["video"], "error": error})
    return videos


def _summary(
    predictor: Predictor,
    options: PredictOptions,
    videos: list[dict[str, Any]],
    failed: list[dict[str, str]],
    outcomes: list[Outcome],
) -> dict[str, Any]:
    """The content of ``summary.json``."""
    model = predictor.model
    return {
        "checkpoint": str(model.path.resolve()),
        "network": model.net_config.get("class_path"),
        "preprocessing": model.preprocessing.to_dict(),
        **crop_records(predictor.face_crop, model),
        "options": {k: getattr(options, k) for k in options.__dataclass_fields__},
        "videos": videos,
        "failed": failed,
        "num_ok": sum(v["status"] == "ok" for v in videos),
        "num_failed": len(failed),
        "num_resumed": sum(o.resumed for o in outcomes),
    }


def _write_summary(out: Path, summary: dict[str, Any], names: tuple[str, ...]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _write_summary_csv(out / "summary.csv", summary["videos"], summary["failed"], names)


def _print_totals(summary: dict[str, Any], out: Path) -> None:
    failed = summary["failed"]
    total = summary["num_ok"] + len(failed)
    resumed = f" ({summary['num_resumed']} done before)" if summary["num_resumed"] else ""
    print(
        f"{total} input(s): {summary['num_ok']} classified{resumed}, {len(failed)} failed; "
        f"results in {out}/ (summary.json)"
    )
    if failed:
        print("failed:", file=sys.stderr)
        for item in failed:
            print(f"  {item['error']}", file=sys.stderr)


def report_outcome(outcome: Outcome) -> None:
    """Print one video's line as it finishes (``ok``, ``skip``, ``WARN`` and ``FAIL`` lines)."""
    if outcome.record is None:
        print(f"FAIL {outcome.error}", file=sys.stderr)
        return
    record = outcome.record
    if record.get("damaged"):
        length = VideoLength(
            Path(record["video"]),
            record["decoded_frames"],
            record["declared_frames"],
            record["fps"],
        )
        print(f"WARN {length.describe()}", file=sys.stderr)
    line = _line(record)
    if outcome.resumed:
        line = f"skip {record['video']}: done before for this checkpoint and these options"
    print(line, file=sys.stderr if record["status"] != "ok" else sys.stdout)


def _write_summary_csv(
    path: Path, videos: list[dict[str, Any]], failed: list[dict[str, str]], names: tuple[str, ...]
) -> None:
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(
        ["video", "status", "top_class", "top_prob", *(f"p_{n}" for n in names), "windows",
         "face_windows", "duration_s", "error"]
    )  # fmt: skip
    no_face = {f["video"] for f in failed}
    for v in videos:
        probs = v["probs"] or {}
        writer.writerow(
            [v["video"], v["status"], v["top_class"] or "", v["top_prob"] or "",
             *(probs.get(n, "") for n in names), v["windows"], v["face_windows"],
             v["duration_s"], "no face found in any window" if v["video"] in no_face else ""]
        )  # fmt: skip
    seen = {v["video"] for v in videos}
    for f in failed:
        if f["video"] not in seen:
            writer.writerow(
                [f["video"], "failed", "", "", *([""] * len(names)), "", "", "", f["error"]]
            )
    atomic_write_text(path, table.getvalue())
