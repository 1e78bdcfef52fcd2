"""Data throughput: our clip pipelines against a per-frame PIL pipeline, in clips per second.

Generates (or reuses, with ``--root``) a DFEW-layout tree of textured JPEG clips, then times
DataLoader iteration (``--repeats`` rounds, the configurations interleaved, medians reported) for

* ours, train (the default, ``augment_on="loader"``): the package's ``ClipDataset`` with segment
  sampling -> ``load_frames(size=load_size)`` (JPEG draft decode, each distinct frame once) ->
  ``ClipAugment.augment_uint8`` in the worker (uint8 crop/resize/flip, colour jitter) -> collate ->
  ``ClipEval`` (float conversion) on the batch;
* ours, train with ``augment_on="device"``: the workers only decode; ``ClipAugment`` augments the
  whole batch on ``--device`` (on the CPU here, so it is part of the measured cost);
* ours, eval: centre segment sampling -> ``load_frames(size=crop)`` -> ``ClipEval``;
* baseline, train: per frame ``Image.open`` -> ``convert("RGB")`` -> group random resized crop
  (same box for the clip) -> flip -> colour jitter (same factors) -> ``to_tensor``, stacked, the
  way research loaders (e.g. M3DFEL's) do it;
* baseline, eval: per frame open -> convert -> resize -> ``to_tensor``, stacked;
* decode only: the sampled frames decoded as ours decodes them (draft at the load size) and
  nothing else. No pipeline that decodes these JPEGs with PIL can be faster, so baseline / decode
  only bounds the speed-up any such pipeline can reach on this machine.

each with DataLoader ``num_workers`` in ``--workers``. The first batch of every run (worker start
up) is not timed. Figures depend on the machine and on other load: rerun on a quiet machine.

Load size trade-off (``--load-size``): the random resized crop takes areas down to 8 % of the
frame, so a source larger than the crop keeps more detail in small crops. Decoding 224-px JPEGs
with ``draft`` at 112 happens in the DCT domain and leaves 4x fewer pixels to move and crop; the
cost is blurrier small crops (an 8 % crop of a 112-px frame is 32 px upsampled to 112, against
63 px from the full frame). The default is the crop size; ``--load-size 224`` measures the
full-resolution variant.

Reproduce: ``python benchmarks/bench_data.py`` (prints its exact command line at the end).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode

from hdf_lightning.data.datasets import ClipDataset, ClipRecord
from hdf_lightning.data.frame_sampling import segment_indices
from hdf_lightning.data.synthetic import render_clip
from hdf_lightning.data.transforms import ClipAugment, ClipEval
from hdf_lightning.data.video import list_frames

log = logging.getLogger("bench_data")

NUM_CLASSES_DFEW = 7
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


# ---------------------------------------------------------------- synthetic DFEW tree


def _texture_frames(
    rng: np.random.Generator, frames: int, size: int, grain: int
) -> list[np.ndarray]:
    """Moving textured content: smooth colour blobs + uniform grain in ±``grain``, panned."""
    coarse = rng.integers(0, 256, (size // 8 + 2, size // 8 + 2, 3), dtype=np.uint8)
    smooth = np.asarray(
        Image.fromarray(coarse).resize((size + 64, size + 64), Image.Resampling.BICUBIC)
    )
    out = []
    for t in range(frames):
        dy, dx = (2 * t) % 64, (3 * t) % 64
        window = smooth[dy : dy + size, dx : dx + size].astype(np.int16)
        noise = rng.integers(-grain, grain + 1, (size, size, 3), dtype=np.int16)
        out.append(np.clip(window + noise, 0, 255).astype(np.uint8))
    return out


def _face_frames(
    rng: np.random.Generator, frames: int, size: int, grain: int, clip: int
) -> list[np.ndarray]:
    """Rendered face clips (the synthetic DFEW generator's faces) with sensor grain ±``grain``."""
    video = render_clip(clip % 7, num_frames=frames, image_size=size, seed=clip)
    noise = rng.integers(-grain, grain + 1, video.shape, dtype=np.int16)
    return list(np.clip(video.astype(np.int16) + noise, 0, 255).astype(np.uint8))


def make_dfew_tree(
    root: Path,
    *,
    clips: int,
    frames: int,
    image_size: int,
    quality: int,
    grain: int = 12,
    content: str = "faces",
) -> None:
    """``<root>/Clip/clip_224x224/<5-digit id>/<n>.jpg`` and one DFEW-style split CSV."""
    rng = np.random.default_rng(0)
    base = root / "Clip" / "clip_224x224"
    for c in range(1, clips + 1):
        folder = base / f"{c:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        if content == "faces":
            images = _face_frames(rng, frames, image_size, grain, c)
        else:
            images = _texture_frames(rng, frames, image_size, grain)
        for t, frame in enumerate(images, start=1):
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


class Cycled(Dataset[Tensor]):
    """``length`` samples cycling over the package's ``ClipDataset`` (its ``video`` only)."""

    def __init__(self, dataset: ClipDataset, length: int) -> None:
        self.dataset = dataset
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tensor:
        return self.dataset[index % len(self.dataset)]["video"]


@dataclass(frozen=True)
class DecodeOnly:
    """The decode bound: PIL ``draft`` decode of the sampled frames to ``size``, nothing else."""

    size: int

    def __call__(self, paths: list[Path]) -> Tensor:
        for p in paths:
            with Image.open(p) as img:
                img.draft("RGB", (self.size, self.size))
                img.load()
        return torch.zeros(3, len(paths))


def m3dfel_random_sized_crop(images: list[Image.Image], size: int) -> list[Image.Image]:
    """The reference's ``GroupRandomSizedCrop``: one box for the clip, each frame cropped and
    resized to ``size`` (PIL bilinear); after 10 failed tries, scale + random crop."""
    width, height = images[0].size
    for _ in range(10):
        area = random.uniform(SCALE[0], SCALE[1]) * width * height
        aspect = random.uniform(RATIO[0], RATIO[1])
        w = round(math.sqrt(area * aspect))
        h = round(math.sqrt(area / aspect))
        if random.random() < 0.5:
            w, h = h, w
        if w <= width and h <= height:
            x1 = random.randint(0, width - w)
            y1 = random.randint(0, height - h)
            return [
                im.crop((x1, y1, x1 + w, y1 + h)).resize((size, size), Image.Resampling.BILINEAR)
                for im in images
            ]
    scaled = [TF.resize(im, size, InterpolationMode.BILINEAR) for im in images]
    sw, sh = scaled[0].size
    x1, y1 = random.randint(0, sw - size), random.randint(0, sh - size)
    return [im.crop((x1, y1, x1 + size, y1 + size)) for im in scaled]


def m3dfel_color_jitter(images: list[Image.Image], jitter: float, hue: float) -> list[Image.Image]:
    """The reference's ``GroupColorJitter``: brightness, contrast, saturation factors in
    [1 - jitter, 1 + jitter] and a hue shift in [-hue, hue], drawn once per clip in a random
    order, applied to every frame with torchvision's functional ``adjust_*`` on PIL images."""
    ops: list[tuple[Callable[[Image.Image, float], Image.Image], float]] = [
        (TF.adjust_brightness, random.uniform(max(0.0, 1 - jitter), 1 + jitter)),
        (TF.adjust_contrast, random.uniform(max(0.0, 1 - jitter), 1 + jitter)),
        (TF.adjust_saturation, random.uniform(max(0.0, 1 - jitter), 1 + jitter)),
    ]
    if hue > 0:
        ops.append((TF.adjust_hue, random.uniform(-hue, hue)))
    random.shuffle(ops)
    out = []
    for im in images:
        for fn, factor in ops:
            im = fn(im, factor)
        out.append(im)
    return out


def m3dfel_to_tensor(images: list[Image.Image], size: int) -> Tensor:
    """``Stack`` (H×W×3T array) then ``ToTorchFormatTensor`` (float in [0, 1]), reshaped to the
    reference's ``(T, 3, S, S)``."""
    stacked = np.concatenate([np.asarray(im) for im in images], axis=2)  # (S, S, 3T)
    tensor = torch.from_numpy(stacked).permute(2, 0, 1).contiguous().float().div(255)
    return tensor.reshape(-1, 3, size, size)


@dataclass(frozen=True)
class BaselineTrainLoad:
    """The reference DFER (M3DFEL) training pipeline -> float ``(T, 3, crop, crop)``."""

    crop: int
    jitter: float
    hue: float

    def __call__(self, paths: list[Path]) -> Tensor:
        images = [Image.open(p).convert("RGB") for p in paths]
        images = m3dfel_random_sized_crop(images, self.crop)
        if random.random() < 0.5:
            images = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in images]
        images = m3dfel_color_jitter(images, self.jitter, self.hue)
        return m3dfel_to_tensor(images, self.crop)


