"""``hdf data extract --faces``: the crops of ``hdf predict``, written as DFEW-style frame folders.

The videos are rendered synthetic faces moving over a larger background, H.264 in MP4
(:mod:`face_videos`); OpenCV's Haar cascade finds those faces.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simplejpeg

from cli_utils import run_console, tiny_checkpoint
from face_videos import face_scene, write_face_video
from hdf_lightning.data.datamodules import ClipDataModule
from hdf_lightning.data.face_crops import (
    MANIFEST_NAME,
    FaceCropRecord,
    clips_crop_record,
    manifest_crop_record,
)
from hdf_lightning.data.opencv import opencv
from hdf_lightning.data.splits import CSVSplits
from hdf_lightning.inference import face_extract
from hdf_lightning.inference.checkpoint import load_model
from hdf_lightning.inference.face import FaceCropper, FaceOptions, make_detector
from hdf_lightning.inference.face_extract import (
    FaceExtractOptions,
    extract_faces,
    kept_ranges,
)
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.predict import Predictor
from hdf_lightning.inference.sources import open_source
from test_damaged_videos import write_faststart_mp4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HDFNet (4 frames, 32 px) trained for one batch by ``hdf fit``."""
    return tiny_checkpoint(tmp_path_factory.mktemp("fit"))


def read_manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / MANIFEST_NAME).read_text())


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------- one crop implementation


