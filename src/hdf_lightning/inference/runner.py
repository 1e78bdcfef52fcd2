"""``hdf predict`` over many videos: worker processes, batches across videos, several devices,
resume and a progress bar.

* **Workers** (``--workers N``): decoding, face detection and cropping run in ``N`` forked
  processes (:class:`~hdf_lightning.inference.predict.VideoPreparer`, which needs no network);
  they send each video's result skeleton and then its window clips, as they are cut, to the main
  process, which runs the network on batches of ``--batch_size`` windows taken across videos and
  writes each video's outputs when its last clip is classified. At most a few clips per worker
  wait in memory (a bounded queue). The network's threads in the main process are capped to the
  cores the workers leave (at least one). ``--workers 0`` runs everything in the main process,
  one video after the other.
* **Devices** (``--devices [cuda:0, cuda:1]``): the videos are dealt out to one process per
  device (video ``i`` to device ``i mod D``, as a distributed sampler shards a dataset); each
  loads the checkpoint on its device and runs the loop above with its own workers. The main
  process shows the progress and writes the run's summary.
* **Resume**: a video whose ``<name>.windows.jsonl`` records the same checkpoint (path, size,
  modification time) and the same options is not done again; its summary is read back from that
  file. ``--overwrite true`` redoes every video.

The outputs of a video are those of the one-video path: the same crops (the same code), the same
network; with ``--batch_size 1`` they are identical to the last bit, and larger batches can differ
from batch 1 in the last bits of the probabilities (a convolution's arithmetic depends on the
batch), as they do on one video.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdf_lightning.inference.checkpoint import Preprocessing
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.predict import Predictor, VideoPreparer, finish_windows
from hdf_lightning.inference.progress import video_progress
from hdf_lightning.inference.results import VideoResult
from hdf_lightning.inference.sources import InputError, open_source
from hdf_lightning.inference.windows import ShortVideoError
from hdf_lightning.inference.writers import video_summary, write_outputs

__all__ = ["Job", "Outcome", "run_fingerprint", "run_jobs"]

_CHUNK = 4  # window clips per message from a worker
_QUEUE_PER_WORKER = 4  # messages a worker may have waiting before it blocks


@dataclass(frozen=True)
class Job:
    """One input of ``hdf predict``: the video (or frame folder) and its output name."""

    index: int
    path: Path
    name: str


@dataclass
class Outcome:
    """What became of a job: its summary record (with the outputs written), or an error.

    Attributes:
        job: the job.
        record: :func:`~hdf_lightning.inference.writers.video_summary` plus ``outputs`` (None on
            error).
        error: the one-line message of a failed video (None on success).
        result: the in-memory result (None when resumed from the files or failed).
        resumed: the outputs were already there for this checkpoint and these options.
    """

    job: Job
    record: dict[str, Any] | None = None
    error: str | None = None
    result: VideoResult | None = None
    resumed: bool = False


def run_fingerprint(predictor: Predictor) -> dict[str, Any]:
    """What makes two runs' outputs of a video the same: the checkpoint file (resolved path,
    size, modification time) and every option of ``hdf predict`` but the speed-only ones."""
    path = predictor.model.path.resolve()
    stat = path.stat()
    options = predictor.options
    speed_only = {"batch_size", "device"}
    return {
        "checkpoint": str(path),
        "checkpoint_size": stat.st_size,
        "checkpoint_mtime_ns": stat.st_mtime_ns,
        "options": {
            k: getattr(options, k) for k in options.__dataclass_fields__ if k not in speed_only
        },
    }


def _resumed(job: Job, out: Path, fingerprint: dict[str, Any]) -> Outcome | None:
    """The outcome of a job whose outputs exist for the same run, else None."""
    jsonl = out / f"{job.name}.windows.jsonl"
    try:
        lines = jsonl.read_text(encoding="utf-8").splitlines()
        header, last = json.loads(lines[0]), json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        return None
    if header.get("run") != fingerprint or last.get("record") != "summary":
        return None
    record = {k: v for k, v in last.items() if k != "record"}
    outputs = {"jsonl": str(jsonl), "csv": str(out / f"{job.name}.windows.csv")}
    timeline = out / f"{job.name}.timeline.png"
    if timeline.is_file():
        outputs["timeline"] = str(timeline)
    return Outcome(job, record={**record, "outputs": outputs}, resumed=True)


def _done(
    job: Job, result: VideoResult, predictor: Predictor, out: Path, run: dict[str, Any]
) -> Outcome:
    names = predictor.model.preprocessing.class_names
    outputs = write_outputs(result, out, job.name, predictor.model, predictor.options, run=run)
    return Outcome(job, record={**video_summary(result, names), "outputs": outputs}, result=result)


def _failure(job: Job, err: BaseException) -> Outcome:
    if isinstance(err, InputError | ShortVideoError):
        return Outcome(job, error=str(err))
    return Outcome(job, error=f"{job.path}: {type(err).__name__}: {err}")


def run_jobs(
    jobs: Sequence[Job],
    predictor: Predictor,
    out: Path,
    *,
    workers: int = 0,
    overwrite: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Predict every job on this process's device; outcomes in job order.

    Args:
        jobs: the videos and their output names.
        predictor: the checkpoint's :class:`Predictor`.
        out: the output folder.
        workers: processes that decode, detect and crop (0: this process, one video at a time).
        overwrite: redo videos whose outputs exist for the same run.
        on_outcome: called as each video finishes (progress), in completion order.
    """
    report = on_outcome or (lambda outcome: None)
    run = run_fingerprint(predictor)
    outcomes: dict[int, Outcome] = {}
    todo: list[Job] = []
    for job in jobs:
        done = None if overwrite else _resumed(job, out, run)
        if done is not None:
            outcomes[job.index] = done
            report(done)
        else:
            todo.append(job)
    if workers <= 0:
        stream: Iterator[Outcome] = _sequential(todo, predictor, out, run)
    else:
        stream = _with_workers(todo, predictor, out, run, workers)
    for outcome in stream:
        outcomes[outcome.job.index] = outcome
        report(outcome)
    return [outcomes[job.index] for job in jobs]