@dataclass(frozen=True)
class BaselineEvalLoad:
    """The reference evaluation pipeline: per frame PIL bilinear resize, stack, to tensor."""

    crop: int

    def __call__(self, paths: list[Path]) -> Tensor:
        images = [
            Image.open(p).convert("RGB").resize((self.crop, self.crop), Image.Resampling.BILINEAR)
            for p in paths
        ]
        return m3dfel_to_tensor(images, self.crop)


# ---------------------------------------------------------------- timing


@dataclass(frozen=True)
class Config:
    pipeline: str
    mode: str
    dataset: Dataset[Tensor]
    on_batch: Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Result:
    pipeline: str
    mode: str
    workers: str
    clips_per_s: float
    cpu_ms_per_clip: float


def _identity(batch: Tensor) -> Tensor:
    return batch


def time_loader(
    dataset: Dataset[Tensor],
    *,
    batch_size: int,
    workers: int,
    persistent: bool,
    on_batch: Callable[[Tensor], Tensor],
    device: torch.device,
) -> tuple[float, float]:
    """Clips per second and main-process CPU ms per clip.

    Fresh workers (``persistent=False``, forked for this epoch as a non-persistent DataLoader
    does every epoch): one epoch, its first batch (worker start-up) untimed. Persistent workers:
    a warm-up epoch, then the second epoch, its first batch untimed as well (the workers are
    already up, but they start prefetching only when the epoch starts), so both settings time
    the same steady state.
    With ``workers=0`` the CPU time covers the whole pipeline and, unlike wall time, hardly
    depends on other processes competing for the cores; with workers it covers only the main
    process (collation and the batch transform).
    """
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        shuffle=False,
        persistent_workers=persistent and workers > 0,
    )
    if persistent and workers > 0:
        for batch in loader:
            _check(on_batch(batch.to(device)))
    clips = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    out = torch.empty(0)
    for step, batch in enumerate(loader):
        out = on_batch(batch.to(device, non_blocking=True))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step == 0:
            _check(out)  # before the clock starts
            start, cpu_start = time.perf_counter(), time.process_time()
        else:
            clips += out.shape[0]
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if clips == 0:
        raise ValueError("need more than one batch per run: raise --samples")
    _check(out)  # after the clock stops
    return clips / elapsed, 1000.0 * cpu / clips


