"""Step time of the Lightning SAM step against a hand-written PyTorch SAM loop and plain AdamW.

The same network, batch, loss (DSM) and base optimizer everywhere; the batch lives in memory so
only the optimisation step is timed. Lightning's step time is measured between
``on_train_batch_start`` and ``on_train_batch_end`` (the whole ``training_step``: two
forward/backward passes, the perturbation, the restore, the AdamW step and the scheduler step).

    python benchmarks/bench_sam.py                      # tiny HDFNet, 8x64x64, batch 16
    python benchmarks/bench_sam.py --frames 16 --size 112 --width 2.0 --depth 2.2 --head 2048
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from functools import partial

import torch

from gpu_check import fit_steps  # the step timing of the GPU check
from hdf_lightning.lit import HDFClassifier
from hdf_lightning.losses import DSM
from hdf_lightning.models import HDFNet
from hdf_lightning.optim import SAM, frozen_bn_stats, gradient_norm


def make_net(a: argparse.Namespace) -> HDFNet:
    torch.manual_seed(0)
    return HDFNet(num_frames=a.frames, width_factor=a.width, depth_factor=a.depth, head_dim=a.head)


def lightning_steps(
    a: argparse.Namespace, batch: dict[str, torch.Tensor], sam: bool
) -> list[float]:
    module = HDFClassifier(
        make_net(a),
        loss=DSM(),
        optimizer=partial(torch.optim.AdamW, lr=1e-4),
        sam=sam,
        warmup_epochs=0,
    )
    steps = a.warmup + a.iters
    timer = fit_steps(module, itertools.repeat(batch, steps), steps, torch.device("cpu"), "32-true")
    return timer.step_times(a.warmup)


def plain_steps(a: argparse.Namespace, batch: dict[str, torch.Tensor], sam: bool) -> list[float]:
    net = make_net(a)
    loss_fn = DSM()
    x, y = batch["video"], batch["label"]
    if sam:
        opt = SAM(net.parameters(), partial(torch.optim.AdamW, lr=1e-4), rho=0.05)
        base = opt.base_optimizer
    else:
        base = torch.optim.AdamW(net.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(base, lambda s: 1.0)
    times = []
    for _ in range(a.warmup + a.iters):
        t = time.perf_counter()
        logits, feat = net(x)
        out = loss_fn(logits, feat, y, weighted=not sam)
        out.loss.backward()
        if sam:
            g = opt.first_step(zero_grad=True)
            loss_fn.observe_grad_norm(g)
            with frozen_bn_stats(net):
                logits2, feat2 = net(x)
                loss_fn(logits2, feat2, y, weighted=True, grad_norm=g).loss.backward()
            opt.second_step(zero_grad=True)
        else:
            g = gradient_norm(net.parameters())
            loss_fn.observe_grad_norm(g)
            base.step()
            base.zero_grad()
        sched.step()
        times.append(time.perf_counter() - t)
    return times[a.warmup :]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--depth", type=float, default=0.5)
    p.add_argument("--head", type=int, default=128)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    batch = {
        "video": torch.rand(a.batch, 3, a.frames, a.size, a.size, generator=g),
        "label": torch.arange(a.batch) % 7,
        "index": torch.arange(a.batch),
    }
    rows = {}
    # interleave the variants twice so that drift in machine load affects all of them alike
    for _ in range(2):
        for name, fn, sam in (
            ("PyTorch SAM loop", plain_steps, True),
            ("Lightning SAM step", lightning_steps, True),
            ("PyTorch AdamW loop", plain_steps, False),
            ("Lightning AdamW step", lightning_steps, False),
        ):
            rows.setdefault(name, []).extend(fn(a, batch, sam))
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"HDFNet width {a.width} depth {a.depth} head {a.head}, batch {a.batch} x 3 x "
        f"{a.frames} x {a.size}^2, DSM loss, {a.threads} threads, {2 * a.iters} timed steps each"
    )
    print(f"{'variant':<22} {'median s/step':>14} {'min':>8} {'max':>8}")
    for k, v in rows.items():
        print(f"{k:<22} {med[k]:>14.4f} {min(v):>8.4f} {max(v):>8.4f}")
    overhead = med["Lightning SAM step"] / med["PyTorch SAM loop"] - 1
    print(f"Lightning SAM overhead vs PyTorch SAM loop: {100 * overhead:+.1f}% (target <= 5%)")
    ratio = med["Lightning SAM step"] / med["Lightning AdamW step"]
    print(f"Lightning SAM / Lightning AdamW step: {ratio:.2f}x (expected about 2x)")
    print("reproduce: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
