"""Damaged and truncated videos: one frame count everywhere, reported with both lengths.

A video cut short (an interrupted download or copy) can still open: an MP4 whose index comes first
(``movflags=faststart``, as streaming sites write them) declares its full length, while only the
frames before the cut decode. Every reader of the package — the loader, ``hdf data verify``,
``hdf data extract`` and ``hdf predict`` — counts the frames that decode, and reports the
difference with both lengths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest

from cli_utils import run_console, tiny_checkpoint
from hdf_lightning.data.datasets import ClipRecord, clip_frames
from hdf_lightning.data.synthetic import render_clip
from hdf_lightning.data.verify import verify_records
from hdf_lightning.data.video import decode_video, probe_video

FRAMES = 120  # 4.8 s at 25 fps


def write_faststart_mp4(path: Path, frames: np.ndarray) -> Path:
    """H.264 MP4 with its index before the frames (readable after a cut)."""
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = cast(av.VideoStream, container.add_stream("libx264", rate=25))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``whole.mp4`` and ``cut.mp4`` (its first half of bytes) in one folder."""
    folder = tmp_path_factory.mktemp("videos") / "raw"
    folder.mkdir()
    frames = render_clip(3, num_frames=FRAMES, image_size=64, seed=1)
    whole = write_faststart_mp4(folder / "whole.mp4", frames)
    cut = folder / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return {"whole": whole, "cut": cut}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("fit"))


def test_a_cut_video_declares_more_frames_than_decode(videos: dict[str, Path]) -> None:
    whole, cut = probe_video(videos["whole"]), probe_video(videos["cut"])
    assert (whole.declared, whole.decoded, whole.damaged) == (FRAMES, FRAMES, False)
    assert cut.declared == FRAMES and 0 < cut.decoded < FRAMES * 0.8 and cut.damaged
    assert f"{cut.decoded} of the {FRAMES} frames" in cut.describe()


def test_the_loader_verify_and_decode_count_the_frames_that_decode(
    videos: dict[str, Path],
) -> None:
    decoded = probe_video(videos["cut"]).decoded
    record = ClipRecord(videos["cut"], 0, "cut", "video", "test.csv:2")
    assert clip_frames(record)[0] == decoded
    assert decode_video(videos["cut"], None, size=16).shape[1] == decoded
    report = verify_records(
        {"test": [record]}, class_names=["a", "b"], clip_len=4, decode=True
    ).splits["test"]
    assert report.frames_max == decoded and len(report.damaged) == 1
    assert (
        f"{decoded} of the {FRAMES} frames" in report.damaged[0]
        and "test.csv:2" in report.damaged[0]
    )


def test_hdf_predict_plans_on_decoded_frames_and_warns_of_a_cut_video(
    videos: dict[str, Path],
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    decoded = probe_video(videos["cut"]).decoded
    out = tmp_path / "out"
    args = ["predict", str(videos["whole"]), str(videos["cut"]), f"--ckpt_path={checkpoint}"]
    args += [f"--out={out}", "--detector=none", "--window=0.5s", "--stride=0.5s"]
    code, err = run_console(args, monkeypatch, capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("WARN ")]
    assert len(warnings) == 1 and str(videos["cut"]) in warnings[0]
    assert f"{decoded} of the {FRAMES} frames" in warnings[0]
    summary = {v["video"]: v for v in json.loads((out / "summary.json").read_text())["videos"]}
    cut, whole = summary[str(videos["cut"])], summary[str(videos["whole"])]
    assert (cut["video_frames"], cut["decoded_frames"]) == (decoded, decoded)
    assert (cut["declared_frames"], cut["damaged"]) == (FRAMES, True)
    assert (whole["video_frames"], whole["declared_frames"], whole["damaged"]) == (
        FRAMES,
        FRAMES,
        False,
    )
    lines = [json.loads(line) for line in (out / "cut.windows.jsonl").read_text().splitlines()]
    header, windows = lines[0], [r for r in lines if r["record"] == "window"]
    assert header["video_frames"] == decoded and header["damaged"] is True
    assert windows and max(w["end_frame"] for w in windows) <= decoded
    assert all(w["face"] for w in windows)  # every window lies in frames that decode


def test_hdf_data_extract_refuses_a_cut_video_unless_asked_and_names_both_lengths(
    videos: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    decoded = probe_video(videos["cut"]).decoded
    source = videos["cut"].parent
    out = tmp_path / "frames"
    code, err = run_console(
        ["data", "extract", f"--videos={source}", f"--out={out}"], monkeypatch, capsys
    )
    assert code == 1 and f"{decoded} of the {FRAMES} frames" in err and str(videos["cut"]) in err
    assert len(list((out / "whole").glob("*.jpg"))) == FRAMES
    assert not (out / "cut").exists() and not (out / "cut.partial").exists()

    code, err = run_console(
        ["data", "extract", f"--videos={source}", f"--out={out}", "--keep_damaged=true"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert f"WARN {videos['cut']}" in err and f"{decoded} frames that decode of the {FRAMES}" in err
    assert len(list((out / "cut").glob("*.jpg"))) == decoded


@pytest.mark.parametrize("command", ["predict", "export", "extract"])
def test_an_output_folder_under_a_regular_file_is_refused_before_any_work(
    command: str,
    videos: dict[str, Path],
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = [command, f"--ckpt_path={checkpoint}", f"--out={blocker / 'out'}"]
    if command == "predict":
        args.insert(1, str(videos["whole"]))
    if command == "extract":  # hdf data extract --faces
        args = ["data", "extract", "--faces=true", f"--videos={videos['whole'].parent}", args[2]]
    code, err = run_console(args, monkeypatch, capsys)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    prefix = "hdf" if command == "extract" else f"hdf {command}"
    assert lines[0].startswith(f"{prefix}: error: cannot write to the output folder")
    assert f"{blocker / 'out'} (--out)" in lines[0]
    assert capsys.readouterr().out == ""  # no video was processed
    assert not (blocker / "out").exists()
    assert "ok " not in capsys.readouterr().out  # no video was processed
