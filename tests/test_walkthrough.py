"""The README's walkthrough, end to end through the console commands: raw videos and a labels CSV,
``hdf data extract --faces``, ``hdf fit`` on the crops (the CSV DataModule), ``hdf predict`` on a
held-out raw video, with the same face crop all the way.

The commands are the README's, character for character (the test checks that the README holds
them); the test adds only ``--trainer.logger=false --trainer.enable_progress_bar=false`` to the
fit, to keep wandb and the bar out of the test's output.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from cli_utils import REPO, run_console
from face_videos import write_face_video
from hdf_lightning.data.face_crops import MANIFEST_NAME
from hdf_lightning.inference.checkpoint import read_checkpoint

README = REPO / "README.md"

CLASSES = {"happy": 0, "sad": 1, "surprise": 4}  # class name -> the generator's label
CLIPS = [f"clip{i:02d}" for i in range(1, 10)]  # two train clips and one test clip per class

EXTRACT = (
    "hdf data extract --faces true --videos walkthrough/videos --out walkthrough/faces "
    "--size 48 --workers 2"
)
FIT = (
    "hdf fit --config configs/demo.yaml --data hdf_lightning.data.VideoCSVDataModule "
    "--data.train_csv walkthrough/train.csv --data.test_csv walkthrough/test.csv "
    "--data.base_dir walkthrough/faces --data.classes [happy,sad,surprise] "
    "--data.protocol paper --data.batch_size 3 --trainer.max_epochs 1 "
    "--trainer.default_root_dir runs/walkthrough"
)
PREDICT = (
    "hdf predict walkthrough/held_out.mp4 --ckpt_path runs/walkthrough/checkpoints/best.ckpt "
    "--out runs/walkthrough/predictions --window 1s --stride 0.5s"
)
QUIET_FIT = ["--trainer.logger=false", "--trainer.enable_progress_bar=false"]


def write_inputs(root: Path) -> None:
    """``walkthrough/videos/clip01..09.mp4``, ``train.csv``/``test.csv`` (``path,label``, the
    path a clip's name: its crop folder below ``--data.base_dir``) and ``held_out.mp4``."""
    rows: dict[str, list[str]] = {"train": [], "test": []}
    names = list(CLASSES)
    for i, clip in enumerate(CLIPS):
        name = names[i % len(names)]
        write_face_video(root / "videos" / f"{clip}.mp4", 24, label=CLASSES[name], seed=i)
        rows["test" if i >= 6 else "train"].append(f"{clip},{name}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    write_face_video(root / "held_out.mp4", 50, label=CLASSES["surprise"], seed=20)


def hdf(command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Run one ``hdf ...`` line as the console script; returns its stderr (fails on exit != 0)."""
    args = shlex.split(command)[1:]
    if args[0] == "fit":
        args += QUIET_FIT
    code, err = run_console(args, monkeypatch, capsys)
    assert code == 0, err
    return err


def test_readme_walkthrough_runs_the_tested_commands() -> None:
    text = " ".join(README.read_text().replace("\\\n", " ").split())  # lines joined
    for command in (EXTRACT, FIT, PREDICT):
        assert command in text, command


def test_walkthrough_raw_videos_to_predictions_with_one_crop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink(REPO / "configs", tmp_path / "configs")
    write_inputs(tmp_path / "walkthrough")

    hdf(EXTRACT, monkeypatch, capsys)
    manifest = json.loads((tmp_path / "walkthrough" / "faces" / MANIFEST_NAME).read_text())
    crop = manifest["face_crop"]
    assert (crop["detector"], crop["margin"], crop["size"]) == ("opencv", 0.15, 48)
    assert {c["status"] for c in manifest["clips"].values()} == {"ok"}
    assert sorted(manifest["clips"]) == CLIPS

    hdf(FIT, monkeypatch, capsys)
    checkpoint = tmp_path / "runs" / "walkthrough" / "checkpoints" / "best.ckpt"
    record = read_checkpoint(checkpoint)["hdf_inference"]
    assert record["face_crop"] == crop
    assert record["preprocessing"]["load_size"] == crop["size"]

    err = hdf(PREDICT, monkeypatch, capsys)
    assert "WARN" not in err
    out = tmp_path / "runs" / "walkthrough" / "predictions"
    header = json.loads((out / "held_out.windows.jsonl").read_text().splitlines()[0])
    assert header["face_crop"] == header["checkpoint_face_crop"] == crop
    summary = json.loads((out / "summary.json").read_text())
    assert summary["face_crop"] == crop and summary["num_ok"] == 1
    assert summary["videos"][0]["face_windows"] == summary["videos"][0]["windows"]

    # crops made otherwise than the training crops: one warning line, the video still classified
    err = hdf(f"{PREDICT.replace('predictions', 'margin')} --margin 0.3", monkeypatch, capsys)
    warnings = [line for line in err.splitlines() if line.startswith("WARN")]
    assert len(warnings) == 1, err
    assert str(checkpoint.relative_to(tmp_path)) in warnings[0]
    assert "margin 0.15 (this run: 0.3)" in warnings[0]