def _sequential(
    jobs: Sequence[Job], predictor: Predictor, out: Path, run: dict[str, Any]
) -> Iterator[Outcome]:
    for job in jobs:
        try:
            result = predictor.predict(open_source(job.path, fps=predictor.options.fps))
            yield _done(job, result, predictor, out, run)
        except Exception as err:  # one bad video must not stop the others
            yield _failure(job, err)


# ------------------------------------------------------------------------------------ workers
def _worker(
    options: PredictOptions, preprocessing: Preprocessing, tasks: Any, results: Any
) -> None:
    """A worker process: prepares the videos it takes from ``tasks`` and sends their clips (the
    detector is built here, from ``options.detector``)."""
    preparer = VideoPreparer(options, preprocessing)
    while True:
        task = tasks.get()
        if task is None:
            return
        job: Job = task
        start = time.perf_counter()
        try:
            source = open_source(job.path, fps=options.fps)
            result, plan = preparer.prepare(source)
            results.put(("start", job.index, result, plan))
            chunk: list[tuple[int, np.ndarray]] = []
            for item in preparer.window_clips(source, result, plan):
                chunk.append(item)
                if len(chunk) == _CHUNK:
                    results.put(("clips", job.index, chunk))
                    chunk = []
            if chunk:
                results.put(("clips", job.index, chunk))
            results.put(("end", job.index, result.times, time.perf_counter() - start))
        except Exception as err:  # sent to the main process, which names the video
            results.put(("fail", job.index, _failure(job, err).error))


@dataclass
class _Open:
    """A video in flight in the main process."""

    job: Job
    result: VideoResult | None = None
    plan: dict[int, list[int]] = field(default_factory=dict)
    pending: int = 0  # its clips waiting in the batch
    ended: bool = False
    worker_seconds: float = 0.0


def _with_workers(
    jobs: Sequence[Job], predictor: Predictor, out: Path, run: dict[str, Any], workers: int
) -> Iterator[Outcome]:
    if not jobs:
        return
    # the workers take ``workers`` cores; the network's threads share the others (on 2 cores,
    # 2 network threads beside a worker were 15 % slower than one video at a time)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    try:
        yield from _serve_workers(jobs, predictor, out, run, workers)
    finally:
        torch.set_num_threads(threads)


