"""The synthetic study script: its defaults follow the demo, and parallel runs wait for the data."""

from __future__ import annotations

import csv
import json
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


def test_runs_start_after_their_data_is_written_and_the_backbone_pretrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = study.Settings(1, 5, 2, 1, "honest", (), None)
    runs = [
        study.Run(v, s, tmp_path, s) for s in (0, 1) for v in ("x3d", "x3d_dam", "hdf")
    ]  # two data sets (one per seed), three runs each
    ready: set[object] = set()
    writing: list[Path] = []
    envs: dict[tuple[str, int], dict[str, str]] = {}
    lock = threading.Lock()

    def fake_prepare(run: study.Run, _: study.Settings) -> None:
        with lock:
            writing.append(run.data_root)
        time.sleep(0.2)  # writing the data takes a while, and overlaps the pretraining
        with lock:
            ready.add(run.data_root)

    def fake_pretrain(out: Path, _: study.Settings) -> Path:
        time.sleep(0.1)
        assert len(writing) == 2, "the data is written while the backbone is pretrained"
        ready.add("backbone")
        return out

    def fake_run_one(
        run: study.Run, _: study.Settings, env_extra: dict[str, str] | None = None
    ) -> dict[str, Any]:
        assert {run.data_root, "backbone"} <= ready, f"{run} started too early"
        with lock:
            envs[(run.variant, run.seed)] = dict(env_extra or {})
        return {"variant": run.variant, "seed": run.seed}

    monkeypatch.setattr(study, "prepare_data", fake_prepare)
    monkeypatch.setattr(study, "ensure_backbone", fake_pretrain)
    monkeypatch.setattr(study, "run_one", fake_run_one)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    results = study.run_all(runs, settings, jobs=3)
    assert [(r["variant"], r["seed"]) for r in results] == [(r.variant, r.seed) for r in runs]
    assert sorted(writing) == sorted({r.data_root for r in runs})  # each data set once
    threads = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // 3))}
    assert all(env == threads for env in envs.values())


def test_data_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    settings = study.Settings(
        1, 5, 2, 1, "honest", ("--data.image_size=16",), 0, held_out=("quality",), held_out_clips=1
    )
    run = study.Run("x3d", 0, tmp_path, 0)
    partial = run.data_root.with_name(f".{run.data_root.name}.partial")
    (partial / "Clip").mkdir(parents=True)  # left by an interrupted generation
    study.prepare_data(run, settings)
    assert not partial.exists()
    rows = study.read_manifest(run.data_root)
    assert len(rows) == 5 * 2 + 5 * 1
    assert sorted(set(rows.values())) == ["quality", "seen"]
    before = (run.data_root / "synthetic_manifest.csv").stat().st_mtime_ns
    study.prepare_data(run, settings)  # an existing data set is kept
    assert (run.data_root / "synthetic_manifest.csv").stat().st_mtime_ns == before


def test_jobs_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        study.parse_args(["--jobs", "0"])
    assert "--jobs must be >= 1" in capsys.readouterr().err