def _check(out: Tensor) -> None:
    if not torch.isfinite(out.float()).all():
        raise RuntimeError("pipeline produced non-finite values")


def _hue_name(hue: float) -> str:
    return f"hue {hue:g}"


def build_configs(folders: list[Path], args: argparse.Namespace) -> list[Config]:
    """The pipelines to time, each over ``args.samples`` clips of the tree.

    Ours delivers uint8 batches: the float conversion (and normalisation) is the model
    device's job, so on ``--device cpu`` it is not timed unless ``--convert-on-cpu``.
    """
    device = torch.device(args.device)
    records = [
        ClipRecord(path=f, label=0, clip_id=f.name, kind="frames", source=f"bench:{i + 1}")
        for i, f in enumerate(folders)
    ]

    Transform = Callable[[Tensor, torch.Generator], Tensor]

    def ours(train: bool, transform: Transform | None, load_size: int) -> Cycled:
        dataset = ClipDataset(
            records,
            num_frames=args.clip_len,
            load_size=load_size,
            train=train,
            transform=transform,
        )
        return Cycled(dataset, args.samples)

    def folders_of(train: bool, load: Callable[[list[Path]], Tensor]) -> ClipFolders:
        return ClipFolders(
            folders, clip_len=args.clip_len, train=train, length=args.samples, load=load
        )

    evaluate = ClipEval(size=args.crop).to(device)
    convert = evaluate if device.type != "cpu" or args.convert_on_cpu else _identity
    configs = []
    for hue in args.hue:
        # No mean/std, so no buffers: the same module serves the workers (CPU) and --device.
        augment = ClipAugment(size=args.crop, jitter=args.jitter, hue=hue).to(device)
        mode = f"train, {_hue_name(hue)}"
        configs += [
            Config("ours", mode, ours(True, augment.augment_clip, args.load_size), convert),
            Config(
                "baseline",
                mode,
                folders_of(True, BaselineTrainLoad(args.crop, args.jitter, hue)),
                _identity,
            ),
        ]
        if args.device_rows:
            configs.append(
                Config("ours (augment on device)", mode, ours(True, None, args.load_size), augment)
            )
    configs += [
        Config("ours", "eval", ours(False, None, args.crop), convert),
        Config("baseline", "eval", folders_of(False, BaselineEvalLoad(args.crop)), _identity),
        Config("decode bound", "train", folders_of(True, DecodeOnly(args.load_size)), _identity),
        Config("decode bound", "eval", folders_of(False, DecodeOnly(args.crop)), _identity),
    ]
    return configs