def _serve_workers(
    jobs: Sequence[Job], predictor: Predictor, out: Path, run: dict[str, Any], workers: int
) -> Iterator[Outcome]:
    """The main process's side of ``--workers``: start the workers, batch the clips they send
    across videos, and yield each video's outcome once its last clip is classified."""
    processes, results = _start_workers(jobs, predictor, workers)
    batches = _Batches(jobs, predictor, out, run)
    try:
        while len(batches.reported) < len(jobs):
            try:
                message = results.get(timeout=5.0)
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    # a worker died without a word (killed, out of memory): fail what is left
                    yield from batches.orphaned()
                continue
            yield from batches.receive(message)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=10)


def _start_workers(
    jobs: Sequence[Job], predictor: Predictor, workers: int
) -> tuple[list[Any], Any]:
    """Fork ``min(workers, len(jobs))`` worker processes over a queue of the jobs; returns them
    and the queue of their messages."""
    context = mp.get_context("fork")  # the workers inherit the imports; OpenCV is fork-safe
    tasks = context.Queue()
    results = context.Queue(maxsize=_QUEUE_PER_WORKER * workers)
    for job in jobs:
        tasks.put(job)
    count = min(workers, len(jobs))
    for _ in range(count):
        tasks.put(None)
    preprocessing = predictor.model.preprocessing
    processes = [
        context.Process(
            target=_worker, args=(predictor.options, preprocessing, tasks, results), daemon=True
        )
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    return processes, results


class _Batches:
    """The videos in flight in the main process and one batch of clips across them."""

    def __init__(
        self, jobs: Sequence[Job], predictor: Predictor, out: Path, run: dict[str, Any]
    ) -> None:
        self.jobs = jobs
        self.by_index = {job.index: job for job in jobs}
        self.predictor, self.out, self.run = predictor, out, run
        self.open: dict[int, _Open] = {}
        self.batch: list[tuple[int, int, np.ndarray]] = []  # (job index, window index, clip)
        self.reported: set[int] = set()  # the jobs whose outcome was yielded

    def receive(self, message: tuple[Any, ...]) -> Iterator[Outcome]:
        """Take one worker message (``start``, ``clips``, ``end`` or ``fail``); yield the
        outcomes it completes."""
        kind, index = message[0], message[1]
        if kind == "fail":  # possibly after some of its clips: those are dropped
            self.open.pop(index, None)
            self.batch[:] = [item for item in self.batch if item[0] != index]
            self.reported.add(index)
            yield Outcome(self.by_index[index], error=message[2])
            return
        video = self.open.setdefault(index, _Open(self.by_index[index]))
        if kind == "start":
            video.result, video.plan = message[2], message[3]
        elif kind == "clips":
            for window, clip in message[2]:
                self.batch.append((index, window, clip))
                video.pending += 1
                if len(self.batch) == self.predictor.options.batch_size:
                    self.classify()
        elif kind == "end":
            assert video.result is not None
            model_seconds = video.result.times.model
            video.result.times = message[2]
            video.result.times.model = model_seconds
            video.worker_seconds, video.ended = message[3], True
            if video.pending:  # classify its last clips now rather than wait for others
                self.classify()
        yield from self.ready()

    def classify(self) -> None:
        """Run the network on the batch; each clip's video gets its share of the time."""
        if not self.batch:
            return
        start = time.perf_counter()
        probs = self.predictor.classify([clip for _, _, clip in self.batch])
        share = (time.perf_counter() - start) / len(self.batch)
        for (index, window, _), p in zip(self.batch, probs, strict=True):
            video = self.open[index]
            assert video.result is not None
            video.result.windows[window].probs = p
            video.result.times.model += share
            video.pending -= 1
        self.batch.clear()

    def ready(self) -> Iterator[Outcome]:
        """The outcomes of the videos whose worker ended and whose clips are all classified."""
        for index in [i for i, v in self.open.items() if v.ended and v.pending == 0]:
            video = self.open.pop(index)
            assert video.result is not None
            finish_windows(video.result, video.plan)
            video.result.wall = video.worker_seconds + video.result.times.model
            self.reported.add(index)
            try:
                yield _done(video.job, video.result, self.predictor, self.out, self.run)
            except Exception as err:
                yield _failure(video.job, err)

    def orphaned(self) -> Iterator[Outcome]:
        """Fail every job not reported yet (its worker died)."""
        for job in self.jobs:
            if job.index not in self.reported:
                self.reported.add(job.index)
                yield Outcome(job, error=f"{job.path}: its worker process died")


# ------------------------------------------------------------------------------------ devices
def run_on_devices(
    jobs: Sequence[Job],
    predictor: Predictor,
    out: Path,
    *,
    devices: Sequence[str],
    workers: int = 0,
    overwrite: bool = False,
    config: str | None = None,
    threads: int | None = None,
    report: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """:func:`run_jobs` on one device, or dealt out over several (one process per device, video
    ``i`` to device ``i mod D``); prints each video's line as it finishes and shows a progress
    bar over the videos with an ETA when stderr is a terminal. Outcomes in job order.

    Args:
        jobs, out, workers, overwrite: see :func:`run_jobs`.
        predictor: the checkpoint's :class:`Predictor` (used as it is on one device; with
            several, each device process loads the checkpoint again on its device).
        devices: torch devices (``["cpu"]``, ``["cuda:0", "cuda:1"]`` ...).
        config, threads: as given to ``hdf predict`` (the device processes rebuild the
            predictor from them).
        report: called with each video's outcome as it finishes (the console line).
    """
    with video_progress("predict") as bar:
        task = bar.add_task("predict", total=len(jobs))

        def on_outcome(outcome: Outcome) -> None:
            if report is not None:
                report(outcome)
            bar.advance(task)

        if len(devices) == 1:
            return run_jobs(
                jobs, predictor, out, workers=workers, overwrite=overwrite, on_outcome=on_outcome
            )
        return _dealt_out(
            jobs, predictor, out, devices, workers, overwrite, config, threads, on_outcome
        )


def _device_process(
    device: str,
    jobs: list[Job],
    ckpt_path: str,
    config: str | None,
    options: PredictOptions,
    threads: int | None,
    out: Path,
    workers: int,
    overwrite: bool,
    results: Any,
) -> None:
    """One device's process: rebuild the predictor there and run its share of the videos."""
    from dataclasses import replace

    from hdf_lightning.inference.predict import build_predictor

    try:
        predictor = build_predictor(ckpt_path, config, replace(options, device=device), threads)

        def send(outcome: Outcome) -> None:
            results.put(Outcome(outcome.job, outcome.record, outcome.error, None, outcome.resumed))

        run_jobs(jobs, predictor, out, workers=workers, overwrite=overwrite, on_outcome=send)
    except Exception as err:  # the device cannot be used: its videos fail with the reason
        for job in jobs:
            results.put(Outcome(job, error=f"{job.path}: device {device}: {err}"))


def _dealt_out(
    jobs: Sequence[Job],
    predictor: Predictor,
    out: Path,
    devices: Sequence[str],
    workers: int,
    overwrite: bool,
    config: str | None,
    threads: int | None,
    on_outcome: Callable[[Outcome], None],
) -> list[Outcome]:
    context = mp.get_context("spawn")  # CUDA cannot be used in a forked process
    results = context.Queue()
    shares = [list(jobs[d :: len(devices)]) for d in range(len(devices))]
    processes = [
        context.Process(
            target=_device_process,
            args=(
                device,
                share,
                str(predictor.model.path),
                config,
                predictor.options,
                threads,
                out,
                workers,
                overwrite,
                results,
            ),
        )
        for device, share in zip(devices, shares, strict=True)
        if share
    ]
    for process in processes:
        process.start()
    outcomes: dict[int, Outcome] = {}
    try:
        while len(outcomes) < len(jobs):
            try:
                outcome = results.get(timeout=5.0)
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    for job in jobs:
                        if job.index not in outcomes:
                            outcomes[job.index] = Outcome(
                                job, error=f"{job.path}: its device process died"
                            )
                            on_outcome(outcomes[job.index])
                continue
            outcomes[outcome.job.index] = outcome
            on_outcome(outcome)
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
    return [outcomes[job.index] for job in jobs]
