"""One GPU check of the input path and the HDF training step (under 5 minutes on one GPU).

Reports, on a generated tree of 224-px face JPEG clips:

1. loader clips/s with CPU decoding (``augment_on="loader"``: the workers decode with
   libjpeg-turbo and augment on uint8; the device converts to float) against GPU decoding
   (``augment_on="device"`` on CUDA: the workers read JPEG bytes, ``decode_jpeg_clips`` decodes the
   batch with nvJPEG and ``ClipAugment`` augments it on the GPU);
2. the full HDF training step (``HDFClassifier.training_step`` under a Lightning ``Trainer``:
   paper-size HDFNet, SAM's two passes, DSM loss) in clips/s for bf16-mixed and 16-mixed
   (gradient scaler);
3. whether the loader keeps the GPU busy: the loader's clips/s against the step's, and the share
   of wall time the GPU spends in steps when both run together;
4. ``hdf predict`` over several copies of the 20 s 640×360 face video of ``bench_predict.py``
   (paper-size HDFNet on the GPU): videos per minute one video at a time against worker processes
   that decode, detect and crop while the GPU classifies batches taken across videos.

    python benchmarks/gpu_check.py                 # on a GPU: HDFNet 16x112, batch 64
    python benchmarks/gpu_check.py --smoke         # reduced CPU mode (tests): tiny net and data
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from hdf_lightning.data.datasets import ClipDataset, ClipRecord, collate_clips
from hdf_lightning.data.synthetic import render_clip
from hdf_lightning.data.transforms import ClipAugment, ClipEval, decode_jpeg_clips
from hdf_lightning.lit import HDFClassifier
from hdf_lightning.lit.lightning_cli import quiet_library_output
from hdf_lightning.models import HDFNet

PRECISIONS: dict[str, str] = {"fp32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
"""Precision shown -> Lightning's ``precision`` argument."""


def make_tree(root: Path, clips: int, frames: int, size: int) -> list[ClipRecord]:
    """``clips`` folders of ``frames`` face JPEGs (``size`` px, grain ±6), as clip records."""
    rng = np.random.default_rng(0)
    records = []
    for c in range(clips):
        folder = root / f"{c:05d}"
        folder.mkdir(parents=True)
        video = render_clip(c % 7, num_frames=frames, image_size=size, seed=c).astype(np.int16)
        video = np.clip(video + rng.integers(-6, 7, video.shape), 0, 255).astype(np.uint8)
        for t, frame in enumerate(video):
            Image.fromarray(frame).save(folder / f"{t + 1}.jpg", quality=90)
        records.append(ClipRecord(folder, c % 7, folder.name, "frames"))
    return records


def loader_batches(
    records: list[ClipRecord], args: argparse.Namespace, device: torch.device, gpu_decode: bool
) -> tuple[DataLoader, Callable[[dict[str, Any]], torch.Tensor]]:
    """A persistent-worker loader and the device-side function that turns a batch into float
    ``(B, 3, T, S, S)`` clips on ``device``, as the DataModule does for each ``augment_on``."""
    augment = ClipAugment(size=args.size, jitter=0.4, hue=0.4).to(device)
    if gpu_decode:
        dataset = ClipDataset(
            records, num_frames=args.frames, load_size=args.size, train=True, decode_on="device"
        )

        def to_device(batch: dict[str, Any]) -> torch.Tensor:
            video = decode_jpeg_clips(batch["jpeg"], args.size, device)
            return augment(video)

    else:
        dataset = ClipDataset(
            records,
            num_frames=args.frames,
            load_size=args.size,
            train=True,
            transform=augment.to("cpu").augment_clip,
        )
        augment.to(device)
        convert = ClipEval(size=args.size).to(device)

        def to_device(batch: dict[str, Any]) -> torch.Tensor:
            return convert(batch["video"].to(device, non_blocking=True))

    loader = DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
        collate_fn=collate_clips,
        drop_last=True,
    )
    return loader, to_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cycle(loader: DataLoader) -> Iterator[dict[str, Any]]:
    while True:
        yield from loader


