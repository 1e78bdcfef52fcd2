"""Training through the CLI: resume equals an uninterrupted run; 2-process CPU DDP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from cli_utils import REPO, TINY_NET, run_hdf, tiny_fit_args, tiny_synthetic_data
from hdf_lightning.cli import main
from hdf_lightning.evaluation.metrics import uar_war_from_predictions


def _weights(cli) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return {k: v.detach().clone() for k, v in cli.model.state_dict().items()}


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path: Path) -> None:
    # 10 subjects x 2 clips, fold 1 -> 16 training clips, batch 8 -> 2 steps per epoch
    data = ["--data.num_subjects=10"]
    full = main(tiny_fit_args(tmp_path / "full", epochs=3, extra=data))
    assert full.trainer.global_step == 6

    # same schedule (max_epochs=3), stopped after 2 epochs as a preempted job would be
    stop = ["--trainer.callbacks+=cli_utils.StopAfterEpochs", "--trainer.callbacks.epochs=2"]
    first = main(tiny_fit_args(tmp_path / "part", epochs=3, extra=[*data, *stop]))
    assert first.trainer.global_step == 4
    last = tmp_path / "part" / "run" / "checkpoints" / "last.ckpt"
    resumed = main(tiny_fit_args(tmp_path / "part", epochs=3, extra=[*data, f"--ckpt_path={last}"]))
    assert resumed.trainer.global_step == 6

    want, got = _weights(full), _weights(resumed)
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)
    # and the interrupted run really was behind: guards against comparing two finished runs
    behind = _weights(first)
    assert any(not torch.equal(behind[k], want[k]) for k in want if want[k].is_floating_point())


@pytest.mark.slow
def test_ddp_two_cpu_processes_identical_weights_and_global_uar(tmp_path: Path) -> None:
    root = tmp_path / "run"
    common = [
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        *TINY_NET,
        # 5 subjects x 3 clips: fold 1 tests 3 clips, an odd count that 2 ranks cannot split evenly
        *tiny_synthetic_data(tmp_path / "data", batch_size=4),
        "--data.clips_per_subject=3",
        f"--trainer.default_root_dir={root}",
        "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
        f"--trainer.logger.save_dir={root}",
        "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=1",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
    ]
    fit = run_hdf(
        [
            "fit",
            *common,
            "--trainer.max_epochs=2",
            "--trainer.callbacks+=hdf_lightning.callbacks.RankConsistencyCheck",
        ],
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-4000:]
    digests = json.loads((root / "rank_digests.json").read_text())["digests"]
    assert len(digests) == 2 and digests[0] == digests[1]

    ckpt = root / "checkpoints" / "last.ckpt"
    test = run_hdf(
        [
            "test",
            *common,
            f"--ckpt_path={ckpt}",
            "--trainer.callbacks+=hdf_lightning.callbacks.EvalPredictionWriter",
        ],
        cwd=tmp_path,
    )
    assert test.returncode == 0, test.stderr[-4000:]
    parts = [torch.load(p) for p in sorted((root / "predictions").glob("test_rank*.pt"))]
    assert len(parts) == 2
    index = torch.cat([p["index"] for p in parts])
    assert sorted(index.tolist()) == [0, 1, 2]  # every test clip exactly once across the ranks
    preds = torch.cat([p["pred"] for p in parts])
    labels = torch.cat([p["label"] for p in parts])
    war, uar = uar_war_from_predictions(preds, labels, 7)

    metrics_files = sorted(root.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    rows = list(csv.DictReader(metrics_files[-1].open()))
    logged = next(r for r in rows if r.get("test/uar"))
    assert float(logged["test/uar"]) == pytest.approx(float(uar), abs=1e-6)
    assert float(logged["test/war"]) == pytest.approx(float(war), abs=1e-6)


@pytest.mark.slow
def test_ddp_per_device_first_sam_pass_keeps_ranks_identical(tmp_path: Path) -> None:
    """``sam_sync_first_pass: false``: the first pass skips the all-reduce, the second does not."""
    root = tmp_path / "run"
    proc = run_hdf(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            *TINY_NET,
            *tiny_synthetic_data(tmp_path / "data", batch_size=4),
            "--model.sam_sync_first_pass=false",
            f"--trainer.default_root_dir={root}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.strategy=ddp",
            "--trainer.devices=2",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=1",
            "--trainer.callbacks+=hdf_lightning.callbacks.RankConsistencyCheck",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    digests = json.loads((root / "rank_digests.json").read_text())["digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
