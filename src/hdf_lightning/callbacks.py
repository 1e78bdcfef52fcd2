"""Callbacks for checking distributed runs and keeping evaluation outputs.

* :class:`RankConsistencyCheck` — after training, every rank hashes its parameters; the run
  fails loudly if the ranks disagree (a DDP bug would otherwise go unnoticed), and rank 0 writes
  the digests to ``<default_root_dir>/rank_digests.json``.
* :class:`EvalPredictionWriter` — writes each rank's test predictions (dataset index, label,
  prediction, probabilities) to ``<default_root_dir>/predictions/test_rank<r>.pt`` so that
  metrics can be
  recomputed offline over the whole evaluation set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of all parameters (names, dtypes and exact bytes).

    Buffers are left out on purpose: without ``sync_batchnorm`` each rank's BatchNorm running
    statistics see only its own last batch (DDP broadcasts rank 0's at the next forward).
    """
    h = hashlib.sha256()
    for name, tensor in module.named_parameters():
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class RankConsistencyCheck(pl.Callback):
    """Fail the run when the ranks of a distributed job end training with different weights."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        digest = state_digest(pl_module)
        digests: list[str] = [digest]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, digest)
            digests = [str(d) for d in gathered]
        if trainer.is_global_zero:
            out = Path(trainer.default_root_dir) / "rank_digests.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"digests": digests}, indent=2))
        if len(set(digests)) != 1:
            raise RuntimeError(
                f"ranks ended training with different weights: {digests}. "
                "Gradient synchronisation or buffer broadcasting is broken."
            )


class EvalPredictionWriter(pl.Callback):
    """Keep every test prediction of this rank and save them at the end of the test epoch."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Tensor]] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows.clear()

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        logits = outputs["logits"] if isinstance(outputs, dict) else pl_module(batch["video"])[0]
        probs = logits.float().softmax(-1).cpu()
        self._rows.append(
            {
                "index": batch["index"].cpu(),
                "label": batch["label"].cpu(),
                "pred": probs.argmax(-1),
                "probs": probs,
            }
        )

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._rows:
            return
        merged = {k: torch.cat([r[k] for r in self._rows]) for k in self._rows[0]}
        out = Path(trainer.default_root_dir) / "predictions" / f"test_rank{trainer.global_rank}.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(merged, out)
