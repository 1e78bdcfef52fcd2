"""GPU check of the SAM step in fp32, bf16-mixed and 16-mixed (with a gradient scaler).

For each precision: the same HDFNet weights and batch, one Lightning-free SAM step written as
``HDFClassifier.training_step`` does it (autocast forward, scaled backward, g from the scaled
gradients, perturb, second pass with frozen BatchNorm statistics, restore, scaler step), then
timed steps.
Prints the first-pass loss of each precision against fp32 (parity), g, whether the step was skipped,
and the median step time.

    python benchmarks/gpu_sam_check.py                   # HDFNet 16x112, batch 32
    python benchmarks/gpu_sam_check.py --batch 8 --iters 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from functools import partial

import torch

from gpu_check import sam_step  # the same step as the loader/step check
from hdf_lightning.losses import DSM
from hdf_lightning.models import HDFNet
from hdf_lightning.optim import SAM

PRECISIONS = {"fp32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check needs a GPU")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    base = HDFNet(num_frames=a.frames).cuda()
    x = torch.rand(a.batch, 3, a.frames, a.size, a.size, device="cuda")
    y = torch.arange(a.batch, device="cuda") % 7
    print(f"{torch.cuda.get_device_name()}, HDFNet 3x{a.frames}x{a.size}^2, batch {a.batch}")
    cols = ("precision", "loss(1st)", "|Δ| vs fp32", "g", "skipped", "s/step")
    print(f"{cols[0]:<12}{cols[1]:>12}{cols[2]:>14}{cols[3]:>12}{cols[4]:>9}{cols[5]:>10}")
    ref = None
    for name, dtype in PRECISIONS.items():
        net = copy.deepcopy(base)
        sam = SAM(net.parameters(), partial(torch.optim.AdamW, lr=5e-4), rho=0.05)
        scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
        loss, g, skipped = sam_step(net, sam, DSM(), x, y, dtype, scaler)
        ref = loss if ref is None else ref
        times = []
        for i in range(a.warmup + a.iters):
            torch.cuda.synchronize()
            t = time.perf_counter()
            sam_step(net, sam, DSM(), x, y, dtype, scaler)
            torch.cuda.synchronize()
            if i >= a.warmup:
                times.append(time.perf_counter() - t)
        print(
            f"{name:<12}{loss:>12.5f}{abs(loss - ref):>14.2e}{g:>12.4f}{skipped!s:>9}"
            f"{statistics.median(times):>10.4f}"
        )
    print("reproduce: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
