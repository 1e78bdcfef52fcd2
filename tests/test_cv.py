"""``hdf cv``: the results table, a 5-fold run on generated DFEW data, and resume after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from cli_utils import HDF, REPO, error_line, run_console, sam_with_accumulation_config
from hdf_lightning.cli import main
from hdf_lightning.data.synthetic import SynthConfig, generate_dfew
from hdf_lightning.runners import RESULT_FILE, cv_table

TINY_DFEW = SynthConfig(
    num_subjects=5, clips_per_subject=2, image_size=32, num_frames_range=(6, 10), seed=1
)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: the tiny 3-D convolutions slow down badly on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _result(fold: int, best: tuple[float, float], last: tuple[float, float]) -> dict[str, Any]:
    return {
        "fold": fold,
        "protocol": "paper",
        "best": {"war": best[0], "uar": best[1]},
        "last": {"war": last[0], "uar": last[1]},
    }


def test_cv_table_rows_mean_std_and_protocol() -> None:
    results = [
        _result(1, (0.5, 0.2), (0.3, 0.1)),
        _result(2, (0.6, 0.4), (0.3, 0.2)),
        _result(3, (0.7, 0.6), (0.3, 0.6)),
    ]
    lines = cv_table(results).splitlines()
    assert lines[0].startswith("protocol: paper (best = highest val/uar epoch")
    assert lines[2] == "| fold | WAR best | UAR best | WAR last | UAR last |"
    assert lines[4] == "| 1 | 50.00 | 20.00 | 30.00 | 10.00 |"
    assert lines[6] == "| 3 | 70.00 | 60.00 | 30.00 | 60.00 |"
    # sample std: best WAR 10, best UAR 20, last WAR 0, last UAR sqrt(0.07) = 26.46
    mean = ["mean ± std", "60.00 ± 10.00", "40.00 ± 20.00", "30.00 ± 0.00", "30.00 ± 26.46"]
    assert lines[-1] == "| " + " | ".join(mean) + " |"
    assert len(lines) == 8


def test_cv_table_single_fold_and_mixed_protocols() -> None:
    honest = {**_result(2, (0.25, 0.5), (0.125, 0.75)), "protocol": "honest"}
    table = cv_table([_result(1, (1.0, 1.0), (0.0, 0.0)), honest])
    assert table.splitlines()[0].startswith("protocol: honest, paper ")
    single = cv_table([honest]).splitlines()
    mean = ["mean ± std", "25.00 ± 0.00", "50.00 ± 0.00", "12.50 ± 0.00", "75.00 ± 0.00"]
    assert single[-1] == "| " + " | ".join(mean) + " |"


def _cv_args(root: Path, out: Path, *, epochs: int = 1) -> list[str]:
    overrides = [
        f"--data.root={root}",
        "--data.num_frames=4",
        "--model.net.num_frames=4",
        "--model.net.width_factor=0.5",
        "--model.net.depth_factor=0.3",
        "--model.net.head_dim=32",
        "--model.net.weights=null",
        "--data.crop_size=32",
        "--data.batch_size=4",
        "--data.num_workers=0",
        f"--trainer.max_epochs={epochs}",
        "--trainer.accelerator=cpu",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.num_sanity_val_steps=0",
        "--cost_report.enabled=false",
        "--figures.enabled=false",
    ]
    return [
        "cv",
        "--config",
        str(REPO / "configs" / "dfew.yaml"),
        f"--out={out}",
        "--overrides",
        json.dumps(overrides),
    ]


def _csv_rows(out: Path) -> list[dict[str, str]]:
    with (out / "cv_results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.usefixtures("one_thread")
def test_cv_five_folds_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate_dfew(tmp_path / "dfew", TINY_DFEW)
    out = tmp_path / "cv"
    assert main(_cv_args(tmp_path / "dfew", out)) == 0

    table = (out / "cv_results.md").read_text()
    assert table.strip() in capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    first_cells = [r.split(" | ")[0] for r in rows[1:]]
    assert first_cells == ["| 1", "| 2", "| 3", "| 4", "| 5", "| mean ± std"]
    assert table.startswith("protocol: paper")

    records = _csv_rows(out)
    assert [r["fold"] for r in records] == ["1", "2", "3", "4", "5"]
    for r in records:
        assert r["protocol"] == "paper"
        values = [float(r[k]) for k in ("war_best", "uar_best", "war_last", "uar_last")]
        assert all(0.0 <= v <= 1.0 for v in values)
        cells = " | ".join(f"{100 * v:.2f}" for v in values)
        assert f"| {r['fold']} | {cells} |" in rows  # the Markdown row shows the CSV's numbers
    for fold in range(1, 6):
        fold_dir = out / f"fold_{fold}"
        assert (fold_dir / RESULT_FILE).is_file()
        assert (fold_dir / "checkpoints" / "best.ckpt").is_file()
        assert (fold_dir / "checkpoints" / "last.ckpt").is_file()


def _wait_for(paths: list[Path], proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if proc.poll() is not None:
            raise AssertionError(f"hdf cv exited with {proc.returncode} before {paths} existed")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {paths}")
        time.sleep(0.05)


@pytest.mark.slow
def test_cv_killed_during_fold_3_resumes_at_fold_3(tmp_path: Path) -> None:
    generate_dfew(tmp_path / "dfew", TINY_DFEW)
    out = tmp_path / "cv"
    args = _cv_args(tmp_path / "dfew", out, epochs=2)
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    with (tmp_path / "first.log").open("wb") as log:
        proc = subprocess.Popen(
            [HDF, *args],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            # killed once fold 3 has written its first-epoch last.ckpt: mid-fit, with a resume point
            _wait_for(
                [out / "fold_2" / RESULT_FILE, out / "fold_3" / "checkpoints" / "last.ckpt"],
                proc,
                timeout=300,
            )
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "fold_3" / RESULT_FILE).exists()
    assert not (out / "cv_results.md").exists()
    finished = {k: (out / f"fold_{k}" / RESULT_FILE).stat().st_mtime_ns for k in (1, 2)}

    rerun = subprocess.run(
        [HDF, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    output = rerun.stdout + rerun.stderr
    for fold in (1, 2):
        assert f"fold {fold} already finished" in output
        assert f"fold {fold}: fit + test" not in output
        assert (out / f"fold_{fold}" / RESULT_FILE).stat().st_mtime_ns == finished[fold]
    assert "fold 3: resuming from" in output and str(out / "fold_3") in output
    for fold in (3, 4, 5):
        assert f"fold {fold}: fit + test" in output
        assert (out / f"fold_{fold}" / RESULT_FILE).is_file()
    assert "fold 4: resuming" not in output

    assert [r["fold"] for r in _csv_rows(out)] == ["1", "2", "3", "4", "5"]
    table = (out / "cv_results.md").read_text()
    assert table.count("\n| ") == 7  # header + 5 folds + mean (the separator starts with "|-")
    assert "| mean ± std |" in table


def test_cv_refuses_what_fit_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SAM with gradient accumulation: hdf cv ends with hdf fit's one-line message, fits nothing."""
    config = str(sam_with_accumulation_config(tmp_path))
    fit_code, fit_err = run_console(["fit", "--config", config], monkeypatch, capsys)
    out = tmp_path / "cv"
    code, err = run_console(["cv", "--config", config, f"--out={out}"], monkeypatch, capsys)
    assert fit_code == code == 2
    assert "accumulate_grad_batches=2 cannot be combined with sam" in error_line(fit_err)
    assert err.splitlines() == [error_line(fit_err)]
    assert not list(out.rglob("*.ckpt"))
