"""Every failure a user can hit ends in one clear line or a safe recovery (docs/faults.md).

The error rows run ``hdf_lightning.cli:main`` exactly as the ``hdf`` console script does (no
arguments; the command line in ``sys.argv``) in this process; the SIGTERM row runs the real
``hdf`` in a subprocess and signals it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_utils import (
    HDF,
    REPO,
    TINY_NET,
    error_line,
    hdf_env,
    run_console,
    tiny_fit_args,
    tiny_synthetic_data,
)
from hdf_lightning.checkpoints import check_checkpoint, first_nonfinite
from hdf_lightning.cli import main, user_error_message
from hdf_lightning.data import SyntheticDFEWDataModule
from hdf_lightning.data.datasets import ClipDataset
from hdf_lightning.errors import CheckpointError, ConfigError, RunFolderError
from hdf_lightning.faults import RunLock
from hdf_lightning.io import atomic_path, atomic_write_text

DEMO = str(REPO / "configs" / "demo.yaml")


def _eval_args(tmp: Path, command: str, root: Path, *extra: str) -> list[str]:
    """``hdf <command>`` of the tiny demo on the data in ``tmp/data``, logging off."""
    return [
        command,
        "--config",
        DEMO,
        *TINY_NET,
        *tiny_synthetic_data(tmp / "data"),
        f"--trainer.default_root_dir={root}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch tiny fit in ``<tmp>/run`` (logger off: config.yaml in the run)."""
    tmp = tmp_path_factory.mktemp("faults")
    main(_eval_args(tmp, "fit", tmp / "run", "--trainer.max_epochs=1"))
    return tmp


