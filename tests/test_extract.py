"""Frame extraction from videos into the DFEW frame-folder layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import write_tiny_video
from hdf_lightning.data.datasets import ClipDataset
from hdf_lightning.data.errors import CorruptClipError, DatasetNotFoundError
from hdf_lightning.data.extract import extract_frames, extract_tree
from hdf_lightning.data.splits import read_dfew_split


def test_extracted_folder_is_read_by_the_dfew_reader(tmp_path: Path) -> None:
    videos = tmp_path / "original"
    write_tiny_video(videos / "7.mp4", 9)
    write_tiny_video(videos / "00012.mp4", 5)
    root = tmp_path / "dfew"
    result = extract_tree(videos, root / "Clip" / "clip_224x224", size=24)
    assert result == {
        "videos": 2,
        "extracted": 2,
        "skipped": 0,
        "frames": 14,
        "failed": {},
        "damaged": {},
    }
    split = root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv"
    split.parent.mkdir(parents=True)
    split.write_text("video_name,label\n7,2\n12,5\n")
    records = read_dfew_split(root, 1, "test")
    assert [(r.clip_id, r.label) for r in records] == [("00007", 1), ("00012", 4)]
    frames = sorted(p.name for p in records[0].path.iterdir())
    assert frames == [f"{i:05d}.jpg" for i in range(1, 10)]
    assert Image.open(records[0].path / "00001.jpg").size == (24, 24)
    video = ClipDataset(records, num_frames=4, load_size=24)[0]["video"]
    assert video.shape == (3, 4, 24, 24) and video.dtype == torch.uint8
    levels = video[0, :, 12, 12].tolist()  # frame content follows the video's order
    assert levels == sorted(levels) and levels[0] < levels[-1]


def test_extract_tree_is_idempotent_and_reports_failures(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    write_tiny_video(videos / "1.mp4", 4)
    (videos / "2.mp4").write_bytes(b"\x00" * 100)
    (videos / "readme.txt").write_text("not a video")
    out = tmp_path / "frames"
    first = extract_tree(videos, out)
    assert (first["extracted"], first["skipped"], first["videos"]) == (1, 0, 2)
    assert list(first["failed"]) == [str(videos / "2.mp4")]
    assert not (out / "00002").exists() and not (out / "00002.partial").exists()
    stamp = (out / "00001" / "00001.jpg").stat().st_mtime_ns
    second = extract_tree(videos, out)
    assert (second["extracted"], second["skipped"], len(second["failed"])) == (0, 1, 1)
    assert (out / "00001" / "00001.jpg").stat().st_mtime_ns == stamp


def test_extract_frames_native_size_and_errors(tmp_path: Path) -> None:
    video = write_tiny_video(tmp_path / "a.avi", 3, size=32)
    assert extract_frames(video, tmp_path / "a") == 3
    assert Image.open(tmp_path / "a" / "00003.jpg").size == (32, 32)
    broken = tmp_path / "b.mp4"
    broken.write_bytes(b"junk")
    with pytest.raises(CorruptClipError, match=r"b\.mp4"):
        extract_frames(broken, tmp_path / "b")
    with pytest.raises(DatasetNotFoundError, match="absent"):
        extract_tree(tmp_path / "absent", tmp_path / "out")


def test_hdf_data_extract_exits_non_zero_with_a_summary_of_failed_videos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_utils import run_console

    videos = tmp_path / "videos"
    write_tiny_video(videos / "1.mp4", 4)
    (videos / "2.mp4").write_bytes(b"")  # a zero-byte download
    write_tiny_video(videos / "3.mp4", 3)
    out = tmp_path / "frames"
    code, err = run_console(
        ["data", "extract", f"--videos={videos}", f"--out={out}"], monkeypatch, capsys
    )
    assert code == 1
    assert "hdf: error: 1 of 3 video(s) could not be extracted" in err
    assert str(videos / "2.mp4") in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["00001", "00003"]  # the others are done
    code, _ = run_console(
        ["data", "extract", f"--videos={videos}", f"--out={out}"], monkeypatch, capsys
    )
    assert code == 1  # still failing on a rerun: the broken video is not forgotten
    (videos / "2.mp4").unlink()
    code, _ = run_console(
        ["data", "extract", f"--videos={videos}", f"--out={out}"], monkeypatch, capsys
    )
    assert code == 0


def test_hdf_data_extract_print_config_writes_a_yaml_that_config_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hdf_lightning.cli import main

    videos = tmp_path / "videos"
    write_tiny_video(videos / "1.mp4", 4)
    out = tmp_path / "frames"
    with pytest.raises(SystemExit) as done:
        main(["data", "extract", f"--videos={videos}", f"--out={out}", "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "faces: false" in printed and "quality: 95" in printed and "margin: 0.15" in printed
    config = tmp_path / "extract.yaml"
    config.write_text(printed)
    assert main(["data", "extract", "--config", str(config)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00001"]
