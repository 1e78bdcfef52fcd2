"""The synthetic study script: its defaults follow the demo, and parallel runs wait for the data."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import synthetic_study as study  # noqa: E402


def test_defaults_are_the_demo_sizes() -> None:
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    args = study.parse_args([])
    assert args.epochs == demo["trainer"]["max_epochs"]
    assert args.subjects == demo["data"]["init_args"]["num_subjects"]
    assert args.clips_per_subject == demo["data"]["init_args"]["clips_per_subject"]
    assert args.jobs == 1


def test_parallel_runs_start_after_the_run_that_writes_their_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = study.Settings(1, 5, 2, 1, "honest", (), None)
    runs = [
        study.Run(v, s, tmp_path, s) for s in (0, 1) for v in ("x3d", "x3d_dam", "hdf")
    ]  # two data sets (one per seed), three runs each
    writer = {r.data_root: r for r in reversed(runs)}  # the first run of each data set
    written: set[Path] = set()
    order: list[tuple[str, int]] = []
    envs: dict[tuple[str, int], dict[str, str]] = {}
    lock = threading.Lock()

    def fake_run_one(
        run: study.Run, _: study.Settings, env_extra: dict[str, str] | None = None
    ) -> dict[str, Any]:
        with lock:
            order.append((run.variant, run.seed))
            envs[(run.variant, run.seed)] = dict(env_extra or {})
        if run == writer[run.data_root]:
            time.sleep(0.1)  # writing the data takes a while
            written.add(run.data_root)
        else:
            assert run.data_root in written, f"{run} started before its data was written"
        return {"variant": run.variant, "seed": run.seed}

    monkeypatch.setattr(study, "run_one", fake_run_one)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    results = study.run_all(runs, settings, jobs=3)
    assert [(r["variant"], r["seed"]) for r in results] == [(r.variant, r.seed) for r in runs]
    assert order[:2] == [("x3d", 0), ("x3d", 1)]  # the writers, alone
    threads = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // 3))}
    for key, env in envs.items():  # set for the parallel runs only; the writers use every core
        assert env == ({} if key in order[:2] else threads), key


def test_jobs_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        study.parse_args(["--jobs", "0"])
    assert "--jobs must be >= 1" in capsys.readouterr().err


def _value(command: list[str], option: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{option}=")]
    assert len(values) <= 1, (option, values)
    return values[0] if values else None


def test_every_run_starts_from_the_backbone_pretrained_without_the_unseen_style(
    tmp_path: Path,
) -> None:
    settings = study.Settings(2, 5, 2, 1, "honest", (), 0)
    pretrain = study.fit_command(study.pretrain_run(tmp_path), settings)
    assert _value(pretrain, "--data.unseen_source") == "false"
    assert _value(pretrain, "--data.synth_seed") == str(study.PRETRAIN_SYNTH_SEED)
    assert _value(pretrain, "--model.net.weights") is None
    pretrain_data = _value(pretrain, "--data.root")
    for variant in study.VARIANTS:
        run = study.Run(variant, 1, tmp_path, 0)
        for command in (study.fit_command(run, settings), study.test_command(run, settings)):
            assert _value(command, "--model.net.weights") == str(study.backbone_path(tmp_path))
            assert _value(command, "--data.unseen_source") == "true"
            assert _value(command, "--data.synth_seed") == "0"
            assert _value(command, "--data.root") != pretrain_data
    scratch = study.Settings(2, 5, 2, 1, "honest", (), 0, backbone="scratch")
    command = study.fit_command(study.Run("x3d_sam", 0, tmp_path, 0), scratch)
    assert _value(command, "--model.net.weights") is None


def test_saved_backbone_loads_into_x3d(tmp_path: Path) -> None:
    import torch

    from hdf_lightning.models import X3D

    sizes = {"num_frames": 4, "width_factor": 0.5, "depth_factor": 0.2, "head_dim": 16}
    torch.manual_seed(0)
    trained = X3D(**sizes)
    state = {f"net.{k}": v for k, v in trained.state_dict().items()}
    state["loss.temperature"] = torch.tensor(0.1)  # not the network's: left out
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "best.ckpt")
    target = tmp_path / "backbone.pt"
    assert study.save_backbone(tmp_path / "best.ckpt", target) == len(trained.state_dict())
    torch.manual_seed(1)
    fresh = X3D(**sizes, weights=str(target))  # the classifier stays at its init
    for key, value in trained.state_dict().items():
        same = torch.equal(fresh.state_dict()[key], value)
        assert same != key.startswith("head.proj.weight"), key


def test_the_backbone_is_pretrained_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    monkeypatch.setattr(study, "ensure_backbone", lambda out, _: order.append("pretrain"))
    monkeypatch.setattr(
        study,
        "run_one",
        lambda run, *_: order.append(run.variant) or {"variant": run.variant, "seed": run.seed},
    )
    runs = [study.Run(v, 0, tmp_path, 0) for v in ("x3d", "hdf")]
    study.run_all(runs, study.Settings(1, 5, 2, 1, "honest", (), 0), jobs=2)
    assert order[0] == "pretrain" and sorted(order[1:]) == ["hdf", "x3d"]
    order.clear()
    study.run_all(runs, study.Settings(1, 5, 2, 1, "honest", (), 0, backbone="scratch"), jobs=2)
    assert "pretrain" not in order