def _worker_settings(workers: list[int]) -> list[tuple[int, bool]]:
    """(workers, persistent): 0, then each count with fresh and with persistent workers."""
    out: list[tuple[int, bool]] = []
    for w in workers:
        out += [(w, False)] if w == 0 else [(w, False), (w, True)]
    return out


def _workers_label(workers: int, persistent: bool) -> str:
    return f"{workers} persistent" if persistent else str(workers)


def run(args: argparse.Namespace) -> list[Result]:
    """Median clips/s and CPU ms/clip of every configuration over ``args.repeats`` rounds."""
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(args.root) if args.root else Path(tmp)
        split = root / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
        if not split.is_file():
            log.info(
                "generating %d clips x %d frames of %dpx %s JPEG (q=%d) under %s",
                args.clips,
                args.frames,
                args.image_size,
                args.content,
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
                grain=args.grain,
                content=args.content,
            )
            log.info("generated in %.1f s", time.perf_counter() - t0)
        configs = build_configs(read_clip_folders(root), args)
        samples: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        for round_ in range(args.repeats):
            for workers, persistent in _worker_settings(args.workers):
                for config in configs:
                    if persistent and config.pipeline == "decode bound":
                        continue
                    with torch.no_grad():
                        rate, cpu_ms = time_loader(
                            config.dataset,
                            batch_size=args.batch_size,
                            workers=workers,
                            persistent=persistent,
                            on_batch=config.on_batch,
                            device=device,
                        )
                    label = _workers_label(workers, persistent)
                    log.info(
                        "round %d %-26s %-15s workers=%s: %.1f clips/s, main CPU %.2f ms/clip",
                        round_ + 1,
                        config.pipeline,
                        config.mode,
                        label,
                        rate,
                        cpu_ms,
                    )
                    key = (config.pipeline, config.mode, label)
                    samples.setdefault(key, []).append((rate, cpu_ms))
    return [
        Result(
            pipeline,
            mode,
            workers,
            statistics.median(r for r, _ in runs),
            statistics.median(c for _, c in runs),
        )
        for (pipeline, mode, workers), runs in samples.items()
    ]


