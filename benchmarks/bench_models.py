"""Training-step and inference throughput of X3D vs HDFNet (X3D + 4 DAMs) on this machine.

Prints, per model, the median time of a training step (forward + backward + AdamW step, train mode)
and of an inference forward (eval mode, no gradients), the clips/s they give, the DAM overhead ratio
HDFNet / X3D, and the time of each DAM alone (forward + backward) at its stage's shape. Warm-up
iterations are excluded; the two models are measured alternately so that load changes on a shared
machine affect both alike.

    python benchmarks/bench_models.py --batch 8 --frames 16 --size 112 --iters 10 --threads 2
    python benchmarks/bench_models.py --batch 16 --frames 8 --size 64 \
        --width-factor 1.0 --depth-factor 0.5 --head-dim 128      # the tiny CPU demo model
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from hdf_lightning.layers import DAM
from hdf_lightning.models import X3D, HDFNet


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="clips per step")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip T")
    parser.add_argument("--size", type=int, default=112, help="crop size S (H = W)")
    parser.add_argument("--iters", type=int, default=10, help="measured iterations per model")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured iterations per model")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--width-factor", type=float, default=2.0)
    parser.add_argument("--depth-factor", type=float, default=2.2)
    parser.add_argument("--head-dim", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def median_seconds(fn: Callable[[], object], iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)

    def step() -> None:
        model.train()
        logits, _ = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def inference_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def infer() -> None:
        model.eval()
        with torch.inference_mode():
            model(x)

    return infer


def alternate(fns: dict[str, Callable[[], None]], iters: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    common = {
        "num_classes": args.classes,
        "num_frames": args.frames,
        "width_factor": args.width_factor,
        "depth_factor": args.depth_factor,
        "head_dim": args.head_dim,
    }
    models: dict[str, X3D] = {"X3D": X3D(**common), "HDFNet": HDFNet(**common)}
    x = torch.rand(args.batch, 3, args.frames, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))

    train = alternate(
        {name: train_step_fn(m, x, y) for name, m in models.items()}, args.iters, args.warmup
    )
    infer = alternate(
        {name: inference_fn(m, x) for name, m in models.items()}, args.iters, args.warmup
    )

    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(
        f"# batch {args.batch}, {args.frames}x{args.size}x{args.size}, width "
        f"{args.width_factor}, depth {args.depth_factor}, head {args.head_dim}, "
        f"median of {args.iters} after {args.warmup} warm-up"
    )
    print(
        f"{'model':<8} {'params':>10} {'train step s':>13} {'train clip/s':>13} "
        f"{'infer s':>9} {'infer clip/s':>13}"
    )
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{name:<8} {params:>10,} {train[name]:>13.4f} {args.batch / train[name]:>13.2f} "
            f"{infer[name]:>9.4f} {args.batch / infer[name]:>13.2f}"
        )
    train_ratio = train["HDFNet"] / train["X3D"]
    infer_ratio = infer["HDFNet"] / infer["X3D"]
    verdict = "within" if train_ratio <= 1.15 else "ABOVE"
    print(
        f"DAM overhead: training step x{train_ratio:.3f} ({verdict} the 1.15 target), "
        f"inference x{infer_ratio:.3f}"
    )
    print(f"SAM step (two forward/backward passes) ~ {2 * train['HDFNet']:.4f} s for HDFNet")

    hdf = models["HDFNet"]
    with torch.no_grad():
        shapes = [tuple(s.shape) for s in hdf.forward_stages(x[:1])]
    print("DAM alone, forward + backward at the training batch:")
    dam_total = 0.0
    for index, shape in enumerate(shapes, start=1):
        dam = DAM(shape[1], args.frames)
        feat = torch.randn(args.batch, *shape[1:], requires_grad=True)

        def dam_step(dam: DAM = dam, feat: torch.Tensor = feat) -> None:
            dam(feat).sum().backward()

        seconds = median_seconds(dam_step, args.iters, args.warmup)
        dam_total += seconds
        print(f"  after stage {index} {shape[1:]}: {seconds * 1e3:8.2f} ms")
    print(
        f"  all {len(shapes)} DAMs: {dam_total * 1e3:.2f} ms = x{1 + dam_total / train['X3D']:.3f} "
        "of the X3D training step (less sensitive to machine load than the ratio above)"
    )
    print("reproduce: python " + " ".join(shlex.quote(a) for a in sys.argv))


if __name__ == "__main__":
    main()
