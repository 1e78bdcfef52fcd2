"""Experiment runners built on the LightningCLI factory: the DFEW 5-fold protocol and the cost
report of a config."""

from __future__ import annotations

import csv
import io
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import ModelCheckpoint

from hdf_lightning.data.splits import check_dfew_fold
from hdf_lightning.evaluation.cost import format_cost, measure_cost
from hdf_lightning.evaluation.stats import mean_std
from hdf_lightning.faults import RunLock, launched_as_secondary_rank
from hdf_lightning.io import atomic_write_text
from hdf_lightning.lit.lightning_cli import HDFCLI, configure_wandb_mode, make_cli
from hdf_lightning.run_folder import RunLayout

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"


def build_cli(args: Sequence[str], *, pretrained: bool = True) -> HDFCLI:
    """Parse and instantiate a fit-style config without running a subcommand (``run=False``);
    ``pretrained=False`` builds the network without its pretrained weights.

    Returns the :class:`~hdf_lightning.lit.lightning_cli.HDFCLI` with ``.model``,
    ``.datamodule`` and ``.trainer``.
    """
    configure_wandb_mode()
    with warnings.catch_warnings():
        # the arguments come from ``args``, not from the ``hdf cv``/``hdf cost`` command line
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return make_cli(args, run=False, pretrained=pretrained)


def _metrics_of(results: Sequence[Mapping[str, float]]) -> dict[str, float]:
    values = results[0] if results else {}
    return {"war": float(values["test/war"]), "uar": float(values["test/uar"])}


def run_fold(config: str, fold: int, out: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Fit one fold, then test its best-validation and last checkpoints.

    Resumes an interrupted fit of the fold as ``hdf fit`` would be told to
    (:meth:`~hdf_lightning.run_folder.RunLayout.resume_candidate`: ``interrupted.ckpt``, written
    on SIGTERM, else ``last.ckpt``, else the newest checkpoint of ``<out>/fold_<k>``).
    Writes ``<out>/fold_<k>/result.json`` last, so its presence marks the fold finished.
    """
    fold_dir = out / f"fold_{fold}"
    args = [
        "--config",
        config,
        f"--data.init_args.fold={fold}",
        f"--trainer.default_root_dir={fold_dir}",
        *overrides,
    ]
    cli = build_cli(args)
    layout = RunLayout(fold_dir)
    resume = layout.resume_candidate()
    ckpt_path = str(resume) if resume is not None else None
    if ckpt_path:
        log.info("fold %d: resuming from %s", fold, ckpt_path)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    checkpoint = cli.trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else None
    best = _metrics_of(cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best_path))
    last_metrics = _metrics_of(
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(layout.last))
    )
    protocol = getattr(cli.datamodule, "protocol", "unknown")
    result = {
        "fold": fold,
        "protocol": protocol,
        "best": best,
        "last": last_metrics,
        "best_ckpt": best_path,
        "epochs": cli.trainer.current_epoch,
    }
    atomic_write_text(fold_dir / RESULT_FILE, json.dumps(result, indent=2))
    return result


def _percent_mean_std(values: Sequence[float]) -> str:
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def cv_table(results: Sequence[dict[str, Any]]) -> str:
    """Markdown table: per-fold and mean ± std WAR/UAR (%) for best and last checkpoints."""
    protocols = sorted({str(r["protocol"]) for r in results})
    lines = [
        f"protocol: {', '.join(protocols)} (best = highest val/uar epoch; last = final epoch)",
        "",
        "| fold | WAR best | UAR best | WAR last | UAR last |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        b, la = r["best"], r["last"]
        lines.append(
            f"| {r['fold']} | {100 * b['war']:.2f} | {100 * b['uar']:.2f} | "
            f"{100 * la['war']:.2f} | {100 * la['uar']:.2f} |"
        )
    cols = [[r[k][m] for r in results] for k in ("best", "last") for m in ("war", "uar")]
    lines.append("| mean ± std | " + " | ".join(_percent_mean_std(c) for c in cols) + " |")
    return "\n".join(lines)


def run_cross_validation(
    config: str, *, folds: Sequence[int], out: Path, overrides: Sequence[str] = ()
) -> str:
    """Run the given folds in order, skipping finished ones; write ``cv_results.{md,csv}``.

    An interrupted run picks up at the first fold without ``result.json`` (and resumes that fold's
    fit from its checkpoints, see :func:`run_fold`). The run holds a :class:`RunLock` on ``out``
    throughout, so a second ``hdf cv`` into the same folder is refused while this one lives.
    """
    for fold in folds:
        check_dfew_fold(fold)
    out.mkdir(parents=True, exist_ok=True)
    if launched_as_secondary_rank():  # the other DDP ranks join rank 0's run
        return _run_folds(config, folds, out, overrides)
    with RunLock(out, "--out"):
        return _run_folds(config, folds, out, overrides)


def _run_folds(config: str, folds: Sequence[int], out: Path, overrides: Sequence[str]) -> str:
    results = []
    for fold in folds:
        done = out / f"fold_{fold}" / RESULT_FILE
        if done.is_file():
            log.info("fold %d already finished (%s): skipped", fold, done)
            results.append(json.loads(done.read_text()))
            continue
        log.info("fold %d: fit + test", fold)
        results.append(run_fold(config, fold, out, overrides))
    table = cv_table(results)
    atomic_write_text(out / "cv_results.md", table + "\n")
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["fold", "protocol", "war_best", "uar_best", "war_last", "uar_last"])
    for r in results:
        best, last = r["best"], r["last"]
        writer.writerow(
            [r["fold"], r["protocol"], best["war"], best["uar"], last["war"], last["uar"]]
        )
    atomic_write_text(out / "cv_results.csv", rows.getvalue())
    return table


def cost_from_config(
    config: str, *, batch_size: int = 1, iters: int = 5, device: str = "cpu"
) -> str:
    """Cost report of the model a fit config builds, at the DataModule's input size."""
    # the cost does not depend on the weights: nothing is downloaded for it
    cli = build_cli(["--config", config, "--trainer.logger=false"], pretrained=False)
    dm = cli.datamodule
    shape = (3, int(dm.num_frames), int(dm.crop_size), int(dm.crop_size))
    report = measure_cost(cli.model.net, shape, batch_size=batch_size, device=device, iters=iters)
    return format_cost(report)
