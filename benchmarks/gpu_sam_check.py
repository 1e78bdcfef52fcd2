"""GPU check of the SAM step in fp32, bf16-mixed and 16-mixed (with a gradient scaler).

For each precision: the same HDFNet weights and batch, the library's training step
(``HDFClassifier.training_step`` under a Lightning ``Trainer``, as ``benchmarks/gpu_check.py``
runs it): one step, then timed steps. Prints the first-pass loss of each precision against fp32
(parity), g, whether the step was skipped, and the median step time.

    python benchmarks/gpu_sam_check.py                   # HDFNet 16x112, batch 32
    python benchmarks/gpu_sam_check.py --batch 8 --iters 5
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys

import torch

from gpu_check import PRECISIONS, classifier, fit_steps  # the same step as the loader/step check
from hdf_lightning.lit.lightning_cli import quiet_library_output
from hdf_lightning.models import HDFNet


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
    quiet_library_output()
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    device = torch.device("cuda")
    base = HDFNet(num_frames=a.frames)
    x = torch.rand(a.batch, 3, a.frames, a.size, a.size, device=device)
    y = torch.arange(a.batch, device=device) % 7
    print(f"{torch.cuda.get_device_name()}, HDFNet 3x{a.frames}x{a.size}^2, batch {a.batch}")
    cols = ("precision", "loss(1st)", "|Δ| vs fp32", "g", "skipped", "s/step")
    print(f"{cols[0]:<12}{cols[1]:>12}{cols[2]:>14}{cols[3]:>12}{cols[4]:>9}{cols[5]:>10}")
    ref = None
    for name, precision in PRECISIONS.items():
        module = classifier(copy.deepcopy(base))
        first = fit_steps(
            module, itertools.repeat({"video": x, "label": y}, 1), 1, device, precision
        )
        loss, g, skipped = first.losses[0], first.metrics["train/grad_norm"], module.skipped_steps
        ref = loss if ref is None else ref
        steps = a.warmup + a.iters
        timed = fit_steps(
            module, itertools.repeat({"video": x, "label": y}, steps), steps, device, precision
        )
        print(
            f"{name:<12}{loss:>12.5f}{abs(loss - ref):>14.2e}{g:>12.4f}{skipped > 0!s:>9}"
            f"{statistics.median(timed.step_times(a.warmup)):>10.4f}"
        )
    print("reproduce: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