def report(results: list[Result], args: argparse.Namespace) -> str:
    """Markdown table: clips/s, speed-up over the baseline and share of the decode bound."""
    by_key = {(r.pipeline, r.mode, r.workers): r for r in results}
    convert = "on the CPU" if args.device != "cpu" or args.convert_on_cpu else "left to the device"
    lines = [
        f"clips of {args.clip_len} frames, {args.image_size}px {args.content} JPEG "
        f"q{args.quality} (grain ±{args.grain}; a tree given with --root is used as it is) -> "
        f"{args.crop}px, load size {args.load_size}, batch {args.batch_size}, "
        f"{args.samples} clips per run, median of {args.repeats} interleaved rounds, ours' float "
        f"conversion {convert}, main-process torch threads {torch.get_num_threads()}",
        "",
        "| mode | workers | pipeline | clips/s | vs baseline | of decode bound "
        "| CPU ms/clip (0 workers) |",
        "|---|---|---|---|---|---|---|",
    ]
    modes = [f"train, {_hue_name(h)}" for h in args.hue] + ["eval"]
    for workers, persistent in _worker_settings(args.workers):
        label = _workers_label(workers, persistent)
        bound_label = str(workers)  # the bound is timed with fresh workers
        for mode in modes:
            base = by_key.get(("baseline", mode, label))
            bound = by_key.get(("decode bound", "eval" if mode == "eval" else "train", bound_label))
            for pipeline in ["ours", "ours (augment on device)", "baseline"]:
                r = by_key.get((pipeline, mode, label))
                if r is None or base is None:
                    continue
                cpu = f"{r.cpu_ms_per_clip:.2f}" if workers == 0 else "-"
                share = f"{r.clips_per_s / bound.clips_per_s:.2f}" if bound else "-"
                lines.append(
                    f"| {mode} | {label} | {pipeline} | {r.clips_per_s:.1f} "
                    f"| {r.clips_per_s / base.clips_per_s:.2f}x | {share} | {cpu} |"
                )
        for mode in ("train", "eval"):
            r = by_key.get(("decode bound", mode, label))
            if r is not None:
                lines.append(
                    f"| {mode} | {label} | decode bound | {r.clips_per_s:.1f} | - | 1.00 "
                    f"| {r.cpu_ms_per_clip:.2f} |"
                    if workers == 0
                    else f"| {mode} | {label} | decode bound | {r.clips_per_s:.1f} | - | 1.00 | - |"
                )
    command = shlex.join(["python", *sys.argv])
    lines += [
        "",
        "`baseline` is the reference DFER (M3DFEL) loader: per frame PIL open -> RGB, one random "
        "sized crop per clip resized to the crop with PIL bilinear, one flip per clip, "
        "GroupColorJitter (torchvision's functional adjust_* on PIL, random order, hue when "
        "on), stack, float tensor. `decode bound`: the sampled frames decoded with PIL draft to "
        "the load size and nothing else; `of decode bound` is clips/s over that bound's.",
        "",
        f"reproduce: {command}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="DFEW-layout tree to use or create (default: temp dir)")
    parser.add_argument("--clips", type=int, default=64, help="clips to generate")
    parser.add_argument("--frames", type=int, default=40, help="frames per generated clip")
    parser.add_argument("--image-size", type=int, default=224, help="side of generated frames")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of generated frames")
    parser.add_argument(
        "--content",
        choices=("faces", "texture"),
        default="faces",
        help="generated frames: rendered faces (data.synthetic) or panned texture, plus grain",
    )
    parser.add_argument(
        "--grain",
        type=int,
        default=6,
        help="pixel noise (±grain) of generated frames: more grain, costlier JPEG decoding",
    )
    parser.add_argument("--clip-len", type=int, default=16, help="frames per sampled clip")
    parser.add_argument("--crop", type=int, default=112, help="output side S")
    parser.add_argument("--load-size", type=int, default=112, help="decode side for training")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples", type=int, default=128, help="clips per timed run")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--jitter", type=float, default=0.4, help="brightness/contrast/saturation")
    parser.add_argument(
        "--hue", type=float, nargs="+", default=[0.0, 0.4], help="hue jitter(s), both pipelines"
    )
    parser.add_argument("--device", default="cpu", help="where ClipAugment/ClipEval run")
    parser.add_argument(
        "--convert-on-cpu",
        action="store_true",
        help="time ours' uint8 -> float conversion on the CPU too (the device's job otherwise)",
    )
    parser.add_argument(
        "--device-rows", action="store_true", help="also time augment_on=device on --device"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and OpenCV threads of the main process (0: their defaults); 1 avoids "
        "oversubscribing the cores with the DataLoader workers and spin-waiting threads",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)  # ours' colour jitter runs OpenCV kernels
    results = run(args)
    print(report(results, args))


if __name__ == "__main__":
    main()