def _value(command: list[str], option: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{option}=")]
    assert len(values) <= 1, (option, values)
    return values[0] if values else None


def test_every_run_starts_from_the_backbone_pretrained_without_the_held_out_styles(
    tmp_path: Path,
) -> None:
    settings = study.Settings(2, 5, 2, 1, "honest", (), 0)
    pretrain = study.fit_command(study.pretrain_run(tmp_path), settings)
    assert _value(pretrain, "--data.held_out") == "[]"
    assert _value(pretrain, "--data.synth_seed") == str(study.PRETRAIN_SYNTH_SEED)
    assert _value(pretrain, "--model.net.weights") is None
    pretrain_data = _value(pretrain, "--data.root")
    for variant in study.VARIANTS:
        run = study.Run(variant, 1, tmp_path, 0)
        for command in (study.fit_command(run, settings), study.test_command(run, settings)):
            assert _value(command, "--model.net.weights") == str(study.backbone_path(tmp_path))
            assert _value(command, "--data.held_out") == "[colour,quality,sampling,timing]"
            assert _value(command, "--data.unseen_source") == "false"
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
    monkeypatch.setattr(study, "prepare_data", lambda run, _: None)
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


def _fake_run(run: study.Run, settings: study.Settings, correct: Any) -> dict[str, Any]:
    """Save test predictions for ``run`` that are right where ``correct`` (by test row) says."""
    import torch

    from hdf_lightning.data.splits import read_dfew_split

    records = read_dfew_split(run.data_root, settings.fold, "test")
    labels = torch.tensor([r.label for r in records])
    preds = torch.where(torch.as_tensor(correct), labels, (labels + 1) % 7)
    path = run.run_dir / study.PREDICTIONS
    path.parent.mkdir(parents=True)
    order = torch.randperm(len(records))  # saved in any order, matched by index
    probs = torch.nn.functional.one_hot(preds, 7).float()
    saved = {"index": order, "label": labels[order], "pred": preds[order], "probs": probs[order]}
    torch.save(saved, path)
    result = {"variant": run.variant, "seed": run.seed, "settings": settings.as_dict()}
    result["metrics"] = study.split_metrics(run, settings)
    (run.run_dir / study.RESULT_FILE).write_text(json.dumps(result))
    return result


def test_report_is_rebuilt_from_the_run_folders_with_paired_intervals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from hdf_lightning.data.splits import read_dfew_split
    from hdf_lightning.evaluation.stats import crossed_interval

    extra = ("--data.image_size=16",)
    settings = study.Settings(
        1, 5, 2, 1, "honest", extra, 0, held_out=("colour",), held_out_clips=4
    )
    study.prepare_data(study.Run("x3d", 0, tmp_path, 0), settings)
    records = read_dfew_split(tmp_path / "data" / "seed_0", 1, "test")
    subset_of = study.read_manifest(tmp_path / "data" / "seed_0")
    rng = np.random.default_rng(0)
    right: dict[tuple[str, int], Any] = {}
    for seed in (0, 1, 2):
        for variant in ("x3d", "hdf"):
            right[variant, seed] = rng.random(len(records)) < 0.6
            _fake_run(study.Run(variant, seed, tmp_path, 0), settings, right[variant, seed])

    assert study.main(["--out", str(tmp_path), "--variants", "x3d", "hdf", "--report-only"]) == 0
    assert "WAR − x3d WAR" in capsys.readouterr().out
    with (tmp_path / "synthetic_study_intervals.csv").open() as fh:
        rows = {(r["variant"], r["subset"], r["kind"]): r for r in csv.DictReader(fh)}
    assert set(rows) == {
        ("x3d", "seen", "war"),
        ("x3d", "colour", "war"),
        ("hdf", "seen", "war"),
        ("hdf", "colour", "war"),
        ("hdf", "seen", "diff"),
        ("hdf", "colour", "diff"),
    }
    # the colour test set: the clips of that style, in clip-id order, per seed
    order = sorted(
        (r.clip_id, i) for i, r in enumerate(records) if subset_of[r.clip_id] == "colour"
    )
    picks = [i for _, i in order]

    def matrix(variant: str) -> Any:
        return np.stack([right[variant, s][picks] for s in (0, 1, 2)]).astype(float)

    expected = crossed_interval(matrix("hdf") - matrix("x3d"))
    row = rows["hdf", "colour", "diff"]
    assert int(row["clips"]) == len(picks) == 4 * 1  # 4 clips per subject, 1 test subject
    assert float(row["mean"]) == pytest.approx(expected.mean)
    assert float(row["half_width"]) == pytest.approx(expected.half_width)
    assert row["seeds"] == "0 1 2"
    war = crossed_interval(matrix("x3d"))
    assert float(rows["x3d", "colour", "war"]["low"]) == pytest.approx(war.low)
    per_run = (tmp_path / "synthetic_study.csv").read_text().splitlines()
    assert len(per_run) == 1 + 6 * 2  # header, 6 runs x 2 test sets


def test_report_refuses_runs_made_with_other_settings(tmp_path: Path) -> None:
    for seed, epochs in ((0, 1), (1, 2)):
        folder = tmp_path / "runs" / "x3d" / f"seed_{seed}"
        folder.mkdir(parents=True)
        settings = study.Settings(epochs, 5, 2, 1, "honest", (), 0).as_dict()
        (folder / study.RESULT_FILE).write_text(json.dumps({"seed": seed, "settings": settings}))
    with pytest.raises(ValueError, match="different settings"):
        study.collect_results(tmp_path, ["x3d"])
    with pytest.raises(ValueError, match="no finished run"):
        study.collect_results(tmp_path / "empty", ["x3d"])