def time_loader(
    loader: DataLoader,
    to_device: Callable[[dict[str, Any]], torch.Tensor],
    device: torch.device,
    batches: int,
) -> float:
    """Clips/s of ``batches`` batches delivered as float clips on ``device`` (one warm-up)."""
    it = cycle(loader)
    to_device(next(it))
    _sync(device)
    start = time.perf_counter()
    clips = 0
    for _ in range(batches):
        clips += to_device(next(it)).shape[0]
    _sync(device)
    return clips / (time.perf_counter() - start)


class StepTimer(pl.Callback):
    """Synchronised wall time and first-pass loss of every training step of a fit, and the
    logged metrics (``train/grad_norm``: g) once the fit ends."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started: list[float] = []
        self.ended: list[float] = []
        self.losses: list[float] = []
        self.metrics: dict[str, float] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        _sync(self.device)
        self.started.append(time.perf_counter())

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, *args: Any
    ) -> None:
        _sync(self.device)
        self.ended.append(time.perf_counter())
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    def step_times(self, skip: int) -> list[float]:
        """Seconds of each step after the first ``skip``."""
        pairs = list(zip(self.started, self.ended, strict=True))[skip:]
        return [end - start for start, end in pairs]


def classifier(net: nn.Module) -> HDFClassifier:
    """The library's LightningModule around ``net``: SAM (rho 0.05) over AdamW (lr 5e-4), DSM
    loss, no learning-rate warm-up."""
    return HDFClassifier(net, sam=True, sam_rho=0.05, warmup_epochs=0.0)


def fit_steps(
    module: HDFClassifier,
    batches: Iterable[dict[str, torch.Tensor]],
    steps: int,
    device: torch.device,
    precision: str,
) -> StepTimer:
    """Run ``steps`` steps of ``module.training_step`` on ``batches`` (dicts of ``video`` float
    ``(B, 3, T, S, S)`` and ``label`` ``(B,)``) with a Lightning ``Trainer`` at ``precision``."""
    timer = StepTimer(device)
    with tempfile.TemporaryDirectory(prefix="gpu_check_fit_") as root:
        trainer = pl.Trainer(
            accelerator=device.type,
            devices=1,
            precision=precision,  # type: ignore[arg-type]
            max_steps=steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            default_root_dir=root,
        )
        trainer.fit(module, train_dataloaders=batches)
    return timer


def build_net(args: argparse.Namespace) -> nn.Module:
    if args.smoke:
        return HDFNet(
            num_frames=args.frames, width_factor=0.5, depth_factor=0.3, head_dim=32, dropout=0.0
        )
    return HDFNet(num_frames=args.frames)  # the paper size: X3D-M width/depth, head 2048


def time_steps(
    module: HDFClassifier, args: argparse.Namespace, device: torch.device, precision: str
) -> tuple[float, float]:
    """(clips/s, first loss) of the training step at one precision, on one batch held on the
    device (median over ``args.iters`` steps after ``1 + args.warmup``)."""
    x = torch.rand(args.batch, 3, args.frames, args.size, args.size, device=device)
    y = torch.arange(args.batch, device=device) % 7
    steps = 1 + args.warmup + args.iters
    timer = fit_steps(
        module, itertools.repeat({"video": x, "label": y}, steps), steps, device, precision
    )
    return args.batch / statistics.median(timer.step_times(1 + args.warmup)), timer.losses[0]


def overlapped(
    module: HDFClassifier,
    loader: DataLoader,
    to_device: Callable[[dict[str, Any]], torch.Tensor],
    step_rate: float,
    device: torch.device,
    precision: str,
    batches: int,
    batch: int,
) -> tuple[float, float]:
    """Train on the loader's batches: (clips/s, share of wall time the steps alone would take)."""
    fed = (
        {"video": to_device(b), "label": b["label"].to(device, non_blocking=True)}
        for b in cycle(loader)
    )
    timer = fit_steps(module, fed, 1 + batches, device, precision)  # the first step warms up
    rate = batches * batch / (timer.ended[-1] - timer.ended[0])
    return rate, rate / step_rate


