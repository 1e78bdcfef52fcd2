"""Watch the pooled feature of a training run: active units and feature norm, step by step.

A diagnostic for runs that stay at chance level. It trains ``--steps`` optimisation steps of an
``hdf fit`` configuration (no validation) and prints, every ``--every`` steps, the training loss,
the fraction of the feature's units that are non-zero for at least one clip of the batch (active
units) and the mean L2 norm of the feature ``(B, D)`` the model returns next to its logits. A
head whose units die (fraction -> 0) or whose feature shrinks to 0 predicts a constant class: the
loss settles at the entropy of the class prior (ln 7 = 1.946 for balanced classes).

    python scripts/head_activity.py --steps 90 -- --config configs/demo.yaml \\
        --config configs/ablations/x3d_sam.yaml --model.net.head_dim=128 ...

Everything after ``--`` is passed to the ``hdf fit`` parser unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from hdf_lightning.lit.lightning_cli import make_cli


class HeadActivity(pl.Callback):
    """Prints the loss, the active-unit fraction and the mean feature norm of training batches."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.feature: Tensor | None = None

    def capture(self, output: tuple[Tensor, Tensor]) -> None:
        if self.feature is None:  # the step's first pass (SAM's second is at perturbed weights)
            self.feature = output[1].detach()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *_: Any
    ) -> None:
        step, feature, self.feature = trainer.global_step, self.feature, None
        if feature is None or (step - 1) % self.every:
            return
        feature = feature.float().flatten(1)  # (B, D)
        active = float((feature.abs().sum(0) > 0).float().mean())
        norm = float(feature.norm(dim=1).mean())
        loss = float(outputs["loss"] if isinstance(outputs, dict) else outputs)
        print(f"step {step:5d}  loss {loss:.4f}  active units {active:.2f}  norm {norm:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=90, help="optimisation steps to train")
    parser.add_argument("--every", type=int, default=10, help="print every this many steps")
    args = parser.parse_args(argv[:split])
    fit_args = [
        *argv[split + 1 :],
        f"--trainer.max_steps={args.steps}",
        "--trainer.limit_val_batches=0",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
    ]
    cli = make_cli(fit_args, run=False)
    watcher = HeadActivity(args.every)
    model = cli.model
    forward = model.forward

    def watched_forward(x: Tensor) -> tuple[Tensor, Tensor]:
        out = forward(x)
        if model.training and torch.is_grad_enabled():
            watcher.capture(out)
        return out

    model.forward = watched_forward  # type: ignore[method-assign]
    cli.trainer.callbacks.append(watcher)
    cli.trainer.fit(model, datamodule=cli.datamodule)
    return 0


if __name__ == "__main__":
    sys.exit(main())
