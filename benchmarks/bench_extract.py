"""Speed of ``hdf data extract --faces`` on 20-second 640×360 face videos, stage by stage.

The video is the one of ``bench_predict.py`` (the synthetic generator's rendered faces, 176 px,
changing expression and drifting over a 640×360 background, H.264 in MP4 at 25 fps: there is no
real recording in this repository); ``--copies`` copies of it are extracted with the defaults of
``hdf data extract --faces`` (224-px crops, detection on every 5th frame at 320 px, JPEG quality
95), first by one process and then by ``--workers`` processes, each into a fresh folder. Printed:
per stage (decode, detect, crop, JPEG write; summed inside the processes) the seconds per video,
the wall time and the video seconds extracted per wall second ("× real time").

Example::

    python benchmarks/bench_extract.py
    python benchmarks/bench_extract.py --copies 4 --workers 2 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from bench_predict import benchmark_video
from hdf_lightning.inference.face_extract import STAGES, FaceExtractOptions, extract_faces


def run(videos: Path, out: Path, workers: int, seconds: float) -> dict[str, float]:
    """Extract every video of ``videos`` into ``out``; print and return the figures."""
    shutil.rmtree(out, ignore_errors=True)
    result = extract_faces(videos, out, FaceExtractOptions(), workers=workers, progress=False)
    if result["failed"]:
        raise SystemExit(f"extraction failed: {result['failed']}")
    count = result["extracted"]
    wall = result["wall_s"]
    stages = {stage: result["timing_s"][stage] / count for stage in STAGES}
    video_s = count * seconds
    cells = "  ".join(f"{stage} {value:5.2f}" for stage, value in stages.items())
    print(
        f"{workers} worker(s): {count} videos, {result['frames']} crops; per video (s): {cells}"
        f"  (sum {sum(stages.values()):5.2f}); wall {wall:6.2f} s for {video_s:.0f} s of video: "
        f"{video_s / wall:5.2f}x real time"
    )
    return {"wall": wall, "speed": video_s / wall, **stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the video")
    parser.add_argument("--copies", type=int, default=4, help="videos extracted per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--video", type=Path, default=None, help="use this video instead")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = args.video or benchmark_video(folder, seconds=args.seconds)
        videos = folder / "videos"
        videos.mkdir()
        for i in range(args.copies):
            shutil.copyfile(video, videos / f"face{i + 1}{video.suffix}")
        print(
            f"{args.copies} copies of a {args.seconds:g} s 640x360 H.264 video; crops 224 px, "
            "detection on every 5th frame at 320 px, JPEG quality 95"
        )
        single = run(videos, folder / "out1", 1, args.seconds)
        multi = run(videos, folder / "out2", args.workers, args.seconds)
    print(
        f"{args.workers} workers vs 1: x{single['wall'] / multi['wall']:.2f} faster; "
        f"{multi['speed']:.2f}x real time with {args.workers} workers "
        f"({'at least' if multi['speed'] >= 2 else 'BELOW'} the 2x target)"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at the end"
    )
    print("reproduce: python benchmarks/bench_extract.py " + shlex.join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