# ------------------------------------------------------------------ silent wrong results
@pytest.mark.parametrize("epochs", [1, 3])
def test_diverged_fit_writes_no_checkpoint_and_a_nan_checkpoint_is_refused(
    run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    epochs: int,
) -> None:
    # lr 1e6 with SAM: BatchNorm statistics become infinite before the gradient norm does; at
    # one epoch the fit ends before any gradient norm is non-finite, and must still fail
    args = tiny_fit_args(
        tmp_path, epochs=epochs, extra=["--model.optimizer.init_args.lr=1e6", "--data.batch_size=3"]
    )
    args[args.index(f"--data.root={tmp_path / 'data'}")] = f"--data.root={run / 'data'}"
    code, err = run_console(args, monkeypatch, capsys)
    assert code == 2 and "training diverged" in error_line(err)
    assert "fit finished" not in err and "best epoch" not in err  # no summary of NaN weights
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # neither best nor last holds NaN

    good = run / "run" / "checkpoints" / "best.ckpt"
    ckpt = torch.load(good, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name] = torch.full_like(ckpt["state_dict"][name], float("nan"))
    bad = tmp_path / "nan.ckpt"
    torch.save(ckpt, bad)
    for command in ("test", "validate"):
        code, err = run_console(
            _eval_args(run, command, tmp_path / command, f"--ckpt_path={bad}"), monkeypatch, capsys
        )
        line = error_line(err)
        assert code == 2 and str(bad) in line and f"'{name}'" in line and "non-finite" in line
    # hdf predict (raw videos and frame folders) refuses the same file the same way
    clip = next((run / "data" / "Clip" / "clip_224x224").iterdir())
    code, err = run_console(
        ["predict", str(clip), f"--ckpt_path={bad}", f"--out={tmp_path / 'p'}", "--detector=none"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and str(bad) in err and f"'{name}'" in err and "non-finite" in err


def test_evaluation_without_a_checkpoint_is_refused(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_console(_eval_args(run, "test", tmp_path / "t"), monkeypatch, capsys)
    line = error_line(err)
    assert code == 2 and "--ckpt_path runs/<run>/checkpoints/best.ckpt" in line
    assert "--ckpt_path none" in line and not (tmp_path / "t" / "test_metrics.json").exists()
    # the explicit opt-in keeps the old behaviour (smoke tests of an untrained network)
    code, err = run_console(
        _eval_args(run, "test", tmp_path / "t", "--ckpt_path=none"), monkeypatch, capsys
    )
    assert code == 0, err
    written = json.loads((tmp_path / "t" / "test_metrics.json").read_text())
    assert written["ckpt_path"] is None and 0.0 <= written["metrics"]["test/uar"] <= 1.0


def test_a_second_fit_into_a_run_folder_is_refused_unless_resumed_or_overwritten(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "run"
    fit = _eval_args(run, "fit", root, "--trainer.max_epochs=1")
    assert run_console(fit, monkeypatch, capsys)[0] == 0
    last = root / "checkpoints" / "last.ckpt"
    stamp = last.stat().st_mtime_ns
    code, err = run_console(fit, monkeypatch, capsys)
    line = error_line(err)
    assert code == 2 and f"{root} already holds a run" in line
    assert f"--ckpt_path {last}" in line and "--overwrite true" in line
    assert last.stat().st_mtime_ns == stamp  # nothing of the first run was touched
    (root / "figures").mkdir(exist_ok=True)
    (root / "figures" / "val_epoch007_old.png").write_bytes(b"old")
    code, err = run_console([*fit, "--overwrite=true"], monkeypatch, capsys)
    assert code == 0, err
    assert not (root / "figures" / "val_epoch007_old.png").exists()  # no mix of two runs
    saved = (root / "config.yaml").read_text()
    assert "overwrite: false" in saved  # reusing the file never replaces a run


def test_a_fit_into_a_folder_another_live_fit_holds_is_refused_and_a_stale_lock_is_taken_over(
    run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = tmp_path / "run"
    fit = _eval_args(run, "fit", root, "--trainer.max_epochs=1")
    holder = subprocess.Popen(  # another live run holding the folder, as a running fit does
        [
            sys.executable,
            "-c",
            "import sys, time; from hdf_lightning.faults import RunLock; "
            "lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)",
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, err = run_console(fit, monkeypatch, capsys)
        line = error_line(err)
        assert code == 2 and f"{root} (--trainer.default_root_dir) is in use by another fit" in line
        assert f"pid {holder.pid}" in line
        assert not (root / "checkpoints").exists()  # the second fit wrote nothing
    finally:
        holder.kill()  # a crash: the lock file stays behind, the lock itself is gone
        holder.wait()
    assert (root / ".hdf-run.lock").is_file()
    code, err = run_console(fit, monkeypatch, capsys)
    assert code == 0, err
    assert "taking over the stale lock" in caplog.text and f"pid {holder.pid}" in caplog.text
    assert (root / "checkpoints" / "best.ckpt").is_file()
    assert not (root / ".hdf-run.lock").exists()  # released when the fit ended


def test_the_run_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunFolderError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    first.release()
    with RunLock(tmp_path) as second:
        assert second.held
    assert not second.held and not (tmp_path / ".hdf-run.lock").exists()


def test_best_checkpoint_holds_the_epoch_of_the_highest_val_uar(tmp_path: Path) -> None:
    root = tmp_path / "run"
    args = _eval_args(tmp_path, "fit", root, "--trainer.max_epochs=4")
    # 15 subjects (a validation split with several classes), batches of 4
    args += tiny_synthetic_data(tmp_path / "data", subjects=15, batch_size=4)
    main(args)
    rows = _curve(root)
    uars = [float(r["val_uar"]) for r in rows]
    assert len(set(uars)) > 1, uars  # the test can tell the highest epoch from the others
    best_epoch = uars.index(max(uars))  # the first epoch with the highest val UAR
    best = torch.load(root / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == best_epoch, (uars, best["epoch"])
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3


def test_each_command_keeps_its_config_and_the_fit_config_tests_and_reproduces_the_run(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = run / "run"
    config = root / "config.yaml"
    fit_config = config.read_bytes()
    best = root / "checkpoints" / "best.ckpt"
    # the README's way to test a finished run: its config and its checkpoint, nothing else
    code, err = run_console(
        ["test", "--config", str(config), f"--ckpt_path={best}"], monkeypatch, capsys
    )
    assert code == 0, err
    assert config.read_bytes() == fit_config  # the fit's configuration is kept
    assert "ckpt_path: " in (root / "config_test.yaml").read_text()
    metrics = json.loads((root / "test_metrics.json").read_text())
    assert metrics["ckpt_path"] == str(best) and set(metrics["metrics"]) >= {"test/war", "test/uar"}
    code, err = run_console(
        ["validate", "--config", str(config), f"--ckpt_path={best}"], monkeypatch, capsys
    )
    assert code == 0 and (root / "config_validate.yaml").is_file(), err
    assert config.read_bytes() == fit_config
    # the fit's file reproduces the fit (into another folder): the same final weights
    again = tmp_path / "again"
    code, err = run_console(
        ["fit", "--config", str(config), f"--trainer.default_root_dir={again}"], monkeypatch, capsys
    )
    assert code == 0, err
    first = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    second = torch.load(again / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


# ------------------------------------------------------------------ one line, not a traceback
@pytest.mark.parametrize("fold", [0, 6])
def test_bad_fold_is_one_line(
    fold: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_console(
        _eval_args(tmp_path, "fit", tmp_path / "run", f"--data.fold={fold}"), monkeypatch, capsys
    )
    line = error_line(err)
    assert code == 2 and f"DFEW fold must be one of 1..5, got {fold}" in line
    assert len(err.strip().splitlines()) <= 3  # no 76-line double traceback


def test_debug_switch_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDF_DEBUG", "1")
    monkeypatch.setattr(
        "sys.argv", ["hdf", *_eval_args(tmp_path, "fit", tmp_path, "--data.fold=6")]
    )
    with pytest.raises(ConfigError, match="got 6"):
        main()


@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage", "other_network", "pickle"])
def test_unusable_checkpoint_is_one_line(
    kind: str,
    run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = run / "run" / "checkpoints" / "best.ckpt"
    ckpt = tmp_path / f"{kind}.ckpt"
    net = list(TINY_NET)
    marker = tmp_path / "pwned"
    if kind == "truncated":
        ckpt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "garbage":
        ckpt.write_bytes(b"this is not a checkpoint\n" * 10)
    elif kind == "other_network":
        ckpt.write_bytes(good.read_bytes())
        net[net.index("--model.net.head_dim=32")] = "--model.net.head_dim=16"
    elif kind == "pickle":
        torch.save({"state_dict": {}, "x": _Exploit(str(marker))}, ckpt)
    args = _eval_args(run, "test", tmp_path / "t", f"--ckpt_path={ckpt}")
    args[3 : 3 + len(TINY_NET)] = net
    code, err = run_console(args, monkeypatch, capsys)
    line = error_line(err)
    assert code == 2 and str(ckpt) in line and "--ckpt_path" in line
    expected = {
        "missing": "checkpoint not found",
        "truncated": "truncated or not a PyTorch checkpoint",
        "garbage": "truncated or not a PyTorch checkpoint",
        "other_network": "another network",
        "pickle": "refused to load",
    }[kind]
    assert expected in line
    assert not marker.exists()  # the pickled program never ran


class _Exploit:
    """A pickle that would create a file when unpickled with ``weights_only=False``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (Path(self.path),))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--trainer.accumulate_grad_batches=2"], "cannot be combined with sam=true"),
        (["--data.num_frames=8"], "--data.num_frames=8 but --model.net.num_frames=4"),
    ],
)
def test_contradicting_options_are_refused_when_parsed(
    extra: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run_console(
        _eval_args(tmp_path, "fit", tmp_path / "run", *extra), monkeypatch, capsys
    )
    assert code == 2 and expected in error_line(err)
    assert not (tmp_path / "data").exists()  # refused before any data was generated or read


def test_unwritable_output_folder_is_refused_before_data_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = run_console(_eval_args(tmp_path, "fit", blocker / "run"), monkeypatch, capsys)
    line = error_line(err)
    assert code == 2 and f"cannot write to the output folder {blocker / 'run'}" in line
    assert "--trainer.default_root_dir" in line and not (tmp_path / "data").exists()


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root writes into read-only folders",
)
def test_read_only_output_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    code, err = run_console(_eval_args(tmp_path, "fit", folder), monkeypatch, capsys)
    assert code == 2 and "Permission denied" in error_line(err)


def test_fit_without_checkpointing_runs(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _eval_args(
        run,
        "fit",
        tmp_path / "run",
        "--trainer.max_epochs=1",
        "--trainer.enable_checkpointing=false",
    )
    code, err = run_console(args, monkeypatch, capsys)
    assert code == 0, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_corrupt_frame_in_a_loader_worker_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hdf_lightning.data.synthetic import SynthConfig, generate_dfew

    generate_dfew(
        tmp_path / "data", SynthConfig(num_subjects=5, clips_per_subject=2, image_size=32)
    )
    split = tmp_path / "data" / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    rows = split.read_text().splitlines()
    line_no, row = 2, rows[1]  # the first clip after the header
    clip = tmp_path / "data" / "Clip" / "clip_224x224" / row.split(",")[0].zfill(5)
    for frame in clip.glob("*.jpg"):
        frame.write_bytes(frame.read_bytes()[:200])  # truncated JPEGs
    args = _eval_args(
        tmp_path, "fit", tmp_path / "run", "--data.num_workers=1", "--data.persistent_workers=false"
    )
    code, err = run_console(args, monkeypatch, capsys)
    line = error_line(err)
    assert code == 2 and clip.name in line and f"set_1.csv:{line_no}" in line
    assert "DataLoader worker" not in err


# ------------------------------------------------------------------ SIGTERM
@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_143_and_resumes_to_the_same_weights(
    tmp_path: Path,
) -> None:
    """A real SIGTERM sent to a running ``hdf fit`` subprocess inside an epoch."""
    env = hdf_env()
    common = ["--data.batch_size=3", "--trainer.max_epochs=2"]  # 3 batches per epoch, 6 steps

    def fit(root: str, *extra: str) -> list[str]:
        args = tiny_fit_args(tmp_path, epochs=2, extra=[*common, *extra])
        return [HDF, *(a.replace(str(tmp_path / "run"), str(tmp_path / root)) for a in args)]

    reference = subprocess.run(
        fit("reference"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    marker = tmp_path / "paused"
    pause = json.dumps(
        {"class_path": "cli_utils.PauseForSignal", "init_args": {"step": 4, "marker": str(marker)}}
    )
    proc = subprocess.Popen(
        fit("run", f"--trainer.callbacks+={pause}"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)  # inside epoch 2, after its first batch (step 4)
    _, stderr = proc.communicate(timeout=300)
    interrupted = tmp_path / "run" / "checkpoints" / "interrupted.ckpt"
    assert proc.returncode == 143, stderr[-3000:]
    assert f"saved {interrupted}" in stderr and f"--ckpt_path {interrupted}" in stderr
    state = torch.load(interrupted, weights_only=True)
    assert state["global_step"] == 4

    resumed = subprocess.run(
        fit("run", f"--ckpt_path={interrupted}"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not interrupted.exists()  # removed once the fit finished
    ref = torch.load(tmp_path / "reference" / "checkpoints" / "last.ckpt", weights_only=True)
    out = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert out["global_step"] == ref["global_step"] == 6
    differing = [
        k for k in ref["state_dict"] if not torch.equal(ref["state_dict"][k], out["state_dict"][k])
    ]
    assert not differing, differing[:5]
    # the resumed epoch's train loss is the mean over all its batches, as uninterrupted
    assert _curve(tmp_path / "run") == _curve(tmp_path / "reference")


def _curve(root: Path) -> list[dict[str, str]]:
    """The rows of a run's learning_curve.csv."""
    with (root / "checkpoints" / "learning_curve.csv").open() as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ helpers and atomic writes
def test_first_nonfinite_and_check_checkpoint(tmp_path: Path) -> None:
    assert first_nonfinite({"a": torch.ones(2), "b": torch.tensor([1.0, float("inf")])}) == "b"
    assert first_nonfinite({"a": torch.ones(2), "n": torch.tensor([3])}) is None
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    assert "state_dict" in check_checkpoint(path, None)


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_samplers_skip_the_consumed_items_of_one_iteration_only() -> None:
    from hdf_lightning.data.clip_samplers import DistributedWeightedSampler, EpochSampler

    sampler = EpochSampler(range(10), seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.skip_next(4)
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # the next epoch is whole again
    weighted = DistributedWeightedSampler([1.0] * 6, seed=1)
    whole = list(weighted)
    weighted.skip_next(5)
    assert list(weighted) == whole[5:] and len(weighted) == 6


# ------------------------------------------------------------------ loader workers
_FORK_AFTER_OPENCV = """
import sys
from hdf_lightning.data import SyntheticDFEWDataModule

dm = SyntheticDFEWDataModule(
    root=sys.argv[1], num_subjects=6, clips_per_subject=4, image_size=112,
    num_frames_range=(8, 12), num_frames=4, batch_size=4, load_size=112, crop_size=112,
    num_workers=0, persistent_workers=False,
)
dm.prepare_data()
dm.setup("fit")
for _ in dm.train_dataloader():  # the parent runs the loader's OpenCV augmentation itself
    pass
dm.num_workers = 2  # then forks workers afresh every epoch
for epoch in range(6):
    batches = sum(1 for _ in dm.train_dataloader())
    print("epoch", epoch, batches, flush=True)
"""


def test_workers_forked_after_the_parent_used_opencv_do_not_hang(tmp_path: Path) -> None:
    """The public DataModule API, iterated in the parent and then with re-forked workers: each
    worker used to block forever in its first OpenCV call (a thread pool inherited by fork)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _FORK_AFTER_OPENCV, str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=240,
            env=hdf_env(OMP_NUM_THREADS="2"),
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else err.stdout
        pytest.fail(f"the loader hung after: {out!r}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch ") == 6


def test_a_stalled_loader_worker_ends_in_one_line_naming_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = SyntheticDFEWDataModule(
        root=tmp_path / "data",
        num_subjects=5,
        clips_per_subject=2,
        image_size=32,
        num_frames=4,
        crop_size=32,
        batch_size=2,
        num_workers=1,
        persistent_workers=False,
        worker_timeout=1.0,
    )
    dm.prepare_data()
    dm.setup("fit")
    # a worker that never delivers (the forked worker inherits the patched method)
    monkeypatch.setattr(ClipDataset, "__getitem__", lambda self, index: time.sleep(30))
    with pytest.raises(RuntimeError) as caught:
        next(iter(dm.train_dataloader()))
    message = user_error_message(caught.value)
    assert message is not None and "1.0 s (--data.worker_timeout)" in message
    assert "\n" not in message


def test_a_checkpoint_of_other_classes_is_refused_even_with_as_many_classes(
    tmp_path: Path,
) -> None:
    model = torch.nn.Linear(2, 3)
    model.class_names = ("happy", "sad", "angry")  # type: ignore[assignment]
    ckpt = tmp_path / "other.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": {"class_names": ["sad", "happy", "angry"]},
        },
        ckpt,
    )
    with pytest.raises(CheckpointError, match=r"trained on the classes \[sad, happy, angry\]"):
        check_checkpoint(ckpt, model)
    model.class_names = ("sad", "happy", "angry")  # type: ignore[assignment]
    check_checkpoint(ckpt, model)  # the same list in the same order is fine
