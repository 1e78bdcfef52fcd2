"""Dataset verification report."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pytest
import torch

from conftest import DFEWTree
from hdf_lightning.data import DFEWDataModule
from hdf_lightning.data.datasets import ClipRecord
from hdf_lightning.data.verify import format_report, verify_datamodule, verify_records


def _dm(root: Path, **overrides: object) -> DFEWDataModule:
    options: dict = {"num_frames": 16, "num_workers": 0}
    options.update(overrides)
    return DFEWDataModule(root, **options)


def test_clean_tree_counts(dfew_tree: DFEWTree) -> None:
    report = verify_datamodule(_dm(dfew_tree.root), decode=True)
    assert report.ok
    train = report.splits["train"]
    assert train.num_clips == 21 and train.class_counts == [3] * 7
    frames = [dfew_tree.frames[c] for c, _ in dfew_tree.train]
    assert (train.frames_min, train.frames_median, train.frames_max) == (
        min(frames),
        statistics.median(frames),
        max(frames),
    )
    assert train.num_short == sum(n < 16 for n in frames) > 0
    assert report.splits["val"].same_as == "test"  # paper protocol
    text = format_report(report)
    for needle in ("split", "train", "val (= test)", "clips per class", "6 fear", "OK"):
        assert needle in text
    assert "NOT OK" not in text


def test_missing_clip_is_reported_by_name(dfew_tree: DFEWTree) -> None:
    shutil.rmtree(dfew_tree.clip_dir("00005"))
    report = verify_datamodule(_dm(dfew_tree.root), decode=False)
    assert not report.ok
    assert len(report.splits["train"].missing) == 1 and "00005" in report.splits["train"].missing[0]
    assert report.splits["train"].num_clips == 20
    text = format_report(report)
    assert "00005" in text and "NOT OK" in text


def test_corrupt_frame_needs_decode(dfew_tree: DFEWTree) -> None:
    (dfew_tree.clip_dir("00023") / "00002.jpg").write_bytes(b"not a jpeg")
    assert verify_datamodule(_dm(dfew_tree.root), decode=False).ok
    report = verify_datamodule(_dm(dfew_tree.root), decode=True)
    assert not report.ok
    (problem,) = report.splits["test"].unreadable
    assert "00023" in problem and "00002.jpg" in problem


def test_bad_rows_and_missing_root_are_problems(dfew_tree: DFEWTree, tmp_path: Path) -> None:
    path = dfew_tree.split_file("test")
    path.write_text(path.read_text() + "23,9\n")
    report = verify_datamodule(_dm(dfew_tree.root), decode=False, splits=("test",))
    assert [len(report.splits["test"].bad_rows)] == [1] and "set_1.csv:9" in format_report(report)
    absent = verify_datamodule(_dm(tmp_path / "absent"), decode=False)
    assert not absent.ok and "absent" in absent.splits["train"].missing[0]


def test_verify_records_of_videos(tmp_path: Path, video_writer) -> None:
    good = video_writer(tmp_path / "v.mp4", 7)
    broken = tmp_path / "w.mp4"
    broken.write_bytes(b"\x00" * 32)
    records = [ClipRecord(good, 1, "v", "video"), ClipRecord(broken, 0, "w", "video")]
    report = verify_records({"all": records}, class_names=["a", "b"], clip_len=8, decode=True)
    split = report.splits["all"]
    assert (split.frames_min, split.num_short, split.class_counts) == (7, 1, [1, 1])
    assert len(split.unreadable) == 1 and "w.mp4" in split.unreadable[0]


def test_video_with_more_packets_than_frames_is_damaged_and_loads_its_frames(
    tmp_path: Path,
) -> None:
    """The frame count is the decodable frames everywhere; verify reports the video as damaged
    (3 of its 9 declared frames do not decode), and loading uses the 6 that decode."""
    import numpy as np

    from hdf_lightning.data.datasets import ClipDataset
    from hdf_lightning.data.video import decode_video, video_num_frames, write_video
    from test_video import append_undecodable_packets

    rng = np.random.default_rng(0)
    clean = tmp_path / "clean.mp4"
    write_video(clean, rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    video = tmp_path / "padded.mp4"
    append_undecodable_packets(clean, video, 3)
    assert video_num_frames(video) == 6
    report = verify_records(
        {"train": [ClipRecord(video, 0, "padded", "video")]},
        class_names=["a"],
        clip_len=8,
        decode=True,
    )
    train = report.splits["train"]
    assert not report.ok and train.frames_max == 6 and len(train.damaged) == 1
    assert "6 of the 9 frames the container declares decode" in train.damaged[0]
    # Loading: the sampler sees the 6 decodable frames; 9 slots repeat some of them.
    dataset = ClipDataset(
        [ClipRecord(video, 0, "padded", "video")], num_frames=9, load_size=16, train=False
    )
    clip = dataset[0]["video"]
    frames = decode_video(video, None, size=16)
    assert clip.shape == (3, 9, 16, 16) and frames.shape[1] == 6
    assert all(any(torch.equal(clip[:, i], frames[:, j]) for j in range(6)) for i in range(9))


@pytest.mark.slow
def test_hdf_data_verify_counts_decodable_video_frames_and_reports_the_damage(
    tmp_path: Path,
) -> None:
    import numpy as np

    from cli_utils import run_hdf
    from hdf_lightning.data.video import write_video
    from test_video import append_undecodable_packets

    clean = tmp_path / "clean.mp4"
    write_video(clean, np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    append_undecodable_packets(clean, tmp_path / "padded.mp4", 3)
    csv = tmp_path / "split.csv"
    csv.write_text("path,label\npadded.mp4,a\n")
    result = run_hdf(
        [
            "data",
            "verify",
            "--data=hdf_lightning.data.VideoCSVDataModule",
            f"--data.train_csv={csv}",
            f"--data.test_csv={csv}",
            "--data.classes=[a, b]",
            "--data.num_frames=8",
            "--data.num_workers=0",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # a damaged video is a problem
    assert "NOT OK" in result.stdout
    assert "6 of the 9 frames the container declares decode" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "train" in line)
    assert " 6 " in row and " 9 " not in row  # frames min / median / max: decodable