def test_extract_writes_exactly_the_crops_predict_classifies(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the same frames, the arrays ``hdf data extract --faces`` encodes to JPEG and the arrays
    ``hdf predict`` stacks into its clips are bit-equal."""
    video = write_face_video(tmp_path / "videos" / "talk.mp4", 60, label=3, seed=2)
    model = load_model(checkpoint)
    size = model.preprocessing.load_size  # predict crops at the checkpoint's load size

    encoded: list[np.ndarray] = []
    encode = simplejpeg.encode_jpeg

    def capture(image: np.ndarray, **kwargs: Any) -> bytes:
        encoded.append(image.copy())
        return encode(image, **kwargs)

    monkeypatch.setattr(face_extract.simplejpeg, "encode_jpeg", capture)
    out = tmp_path / "crops"
    result = extract_faces(tmp_path / "videos", out, FaceExtractOptions(size=size))
    assert result["extracted"] == 1 and result["failed"] == {}
    clip = read_manifest(out)["clips"]["talk"]
    kept = [i for start, stop in clip["kept"] for i in range(start, stop)]
    assert clip["frames"] == len(kept) == len(encoded) >= 55  # a face in (nearly) every frame
    extracted = dict(zip(kept, encoded, strict=True))

    predictor = Predictor(model, PredictOptions(window="12f", stride="12f"))
    classified: list[np.ndarray] = []
    classify = predictor._classify

    def record_clips(clips: list[np.ndarray], times: Any) -> np.ndarray:
        classified.extend(clips)
        return classify(clips, times)

    monkeypatch.setattr(predictor, "_classify", record_clips)
    windows = predictor.predict(open_source(video, fps=25.0)).windows
    assert len(classified) == len(windows) == 5  # one clip per window, windows in order
    compared = 0
    for window, clip_crops in zip(windows, classified, strict=True):
        assert window.face_fraction == 1.0
        for frame, crop in zip(window.window.indices, clip_crops, strict=True):
            assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
            assert np.array_equal(crop, extracted[frame]), f"frame {frame}"
            compared += 1
    assert compared == 5 * model.preprocessing.num_frames
    # the JPEG files hold those crops (quality 95)
    first = simplejpeg.decode_jpeg((out / "talk" / "00001.jpg").read_bytes())
    assert np.abs(first.astype(int) - extracted[kept[0]].astype(int)).mean() < 3


def test_predict_and_extract_record_the_same_crop() -> None:
    options = FaceOptions(margin=0.25, detect_every=3)
    record = FaceCropper(options).record(224)
    assert record == FaceCropRecord("opencv", 0.25, 224, 3, 320, 5, 6, "every decoded frame")
    assert FaceCropRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert record.differences(FaceCropper(options).record(112)) == []  # the side is not compared
    other = FaceCropper(FaceOptions(margin=0.3, detect_every=3)).record(224)
    assert record.differences(other) == [("margin", 0.25, 0.3)]
    whole = FaceCropper(FaceOptions(detector="none", margin=0.3)).record(64)
    assert (whole.margin, whole.detect_every, whole.max_gap) == (None, None, None)
    assert "whole frames" in whole.describe()
    with pytest.raises(ValueError, match="without"):
        FaceCropRecord.from_dict({"detector": "opencv"})


def test_kept_ranges() -> None:
    found = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0, 1], dtype=bool)
    assert kept_ranges(found) == [[1, 3], [5, 8], [9, 10]]
    assert kept_ranges(np.ones(4, dtype=bool)) == [[0, 4]]
    assert kept_ranges(np.zeros(3, dtype=bool)) == []


# ------------------------------------------------------------------------- console and bad input


@pytest.fixture(scope="module")
def raw_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two face videos, one without a face, one with a face in its first fifth, a corrupt file
    and a truncated download of a face video."""
    folder = tmp_path_factory.mktemp("raw") / "videos"
    write_face_video(folder / "1.mp4", 40, label=0, seed=0)
    write_face_video(folder / "2.mp4", 30, label=1, seed=1)
    write_face_video(folder / "empty_room.mp4", 30, face_frames=0)
    write_face_video(folder / "walks_out.mp4", 50, face_frames=10, seed=3)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    whole = write_faststart_mp4(tmp_path_factory.mktemp("whole") / "w.mp4", face_scene(100))
    data = whole.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    return folder


def test_console_extract_reports_each_bad_video_in_one_line_and_resumes(
    raw_videos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "faces"
    args = ["data", "extract", "--faces=true", f"--videos={raw_videos}", f"--out={out}"]
    code, err = run_console([*args, "--size=48", "--workers=2"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    lines = err.splitlines()
    assert "hdf: error: 4 of 6 video(s) could not be extracted (the other 2 are in" in err
    reasons = {
        "empty_room.mp4": "no face found in any of its 30 frames",
        "walks_out.mp4": "% of its frames",  # below --min_face_fraction 0.5
        "corrupt.mp4": "cannot read the video",
        "cut.mp4": "of the 100 frames the container declares decode",
    }
    for name, reason in reasons.items():
        mine = [line for line in lines if f"{raw_videos / name}:" in line]
        assert len(mine) == 1 and reason in mine[0], (name, err)
    assert "below --min_face_fraction 0.5" in err

    # written: the two face clips, numbered as DFEW; nothing half-written
    assert sorted(p.name for p in out.iterdir()) == ["00001", "00002", MANIFEST_NAME]
    assert sorted(p.name for p in (out / "00001").iterdir())[:2] == ["00001.jpg", "00002.jpg"]
    manifest = read_manifest(out)
    assert manifest["face_crop"] == {
        "detector": "opencv", "margin": 0.15, "size": 48, "detect_every": 5, "detect_width": 320,
        "smooth": 5, "max_gap": 10, "frame_source": "every decoded frame",
    }  # fmt: skip
    clips = manifest["clips"]
    assert {name: c["status"] for name, c in clips.items()} == {
        "00001": "ok", "00002": "ok", "empty_room": "no_face", "walks_out": "low_face",
        "corrupt": "failed", "cut": "damaged",
    }  # fmt: skip
    for name in ("00001", "00002"):
        clip = clips[name]
        assert clip["frames"] == len(list((out / name).glob("*.jpg")))
        assert clip["frames"] == sum(b - a for a, b in clip["kept"])
        assert clip["face_fraction"] >= 0.9 and clip["decoded_frames"] == clip["declared_frames"]
    assert 0.1 <= clips["walks_out"]["face_fraction"] <= 0.3
    assert clips["cut"]["declared_frames"] == 100 and clips["cut"]["decoded_frames"] < 80
    assert "message" in clips["corrupt"] and "message" not in clips["00001"]

    # a rerun skips the finished clips and keeps them in the manifest
    stamp = (out / "00001" / "00001.jpg").stat().st_mtime_ns
    code, err = run_console([*args, "--size=48"], monkeypatch, capsys)
    assert code == 1
    assert (out / "00001" / "00001.jpg").stat().st_mtime_ns == stamp
    again = read_manifest(out)
    assert again["clips"]["00001"] == clips["00001"] and again["clips"].keys() == clips.keys()

    # a damaged video's decodable frames on request
    code, err = run_console([*args, "--size=48", "--keep_damaged=true"], monkeypatch, capsys)
    assert f"WARN {raw_videos / 'cut.mp4'}: damaged or truncated" in err
    cut = read_manifest(out)["clips"]["cut"]
    assert cut["status"] == "ok" and cut["damaged"] is True
    assert len(list((out / "cut").glob("*.jpg"))) == cut["frames"] > 0


def test_crops_made_otherwise_are_not_mixed_into_a_folder(
    raw_videos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "1.mp4").write_bytes((raw_videos / "1.mp4").read_bytes())
    out = tmp_path / "faces"
    args = ["data", "extract", "--faces=true", f"--videos={videos}", f"--out={out}", "--size=40"]
    assert run_console(args, monkeypatch, capsys)[0] == 0
    before = folder_bytes(out / "00001")
    code, err = run_console([*args, "--margin=0.3"], monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"hdf: error: {out} holds face crops made with opencv faces, margin")
    assert "margin 0.3" in lines[0]
    assert folder_bytes(out / "00001") == before

    other = tmp_path / "frames"
    (other / "00001").mkdir(parents=True)
    code, err = run_console([*args[:4], f"--out={other}"], monkeypatch, capsys)
    assert code == 2 and "is not empty (00001) and holds no manifest.json" in err

    code, err = run_console(
        ["data", "extract", f"--videos={videos}", f"--out={tmp_path / 'x'}", "--margin=0.3"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "--margin: only used with --faces true" in err


# ----------------------------------------------------------------------------------- processes


@pytest.mark.timeout(180)
def test_workers_run_after_the_parent_used_opencv(
    raw_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Worker processes forked after the parent ran OpenCV (its thread pool started) do not hang,
    and write the same files as one process."""
    cv2 = opencv()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        assert len(make_detector("opencv").detect(face_scene(1)[0])) == 1
        cv2.GaussianBlur(np.zeros((1080, 1920, 3), np.uint8), (31, 31), 0)  # parallel kernel
        videos = tmp_path / "videos"
        videos.mkdir()
        for name in ("1.mp4", "2.mp4", "walks_out.mp4"):
            (videos / name).write_bytes((raw_videos / name).read_bytes())
        options = FaceExtractOptions(size=40)
        seen: list[str] = []
        two = extract_faces(
            videos, tmp_path / "two", options, workers=2, progress=True,
            on_result=lambda clip: seen.append(clip.status),
        )  # fmt: skip
        assert cv2.getNumThreads() == 2  # the parent keeps its thread count
    finally:
        cv2.setNumThreads(threads)
    one = extract_faces(videos, tmp_path / "one", options, workers=1)
    assert sorted(seen) == ["low_face", "ok", "ok"]
    assert (
        (two["extracted"], len(two["failed"])) == (one["extracted"], len(one["failed"])) == (2, 1)
    )
    for name in ("00001", "00002"):
        assert folder_bytes(tmp_path / "two" / name) == folder_bytes(tmp_path / "one" / name)
    assert read_manifest(tmp_path / "two")["clips"] == read_manifest(tmp_path / "one")["clips"]
    assert "face crops" in capsys.readouterr().err  # the progress bar, forced on


# --------------------------------------------------------------- the record beside the crops


def test_a_datamodule_knows_how_its_clips_were_cropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = FaceCropper(FaceOptions()).record(224)
    crops = tmp_path / "crops"
    (crops / "a").mkdir(parents=True)
    (crops / "b").mkdir()
    (crops / MANIFEST_NAME).write_text(json.dumps({"face_crop": record.to_dict(), "clips": {}}))
    assert manifest_crop_record(crops) == record
    assert manifest_crop_record(tmp_path) is None
    assert clips_crop_record([crops / "a", crops / "b"]) == record
    assert clips_crop_record([tmp_path / "dfew" / "00001"]) is None  # no manifest: unknown
    (tmp_path / "other").mkdir()
    with caplog.at_level(logging.WARNING):
        assert clips_crop_record([crops / "a", tmp_path / "other" / "c"]) is None
    assert "not all cropped the same way" in caplog.text

    rows = "path,label\na,x\nb,y\nb,no_such_class\n"  # a bad row, skipped with skip_bad
    (crops / "train.csv").write_text(rows)
    splits = CSVSplits({"train": crops / "train.csv", "test": crops / "train.csv"}, ("x", "y"))
    assert ClipDataModule(splits, skip_bad=True).face_crop == record


def test_a_clip_that_fails_while_written_leaves_nothing_behind(
    raw_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("0.mp4", "00001.mp4", "1.mp4"):  # 00001.mp4 and 1.mp4 share the folder 00001
        source = "2.mp4" if name == "0.mp4" else "1.mp4"
        (videos / name).write_bytes((raw_videos / source).read_bytes())
    calls: list[int] = []
    encode = simplejpeg.encode_jpeg

    def disk_full_on_the_fifth_frame(image: np.ndarray, **kwargs: Any) -> bytes:
        calls.append(1)
        if len(calls) == 5:  # while 0.mp4 (the first clip) is written
            raise OSError(28, "No space left on device")
        return encode(image, **kwargs)

    monkeypatch.setattr(face_extract.simplejpeg, "encode_jpeg", disk_full_on_the_fifth_frame)
    out = tmp_path / "faces"
    result = extract_faces(videos, out, FaceExtractOptions(size=32))
    assert result["extracted"] == 1
    assert result["failed"] == {
        str(videos / "0.mp4"): f"{videos / '0.mp4'}: OSError: [Errno 28] No space left on device",
        str(videos / "1.mp4"): f"{videos / '1.mp4'}: its clip folder 00001 is also the folder of "
        f"{videos / '00001.mp4'}; rename one",
    }
    assert sorted(p.name for p in out.iterdir()) == ["00001", MANIFEST_NAME]
    assert read_manifest(out)["clips"]["00000"]["status"] == "failed"


def test_the_benchmark_reports_every_stage_and_the_speed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_extract

    assert bench_extract.main(["--seconds", "2", "--copies", "2", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for stage in ("decode", "detect", "crop", "write"):
        assert out.count(f" {stage} ") == 2, out
    assert "1 worker(s): 2 videos" in out and "2 worker(s): 2 videos" in out
    assert "x real time" in out and "reproduce: python benchmarks/bench_extract.py" in out
