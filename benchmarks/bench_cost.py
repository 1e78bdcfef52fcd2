"""Cost report (parameters, GFLOPs, peak memory, throughput) of the project's models.

GFLOPs follow the paper convention (multiply-accumulates × 1e-9, fvcore style); see
``hdf_lightning.evaluation.cost`` for exactly what each figure measures.

Examples::

    python benchmarks/bench_cost.py --models x3d hdfnet m3dfel --frames 16 --size 112
    python benchmarks/bench_cost.py --models hdfnet --device cuda --batch-size 32 --iters 20
    python benchmarks/bench_cost.py --models my_pkg.nets:MyNet --json runs/cost.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from hdf_lightning.evaluation.cost import CostReport, format_cost, format_cost_table, measure_cost
from hdf_lightning.imports import constructor_parameters, import_object

MODELS: dict[str, str] = {
    "x3d": "hdf_lightning.models:X3D",
    "hdfnet": "hdf_lightning.models:HDFNet",
    "m3dfel": "hdf_lightning.models:M3DFEL",
}

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def build_model(name: str, *, num_classes: int, num_frames: int) -> nn.Module:
    """Instantiate a model by short name (see ``MODELS``) or ``package.module:ClassName``.

    ``num_classes`` and ``num_frames`` are passed to the constructor when it accepts them.
    """
    target = MODELS.get(name.lower(), name)
    if ":" not in target:
        raise ValueError(
            f"unknown model {name!r}: expected one of {sorted(MODELS)} or 'package.module:Class'"
        )
    cls = import_object(target)
    accepted = constructor_parameters(cls)
    arguments = {"num_classes": num_classes, "num_frames": num_frames}
    return cls(**{key: value for key, value in arguments.items() if key in accepted})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["x3d", "hdfnet", "m3dfel"])
    parser.add_argument("--frames", type=int, default=16, help="clip length T")
    parser.add_argument("--size", type=int, default=112, help="crop size S (H = W = S)")
    parser.add_argument("--num-classes", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[CostReport]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    command = " ".join(
        shlex.quote(part)
        for part in ["python", "benchmarks/bench_cost.py", *(argv or sys.argv[1:])]
    )
    device_name = (
        torch.cuda.get_device_name(torch.device(args.device))
        if torch.device(args.device).type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(f"# reproduce: {command}")
    print(
        f"# torch {torch.__version__}, device {args.device} ({device_name}), "
        f"{torch.get_num_threads()} CPU threads"
    )
    reports = []
    for name in args.models:
        model = build_model(name, num_classes=args.num_classes, num_frames=args.frames)
        report = measure_cost(
            model,
            (3, args.frames, args.size, args.size),
            batch_size=args.batch_size,
            device=args.device,
            dtype=DTYPES[args.dtype],
            iters=args.iters,
            warmup=args.warmup,
        )
        reports.append(report)
        print()
        print(format_cost(report))
    print()
    print(format_cost_table(reports))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
        print(f"\n# written: {args.json}")
    return reports


if __name__ == "__main__":
    main()
