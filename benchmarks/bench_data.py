"""Data throughput: our clip pipeline against a per-frame PIL pipeline, in clips per second.

Generates (or reuses, with ``--root``) a DFEW-layout tree of textured JPEG clips, then times
DataLoader iteration for

* ours, train: segment sampling -> ``load_frames(size=load_size)`` (JPEG draft decode, each
  distinct frame once) -> uint8 collate -> ``ClipAugment`` on the whole batch (on ``--device``);
* ours, eval: centre segment sampling -> ``load_frames(size=crop)`` -> ``ClipEval``;
* baseline, train: per frame ``Image.open`` -> ``convert("RGB")`` -> group random resized crop
  (same box for the clip) -> flip -> colour jitter (same factors) -> ``to_tensor``, stacked, the
  way research loaders (e.g. M3DFEL's) do it;
* baseline, eval: per frame open -> convert -> resize -> ``to_tensor``, stacked;

each with DataLoader ``num_workers`` in ``--workers``. The first batch of every run (worker start
up) is not timed. Figures depend on the machine and on other load: rerun on a quiet machine.

Without an accelerator (``--device cpu``) the batched ``ClipAugment`` runs in the main process
and is part of the measured cost; the design runs it on the accelerator
(``--device cuda``), where it costs well under a millisecond per clip and the training loader is
left with the decoding only (about the cost of the eval row).

Load size trade-off (``--load-size``): the random resized crop takes areas down to 8 % of the
frame, so a source larger than the crop keeps more detail in small crops. Decoding 224-px JPEGs
with ``draft`` at 112 happens in the DCT domain (about 3x cheaper than a full decode) and leaves
4x fewer pixels to move and crop; the cost is blurrier small crops (an 8 % crop of a 112-px frame
is 32 px upsampled to 112, against 63 px from the full frame). The default is the crop size; use
``--load-size 224`` to measure the full-resolution variant (``draft`` cannot reduce 224 to 128,
so intermediate sizes pay a full decode plus a resize).

Reproduce: ``python benchmarks/bench_data.py`` (prints its exact command line at the end).
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ColorJitter, InterpolationMode, RandomResizedCrop

from hdf_lightning.data.sampling import segment_indices
from hdf_lightning.data.transforms import ClipAugment, ClipEval
from hdf_lightning.data.video import list_frames, load_frames

log = logging.getLogger("bench_data")

NUM_CLASSES_DFEW = 7
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


# ---------------------------------------------------------------- synthetic DFEW tree


def _texture_frames(rng: np.random.Generator, frames: int, size: int) -> list[np.ndarray]:
    """Moving textured content: smooth colour blobs + fine grain, panned over time."""
    coarse = rng.integers(0, 256, (size // 8 + 2, size // 8 + 2, 3), dtype=np.uint8)
    smooth = np.asarray(
        Image.fromarray(coarse).resize((size + 64, size + 64), Image.Resampling.BICUBIC)
    )
    out = []
    for t in range(frames):
        dy, dx = (2 * t) % 64, (3 * t) % 64
        window = smooth[dy : dy + size, dx : dx + size].astype(np.int16)
        grain = rng.integers(-12, 13, (size, size, 3), dtype=np.int16)
        out.append(np.clip(window + grain, 0, 255).astype(np.uint8))
    return out


def make_dfew_tree(root: Path, *, clips: int, frames: int, image_size: int, quality: int) -> None:
    """``<root>/Clip/clip_224x224/<5-digit id>/<n>.jpg`` and one DFEW-style split CSV."""
    rng = np.random.default_rng(0)
    base = root / "Clip" / "clip_224x224"
    for c in range(1, clips + 1):
        folder = base / f"{c:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(_texture_frames(rng, frames, image_size), start=1):
            Image.fromarray(frame).save(folder / f"{c:05d}_{t}.jpg", quality=quality)
    split = root / "EmoLabel_DataSplit" / "train(single-labeled)"
    split.mkdir(parents=True, exist_ok=True)
    with open(split / "set_1.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_name", "label"])
        for c in range(1, clips + 1):
            writer.writerow([c, int(rng.integers(1, NUM_CLASSES_DFEW + 1))])


def read_clip_folders(root: Path) -> list[Path]:
    """Clip folders listed in the fold-1 training CSV (ids zero-padded to 5 digits)."""
    split = root / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    with open(split, newline="") as f:
        rows = list(csv.DictReader(f))
    return [root / "Clip" / "clip_224x224" / f"{int(r['video_name']):05d}" for r in rows]


# ---------------------------------------------------------------- datasets


class ClipFolders(Dataset[Tensor]):
    """``length`` samples cycling over the clip folders; ``load`` turns frame paths into a clip."""

    def __init__(
        self,
        folders: list[Path],
        *,
        clip_len: int,
        train: bool,
        length: int,
        load: Callable[[list[Path]], Tensor],
    ) -> None:
        self.frames = [list_frames(f) for f in folders]
        self.clip_len = clip_len
        self.train = train
        self.length = length
        self.load = load

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tensor:
        frames = self.frames[index % len(self.frames)]
        idx = segment_indices(len(frames), self.clip_len, train=self.train)
        return self.load([frames[i] for i in idx])


@dataclass(frozen=True)
class OursLoad:
    """Our per-sample work: draft decode to ``size``, uint8 ``(3, T, size, size)``."""

    size: int

    def __call__(self, paths: list[Path]) -> Tensor:
        return load_frames(paths, size=self.size)


@dataclass(frozen=True)
class BaselineTrainLoad:
    """Per-frame PIL augmentation with clip-level parameters -> float ``(3, T, crop, crop)``."""

    crop: int
    jitter: float
    hue: float

    def __call__(self, paths: list[Path]) -> Tensor:
        images = [Image.open(p).convert("RGB") for p in paths]
        top, left, h, w = RandomResizedCrop.get_params(images[0], list(SCALE), list(RATIO))
        images = [
            TF.resized_crop(im, top, left, h, w, [self.crop, self.crop], InterpolationMode.BILINEAR)
            for im in images
        ]
        if random.random() < 0.5:
            images = [TF.hflip(im) for im in images]
        jitter = ColorJitter(self.jitter, self.jitter, self.jitter, self.hue)
        order, b, c, s, hue = ColorJitter.get_params(
            jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue
        )
        adjust = {
            0: (TF.adjust_brightness, b),
            1: (TF.adjust_contrast, c),
            2: (TF.adjust_saturation, s),
            3: (TF.adjust_hue, hue),
        }
        out = []
        for im in images:
            for k in order.tolist():
                fn, factor = adjust[k]
                if factor is not None:
                    im = fn(im, factor)
            out.append(TF.to_tensor(im))
        return torch.stack(out, dim=1)


@dataclass(frozen=True)
class BaselineEvalLoad:
    """Per-frame open, convert, resize, to_tensor -> float ``(3, T, crop, crop)``."""

    crop: int

    def __call__(self, paths: list[Path]) -> Tensor:
        frames = [
            TF.to_tensor(
                Image.open(p)
                .convert("RGB")
                .resize((self.crop, self.crop), Image.Resampling.BILINEAR)
            )
            for p in paths
        ]
        return torch.stack(frames, dim=1)


# ---------------------------------------------------------------- timing


@dataclass(frozen=True)
class Result:
    pipeline: str
    mode: str
    workers: int
    clips_per_s: float
    cpu_ms_per_clip: float


def _identity(batch: Tensor) -> Tensor:
    return batch


def time_loader(
    dataset: ClipFolders,
    *,
    batch_size: int,
    workers: int,
    on_batch: Callable[[Tensor], Tensor],
    device: torch.device,
) -> tuple[float, float]:
    """Clips per second and main-process CPU ms per clip, the first batch excluded.

    With ``workers=0`` the CPU time covers the whole pipeline and, unlike wall time, hardly
    depends on other processes competing for the cores; with workers it covers only the main
    process (collation and the batched transform).
    """
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    clips = 0
    start = cpu_start = 0.0
    for step, batch in enumerate(loader):
        out = on_batch(batch.to(device, non_blocking=True))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if not torch.isfinite(out).all():
            raise RuntimeError("pipeline produced non-finite values")
        if step == 0:
            start, cpu_start = time.perf_counter(), time.process_time()
        else:
            clips += out.shape[0]
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if clips == 0:
        raise ValueError("need more than one batch per run: raise --samples")
    return clips / elapsed, 1000.0 * cpu / clips


def run(args: argparse.Namespace) -> list[Result]:
    device = torch.device(args.device)
    augment = ClipAugment(size=args.crop, jitter=args.jitter, hue=args.hue).to(device)
    evaluate = ClipEval(size=args.crop).to(device)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(args.root) if args.root else Path(tmp)
        split = root / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
        if not split.is_file():
            log.info(
                "generating %d clips x %d frames of %dpx JPEG (q=%d) under %s",
                args.clips,
                args.frames,
                args.image_size,
                args.quality,
                root,
            )
            t0 = time.perf_counter()
            make_dfew_tree(
                root,
                clips=args.clips,
                frames=args.frames,
                image_size=args.image_size,
                quality=args.quality,
            )
            log.info("generated in %.1f s", time.perf_counter() - t0)
        folders = read_clip_folders(root)
        configs: list[tuple[str, str, Callable[[list[Path]], Tensor], Callable[[Tensor], Tensor]]]
        configs = [
            ("ours", "train", OursLoad(args.load_size), augment),
            ("ours", "eval", OursLoad(args.crop), evaluate),
            ("baseline", "train", BaselineTrainLoad(args.crop, args.jitter, args.hue), _identity),
            ("baseline", "eval", BaselineEvalLoad(args.crop), _identity),
        ]
        results = []
        for workers in args.workers:
            for pipeline, mode, load, on_batch in configs:
                dataset = ClipFolders(
                    folders,
                    clip_len=args.clip_len,
                    train=mode == "train",
                    length=args.samples,
                    load=load,
                )
                with torch.no_grad():
                    rate, cpu_ms = time_loader(
                        dataset,
                        batch_size=args.batch_size,
                        workers=workers,
                        on_batch=on_batch,
                        device=device,
                    )
                log.info(
                    "%-8s %-5s workers=%d: %.1f clips/s, main-process CPU %.1f ms/clip",
                    pipeline,
                    mode,
                    workers,
                    rate,
                    cpu_ms,
                )
                results.append(Result(pipeline, mode, workers, rate, cpu_ms))
    return results


def report(results: list[Result], args: argparse.Namespace) -> str:
    """Markdown table: clips/s and speed-up of ours over the baseline; CPU ms/clip at 0 workers."""
    by_key = {(r.pipeline, r.mode, r.workers): r for r in results}
    lines = [
        f"clips of {args.clip_len} frames, {args.image_size}px JPEG q{args.quality} -> "
        f"{args.crop}px, load size {args.load_size}, batch {args.batch_size}, "
        f"{args.samples} clips per run (first batch untimed), transforms on {args.device}, "
        f"torch threads {torch.get_num_threads()}",
        "",
        "| mode | workers | ours clips/s | baseline clips/s | speed-up "
        "| ours CPU ms/clip | baseline CPU ms/clip | CPU ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workers in args.workers:
        for mode in ("train", "eval"):
            ours = by_key[("ours", mode, workers)]
            base = by_key[("baseline", mode, workers)]
            speed_up = ours.clips_per_s / base.clips_per_s
            if workers == 0:
                cpu = (
                    f"{ours.cpu_ms_per_clip:.1f} | {base.cpu_ms_per_clip:.1f} "
                    f"| {base.cpu_ms_per_clip / ours.cpu_ms_per_clip:.2f}x"
                )
            else:
                cpu = "- | - | -"  # worker CPU time is not measured
            lines.append(
                f"| {mode} | {workers} | {ours.clips_per_s:.1f} | {base.clips_per_s:.1f} "
                f"| {speed_up:.2f}x | {cpu} |"
            )
    command = shlex.join(["python", *sys.argv])
    lines += ["", f"reproduce: {command}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="DFEW-layout tree to use or create (default: temp dir)")
    parser.add_argument("--clips", type=int, default=64, help="clips to generate")
    parser.add_argument("--frames", type=int, default=40, help="frames per generated clip")
    parser.add_argument("--image-size", type=int, default=224, help="side of generated frames")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of generated frames")
    parser.add_argument("--clip-len", type=int, default=16, help="frames per sampled clip")
    parser.add_argument("--crop", type=int, default=112, help="output side S")
    parser.add_argument("--load-size", type=int, default=112, help="decode side for training")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples", type=int, default=128, help="clips per timed run")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--jitter", type=float, default=0.4, help="brightness/contrast/saturation")
    parser.add_argument("--hue", type=float, default=0.0, help="hue jitter (both pipelines)")
    parser.add_argument("--device", default="cpu", help="where ClipAugment/ClipEval run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads of the main process (0: torch default); 1 avoids "
        "oversubscribing the cores with the DataLoader workers and spin-waiting threads",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    results = run(args)
    print(report(results, args))


if __name__ == "__main__":
    main()