def predict_section(a: argparse.Namespace, device: torch.device, folder: Path) -> list[str]:
    """``hdf predict`` videos/min: sequential against ``--predict-workers`` worker processes."""
    from bench_predict import benchmark_video, paper_checkpoint
    from hdf_lightning.inference.options import PredictOptions
    from hdf_lightning.inference.predict import build_predictor
    from hdf_lightning.inference.runner import Job, run_jobs

    seconds, copies = (2.0, 1) if a.smoke else (20.0, a.predict_copies)
    video = benchmark_video(folder, seconds=seconds)
    batch = 1 if a.smoke else 16
    options = PredictOptions(device=str(device), batch_size=batch, timeline=False)
    predictor = build_predictor(str(paper_checkpoint(folder)), None, options)
    jobs = [Job(i, video, f"copy{i}") for i in range(copies)]
    lines = []
    for workers in (0,) if a.smoke else (0, a.predict_workers):
        start = time.perf_counter()
        outcomes = run_jobs(jobs, predictor, folder / f"predict_{workers}", workers=workers)
        wall = time.perf_counter() - start
        errors = [o.error for o in outcomes if o.error]
        model = sum(o.record["timing_s"]["model"] for o in outcomes if o.record)
        lines.append(
            f"hdf predict, {workers} workers: {60 * copies / wall:8.1f} videos/min "
            f"({copies} x {seconds:g} s, batch {batch}; model {model:.1f} s of {wall:.1f} s)"
            + (f" FAILED: {errors[0]}" if errors else "")
        )
    return lines


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="reduced CPU mode (tiny net and data)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--clips", type=int, default=96, help="generated clips (224 px, 24 frames)")
    p.add_argument("--loader-batches", type=int, default=8)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--predict-copies", type=int, default=8, help="videos for hdf predict")
    p.add_argument("--predict-workers", type=int, default=4, help="its worker processes")
    a = p.parse_args(argv)
    quiet_library_output()
    if a.smoke:
        a.batch, a.frames, a.size, a.workers, a.clips = 2, 4, 32, 0, 4
        a.loader_batches, a.iters, a.warmup = 1, 1, 0
        device = torch.device("cpu")
        precisions = {"fp32": PRECISIONS["fp32"]}
        image_size, source_frames = 64, 6
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --smoke for the reduced CPU mode")
        torch.backends.cudnn.benchmark = True
        device = torch.device("cuda")
        precisions = {k: v for k, v in PRECISIONS.items() if k != "fp32"}
        image_size, source_frames = 224, 24
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke)"
    lines = [
        f"{name}: HDFNet 3x{a.frames}x{a.size}^2, batch {a.batch}, {a.workers} workers, "
        f"{a.clips} clips of {source_frames} {image_size}-px face JPEGs"
    ]
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        records = make_tree(Path(tmp), a.clips, source_frames, image_size)
        loaders = {}
        for label, gpu_decode in (("CPU decode", False), ("GPU decode", True)):
            loader, to_device = loader_batches(records, a, device, gpu_decode)
            rate = time_loader(loader, to_device, device, a.loader_batches)
            loaders[label] = (loader, to_device, rate)
            lines.append(f"loader, {label:<10}: {rate:8.1f} clips/s")
        base = build_net(a)
        for prec, precision in precisions.items():
            module = classifier(copy.deepcopy(base))
            step_rate, loss = time_steps(module, a, device, precision)
            lines.append(
                f"train step {prec:<10}: {step_rate:8.1f} clips/s (SAM, first loss {loss:.4f})"
            )
            for label, (loader, to_device, rate) in loaders.items():
                fed, busy = overlapped(
                    module,
                    loader,
                    to_device,
                    step_rate,
                    device,
                    precision,
                    a.loader_batches,
                    a.batch,
                )
                verdict = "keeps the GPU busy" if rate >= step_rate else "starves the GPU"
                lines.append(
                    f"  with {label}: {fed:8.1f} clips/s, GPU busy {100 * min(busy, 1.0):5.1f} % "
                    f"(loader alone {rate:.1f} vs step {step_rate:.1f} clips/s: {verdict})"
                )
        del loaders
        lines += predict_section(a, device, Path(tmp))
    lines.append("reproduce: python benchmarks/gpu_check.py " + " ".join(argv or sys.argv[1:]))
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
