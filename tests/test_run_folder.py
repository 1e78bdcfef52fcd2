"""The run-folder layout and the one key/shape comparison of checkpoints."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import torch

from hdf_lightning.checkpoints import compare_state_dicts
from hdf_lightning.run_folder import RunLayout, config_filename, find_run_config
from import_utils import loaded_modules


def _touch(path: Path, mtime_ns: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_layout_names_every_file_of_a_run(tmp_path: Path) -> None:
    run = RunLayout(tmp_path / "run")
    assert run.checkpoints == tmp_path / "run" / "checkpoints"
    assert run.best == run.checkpoints / "best.ckpt"
    assert run.last == run.checkpoints / "last.ckpt"
    assert run.interrupted == run.checkpoints / "interrupted.ckpt"
    assert run.figures == run.root / "figures"
    assert run.config == run.root / "config.yaml"
    assert run.lock == run.root / ".hdf-run.lock"
    assert (config_filename("fit"), config_filename("test")) == ("config.yaml", "config_test.yaml")
    assert RunLayout(str(tmp_path)) == RunLayout(tmp_path)
    assert not (tmp_path / "run").exists()  # building a layout creates nothing


def test_resume_candidate_prefers_interrupted_then_last_then_newest(tmp_path: Path) -> None:
    run = RunLayout(tmp_path)
    assert run.resume_candidate() is None and run.checkpoint_files() == []
    other = _touch(run.checkpoint("epoch3"), 3_000_000_000)
    best = _touch(run.best, 2_000_000_000)
    assert run.checkpoint_files() == [other, best]
    assert run.resume_candidate() == other
    last = _touch(run.last, 1_000_000_000)
    assert run.resume_candidate() == last
    assert _touch(run.interrupted, 500_000_000) == run.resume_candidate()


def test_run_config_is_found_beside_the_checkpoints_or_in_a_logger_folder(tmp_path: Path) -> None:
    run = RunLayout(tmp_path / "run")
    ckpt = _touch(run.best, 1)
    assert find_run_config(ckpt) is None
    logged = _touch(run.root / "lightning_logs" / "version_0" / "config.yaml", 1)
    assert find_run_config(ckpt) == logged.resolve()
    _touch(run.config, 2)
    assert find_run_config(ckpt) == run.config.resolve()


def test_reports_go_to_the_logger_folder_else_the_run_folder(tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    logged = SimpleNamespace(log_dir=str(tmp_path / "logs" / "version_0"), save_dir="unused")
    saved = SimpleNamespace(log_dir=None, save_dir=str(tmp_path / "wandb"))
    folders = [
        RunLayout.for_reports(SimpleNamespace(logger=logger, default_root_dir=root)).root
        for logger in (logged, saved, SimpleNamespace(), None)
    ]
    assert folders == [tmp_path / "logs" / "version_0", tmp_path / "wandb", Path(root), Path(root)]


def test_compare_state_dicts_names_missing_unknown_and_reshaped_tensors() -> None:
    expected = {"a": torch.zeros(2, 3), "b": torch.zeros(4), "c": torch.zeros(1)}
    saved = {"a": torch.zeros(3, 2), "b": torch.zeros(4), "d": torch.zeros(1)}
    diff = compare_state_dicts(saved, expected)
    assert diff.missing == ("c",) and diff.unexpected == ("d",)
    assert diff.mismatched == (("a", (3, 2), (2, 3)),)
    assert not compare_state_dicts(expected, expected)


def test_run_folder_loads_neither_torch_nor_lightning() -> None:
    loaded, _ = loaded_modules(
        "import hdf_lightning.run_folder", ("torch", "pytorch_lightning", "lightning")
    )
    assert loaded == []
