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
