"""``hdf predict`` over many videos: worker processes, batches across videos, one process per
device, resume. The outputs must be those of the one-video-at-a-time path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_utils import tiny_checkpoint
from face_videos import write_face_video
from hdf_lightning.inference.face import HaarFaceDetector
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.predict import VideoPreparer, build_predictor
from hdf_lightning.inference.predict_cli import predict_main
from hdf_lightning.inference.runner import Job, run_jobs
from hdf_lightning.inference.sources import InputError

OPTIONS = ["--window=1s", "--stride=0.5s", "--timeline=false"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("fit"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four face videos of different lengths and a file that is not a video."""
    folder = tmp_path_factory.mktemp("videos")
    for i, frames in enumerate((50, 75, 40, 60)):
        write_face_video(folder / f"clip{i}.mp4", frames, label=i, seed=i)
    (folder / "notes.mp4").write_text("not a video")
    return folder


def _predict(
    videos: Path,
    checkpoint: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str, str]:
    args = [str(videos), f"--ckpt_path={checkpoint}", f"--out={out}", *OPTIONS, *extra]
    code = predict_main(args)
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def _windows(out: Path) -> dict[str, list[dict]]:
    """The window records of every video's JSONL, by file name."""
    return {
        path.name: [
            json.loads(line)
            for line in path.read_text().splitlines()
            if json.loads(line)["record"] == "window"
        ]
        for path in sorted(out.glob("*.windows.jsonl"))
    }


def _summary(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    for video in summary["videos"]:
        video.pop("timing_s")
        video.pop("outputs")
    return summary


@pytest.fixture(scope="module")
def sequential(videos: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Today's path: one video after the other in this process."""
    out = tmp_path_factory.mktemp("sequential")
    code = predict_main([str(videos), f"--ckpt_path={checkpoint}", f"--out={out}", *OPTIONS])
    assert code == 1  # notes.mp4 is not a video
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_give_the_outputs_of_the_sequential_path(
    workers: int,
    videos: Path,
    checkpoint: Path,
    sequential: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = sequential
    code, err, out = _predict(
        videos, checkpoint, tmp_path, monkeypatch, capsys, f"--workers={workers}"
    )
    assert code == 1 and "notes.mp4" in err and out.count("ok   ") == 4
    assert _windows(tmp_path) == _windows(reference)  # every window, every probability
    assert _summary(tmp_path) == _summary(reference)


def test_batches_across_videos_match_within_float_rounding(
    videos: Path,
    checkpoint: Path,
    sequential: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = _predict(
        videos, checkpoint, tmp_path, monkeypatch, capsys, "--workers=2", "--batch_size=5"
    )
    assert code == 1
    ours, reference = _windows(tmp_path), _windows(sequential)
    assert ours.keys() == reference.keys()
    for name, windows in ours.items():
        for a, b in zip(windows, reference[name], strict=True):
            assert {k: v for k, v in a.items() if k != "probs"} == {
                k: v for k, v in b.items() if k != "probs"
            }
            if a["probs"] is not None:
                np.testing.assert_allclose(
                    list(a["probs"].values()), list(b["probs"].values()), atol=1e-5
                )


def test_a_rerun_skips_finished_videos_and_redoes_them_when_the_options_change(
    videos: Path,
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = _predict(videos, checkpoint, tmp_path, monkeypatch, capsys)
    assert code == 1
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.windows.*")}
    first = _summary(tmp_path)
    code, _, out = _predict(videos, checkpoint, tmp_path, monkeypatch, capsys, "--workers=2")
    assert code == 1 and out.count("skip ") == 4 and "4 classified (4 done before)" in out
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.windows.*")} == stamps
    again = _summary(tmp_path)
    assert again.pop("num_resumed") == 4 and first.pop("num_resumed") == 0
    assert again == first  # the summary is read back from the videos' files
    # another margin crops otherwise: every video is done again
    code, _, out = _predict(videos, checkpoint, tmp_path, monkeypatch, capsys, "--margin=0.3")
    assert code == 1 and "skip " not in out and out.count("ok   ") == 4
    # --overwrite redoes them even with the same options
    code, _, out = _predict(
        videos, checkpoint, tmp_path, monkeypatch, capsys, "--margin=0.3", "--overwrite=true"
    )
    assert code == 1 and "skip " not in out and out.count("ok   ") == 4


@pytest.mark.slow
def test_one_process_per_device_gives_the_same_outputs(
    videos: Path,
    checkpoint: Path,
    sequential: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two "devices" (both the CPU here; CUDA devices work the same way), videos dealt out."""
    code, err, out = _predict(
        videos, checkpoint, tmp_path, monkeypatch, capsys, "--devices=[cpu,cpu]"
    )
    assert code == 1 and "notes.mp4" in err and out.count("ok   ") == 4
    assert _windows(tmp_path) == _windows(sequential)
    assert _summary(tmp_path) == _summary(sequential)


@pytest.mark.timeout(180)
def test_workers_forked_after_the_parent_detected_faces_do_not_hang(
    videos: Path, checkpoint: Path, tmp_path: Path
) -> None:
    frame = np.zeros((240, 320, 3), dtype=np.uint8)
    HaarFaceDetector().detect(frame)  # OpenCV's thread pool is running in this process now
    predictor = build_predictor(str(checkpoint), None, PredictOptions(window="1s"))
    jobs = [Job(i, videos / f"clip{i}.mp4", f"clip{i}") for i in range(4)]
    outcomes = run_jobs(jobs, predictor, tmp_path, workers=2)
    assert [o.error for o in outcomes] == [None] * 4
    assert all(o.record is not None and o.record["status"] == "ok" for o in outcomes)


def test_bad_worker_and_device_options_are_one_line(
    videos: Path,
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err, _ = _predict(videos, checkpoint, tmp_path, monkeypatch, capsys, "--workers=-1")
    assert code == 2 and err.strip() == "hdf predict: error: --workers must be >= 0, got -1"
    code, err, _ = _predict(videos, checkpoint, tmp_path, monkeypatch, capsys, "--devices=[]")
    assert code == 2 and "--devices must name at least one device" in err


def test_a_video_that_fails_after_some_of_its_clips_fails_alone(
    videos: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoding error in the second pass, after clips of the video were sent and batched."""
    original = VideoPreparer.window_clips

    def failing(self, source, result, plan):  # type: ignore[no-untyped-def]
        for count, item in enumerate(original(self, source, result, plan)):
            if source.path.name == "clip1.mp4" and count == 4:  # after one message of 4 clips
                raise InputError(f"{source.path}: cannot decode the video (cut short)")
            yield item

    monkeypatch.setattr(VideoPreparer, "window_clips", failing)  # the forked workers inherit it
    # one worker: clip1's first clips wait in a batch that later videos fill
    options = PredictOptions(window="1s", batch_size=64, timeline=False)
    predictor = build_predictor(str(checkpoint), None, options)
    jobs = [Job(i, videos / f"clip{i}.mp4", f"clip{i}") for i in range(4)]
    outcomes = run_jobs(jobs, predictor, tmp_path, workers=1)
    assert [o.error is None for o in outcomes] == [True, False, True, True]
    assert "cut short" in str(outcomes[1].error)
    assert not (tmp_path / "clip1.windows.jsonl").exists()
    assert all(
        o.record is not None and o.record["status"] == "ok"
        for i, o in enumerate(outcomes)
        if i != 1
    )
    assert all((tmp_path / f"clip{i}.windows.jsonl").is_file() for i in (0, 2, 3))
