"""Speed of ``hdf predict`` on a 20-second 640×360 face video, stage by stage.

The video: there is no real recording in this repository, so it is built from the synthetic
generator's rendered faces (:func:`hdf_lightning.data.synthetic.render_clip`, 7 expressions in
turn, 176 px, with head motion and blinks) placed on a 640×360 background that drifts slowly, and
encoded as H.264 in MP4 at 25 fps. OpenCV's Haar cascade finds these faces.

The model: the paper-size HDFNet (X3D, width 2.0, depth 2.2, 2048-d head, four DAMs) at 16×112,
with random weights (speed does not depend on them), saved as a checkpoint and loaded the way
``hdf predict`` loads one. The run is the predictor itself (no process start-up), with the defaults
of ``hdf predict`` (2 s windows every 0.5 s, face detection on every 5th frame at 320 px).

Example::

    python benchmarks/bench_predict.py
    python benchmarks/bench_predict.py --seconds 20 --stride 1s --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hdf_lightning.data.synthetic import Timeline, render_clip, subject_identity
from hdf_lightning.data.video import write_video
from hdf_lightning.inference.checkpoint import load_model
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.predict import Predictor
from hdf_lightning.inference.results import STAGES
from hdf_lightning.inference.sources import open_source
from hdf_lightning.models import HDFNet

PAPER_NET = {
    "num_frames": 16,
    "width_factor": 2.0,
    "depth_factor": 2.2,
    "head_dim": 2048,
    "dropout": 0.5,
    "dam_stages": [1, 2, 3, 4],
}


def make_video(path: Path, *, seconds: float, fps: int = 25, face: int = 176) -> None:
    """A 640×360 H.264 video with one synthetic face changing expression every few seconds."""
    total = round(seconds * fps)
    per_label = -(-total // 7)
    identity = subject_identity(0, 3)
    faces = np.concatenate(
        [
            render_clip(
                label,
                num_frames=per_label,
                image_size=face,
                identity=identity,
                timeline=Timeline.centred(per_label),
                seed=label,
            )
            for label in range(7)
        ]
    )[:total]
    t = np.arange(total) / fps
    frames = np.empty((total, 360, 640, 3), dtype=np.uint8)
    ramp = np.linspace(70, 130, 640, dtype=np.float32)[None, :, None]
    for i in range(total):
        frames[i] = (ramp + 10 * np.sin(t[i] / 3)).clip(0, 255).astype(np.uint8)
        x = int(232 + 60 * np.sin(2 * np.pi * t[i] / 10))  # the face drifts left and right
        y = int(92 + 15 * np.sin(2 * np.pi * t[i] / 7))
        frames[i, y : y + face, x : x + face] = faces[i]
    write_video(path, frames, fps=fps)


def benchmark_video(folder: Path, *, seconds: float) -> Path:
    """:func:`make_video` into ``folder/face_640x360.mp4``, saying how long it took."""
    video = folder / "face_640x360.mp4"
    start = time.perf_counter()
    make_video(video, seconds=seconds)
    print(f"wrote the benchmark video in {time.perf_counter() - start:.1f} s")
    return video


def paper_checkpoint(folder: Path) -> Path:
    """The paper-size HDFNet (16×112) with random weights, saved as ``hdf predict`` reads a
    checkpoint: ``folder/hdfnet_16x112.ckpt``."""
    torch.manual_seed(0)
    net = HDFNet(num_classes=7, **PAPER_NET)  # type: ignore[arg-type]
    ckpt = folder / "hdfnet_16x112.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"num_classes": 7},
            "datamodule_hyper_parameters": {
                "num_frames": 16,
                "crop_size": 112,
                "normalize": "kinetics",
            },
            "hdf_inference": {
                "net": {"class_path": "hdf_lightning.models.HDFNet", "init_args": PAPER_NET}
            },
        },
        ckpt,
    )
    return ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--window", default="2s")
    parser.add_argument("--stride", default="0.5s")
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--video", type=Path, default=None, help="use this video instead")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = args.video or benchmark_video(folder, seconds=args.seconds)
        ckpt = paper_checkpoint(folder)
        options = PredictOptions(
            window=args.window,
            stride=args.stride,
            detect_every=args.detect_every,
            batch_size=args.batch_size,
        )
        predictor = Predictor(load_model(ckpt), options)
        source = open_source(video, fps=25.0)
        with torch.inference_mode():  # warm-up: one batch, so that one-off costs are not timed
            predictor.net(torch.zeros(1, 3, 16, 112, 112))
        cpu = time.process_time()
        result = predictor.predict(source)
        cpu = time.process_time() - cpu

    t = result.times
    duration = result.duration
    faces = len(result.face_windows())
    print(
        f"video: {source.width}x{source.height}, {result.video_frames} frames, {duration:.1f} s at "
        f"{result.fps:g} fps; {len(result.windows)} windows ({args.window} every {args.stride}), "
        f"{faces} with a face"
    )
    print(f"model: HDFNet 16x112 (paper size), {torch.get_num_threads()} torch threads")
    print(f"{'stage':<8} {'seconds':>8} {'share':>7}")
    for stage in STAGES:
        value = getattr(t, stage)
        print(f"{stage:<8} {value:8.2f} {value / result.wall:7.1%}")
    other = result.wall - t.total
    print(f"{'other':<8} {other:8.2f} {other / result.wall:7.1%}")
    print(f"{'total':<8} {result.wall:8.2f}   (process CPU time {cpu:.2f} s)")
    print(
        f"{duration:.1f} s of video in {result.wall:.2f} s: {duration / result.wall:.2f}x real "
        f"time ({'faster' if result.wall < duration else 'SLOWER'} than the video's duration)"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at the "
        f"end, torch {torch.__version__}"
    )
    print("reproduce: python benchmarks/bench_predict.py " + shlex.join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
