"""``hdf predict`` over many videos: the one-video-at-a-time path against worker processes.

Twenty copies of the 20-second 640×360 H.264 face video of ``bench_predict.py`` (the synthetic
generator's faces drifting over a background), the paper-size HDFNet (16×112, random weights) and
the defaults of ``hdf predict`` (2 s windows every 0.5 s, detection on every 5th frame at 320 px).
The paths run interleaved, round after round, each on the same copies into a fresh output folder;
the table gives videos per minute (median over rounds) and where the time went, summed over the
videos (decode, detection and cropping run in the workers, the network in the main process).

Example::

    python benchmarks/bench_predict_many.py
    python benchmarks/bench_predict_many.py --copies 8 --rounds 1 --workers 0 1
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_predict import benchmark_video, paper_checkpoint
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.predict import build_predictor
from hdf_lightning.inference.results import STAGES
from hdf_lightning.inference.runner import Job, run_jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="videos per run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each video")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="0: sequential")
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = benchmark_video(folder, seconds=args.seconds)
        copies = folder / "videos"
        copies.mkdir()
        for i in range(args.copies):
            os.link(video, copies / f"video{i:02d}.mp4")
        options = PredictOptions(batch_size=args.batch_size, timeline=False)
        predictor = build_predictor(str(paper_checkpoint(folder)), None, options)
        with torch.inference_mode():  # one-off costs are not timed
            predictor.net(torch.zeros(1, 3, 16, 112, 112))
        jobs = [Job(i, p, p.stem) for i, p in enumerate(sorted(copies.iterdir()))]
        rates: dict[int, list[float]] = {w: [] for w in args.workers}
        stages: dict[int, dict[str, float]] = {}
        for round_ in range(args.rounds):
            for workers in args.workers:
                out = folder / f"out_{round_}_{workers}"
                start = time.perf_counter()
                outcomes = run_jobs(jobs, predictor, out, workers=workers)
                wall = time.perf_counter() - start
                failed = [o.error for o in outcomes if o.error]
                if failed:
                    raise SystemExit(f"a video failed: {failed[0]}")
                rates[workers].append(60 * len(jobs) / wall)
                stages[workers] = {
                    s: sum(o.record["timing_s"][s] for o in outcomes if o.record) for s in STAGES
                }
                print(f"round {round_ + 1}, workers {workers}: {wall:.1f} s", flush=True)

    seconds = args.copies * args.seconds
    print(
        f"\n{args.copies} videos of {args.seconds:g} s (640x360 H.264), paper-size HDFNet "
        f"16x112, batch {args.batch_size}, {torch.get_num_threads()} torch threads"
    )
    header = "path".ljust(14) + "videos/min".rjust(11) + "x real time".rjust(13)
    print(header + "".join(f"{s + ' s':>10}" for s in STAGES))
    base = statistics.median(rates[args.workers[0]])
    for workers in args.workers:
        rate = statistics.median(rates[workers])
        name = "sequential" if workers == 0 else f"{workers} workers"
        cells = "".join(f"{stages[workers][s]:10.1f}" for s in STAGES)
        speed = rate * args.seconds / 60
        print(f"{name:<14}{rate:11.2f}{speed:12.1f}x{cells}   ({rate / base:.2f}x)")
    print(f"({seconds:g} s of video per run; stage seconds summed over the videos)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at the "
        f"end, torch {torch.__version__}"
    )
    print("reproduce: python benchmarks/bench_predict_many.py " + shlex.join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
