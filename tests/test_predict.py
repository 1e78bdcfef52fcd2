"""``hdf predict`` on real encoded videos with drawn faces, through the console command."""

from __future__ import annotations

import csv
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cli_utils import HDF, run_hdf, tiny_checkpoint
from hdf_lightning.data.frame_sampling import segment_indices
from hdf_lightning.data.synthetic import render_clip
from hdf_lightning.data.transforms import ClipEval
from hdf_lightning.data.video import decode_video, write_video
from hdf_lightning.inference.checkpoint import CheckpointError, load_model, network_weights
from hdf_lightning.inference.face import (
    FullFrameDetector,
    HaarFaceDetector,
    crop_square,
    make_detector,
    track_faces,
)
from hdf_lightning.inference.predict_cli import predict_main
from hdf_lightning.inference.windows import (
    ShortVideoError,
    num_windows,
    parse_span,
    sliding_windows,
)

REPO = Path(__file__).resolve().parents[1]
FPS = 25
CLASSES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HDFNet (4 frames, 32 px) trained for one batch by ``hdf fit``."""
    return tiny_checkpoint(tmp_path_factory.mktemp("fit"))


def face_frames(num: int, *, size: int = 96, label: int = 0, seed: int = 0) -> np.ndarray:
    """``num`` frames (num, 240, 320, 3) with a rendered synthetic face at (100, 60)."""
    faces = render_clip(label, num_frames=num, image_size=size, seed=seed)
    frames = np.full((num, 240, 320, 3), 90, dtype=np.uint8)
    frames[:, 60 : 60 + size, 100 : 100 + size] = faces
    return frames


def write_webm(path: Path, frames: np.ndarray) -> None:
    """VP8 in WebM (a second codec and container besides H.264 in MP4)."""
    with av.open(str(path), mode="w") as container:
        stream = cast(av.VideoStream, container.add_stream("libvpx", rate=Fraction(FPS)))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.bit_rate = 4_000_000
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------------- console: file


def test_predict_file_writes_windows_probabilities_and_timeline(
    tmp_path: Path, checkpoint: Path
) -> None:
    # 4 s: a face for 2 s, then the empty background for 2 s
    frames = face_frames(4 * FPS)
    frames[2 * FPS :] = 90
    video = tmp_path / "talk.mp4"
    write_video(video, frames, fps=FPS)
    out = tmp_path / "out"
    args = ["predict", str(video), f"--ckpt_path={checkpoint}", f"--out={out}"]
    result = run_hdf([*args, "--window=1s", "--stride=0.5s"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "talk.mp4" in result.stdout
    assert "1 classified, 0 failed" in result.stdout

    records = read_jsonl(out / "talk.windows.jsonl")
    header, windows, summary = records[0], records[1:-1], records[-1]
    assert header["record"] == "video" and summary["record"] == "summary"
    assert header["class_names"] == CLASSES
    assert header["checkpoint"] == str(checkpoint.resolve())
    pre = header["preprocessing"]
    assert (pre["num_frames"], pre["crop_size"], pre["normalize"]) == (4, 32, "kinetics")
    assert pre["mean"] == [0.45] * 3 and pre["std"] == [0.225] * 3
    assert header["window"] == {
        "length_frames": 25,
        "stride_frames": 12,
        "length_s": 1.0,
        "stride_s": 0.48,
    }
    assert header["video_frames"] == 100 and header["fps"] == 25.0
    assert "num_frames" not in header  # the clip length T is the preprocessing's num_frames
    # windows: 1 s long, starting every 12 frames, the last one aligned to the end
    assert len(windows) == num_windows(100, 25, 12) == 8
    starts = [w["start_frame"] for w in windows]
    assert starts == [0, 12, 24, 36, 48, 60, 72, 75]
    for w in windows:
        assert w["record"] == "window"
        assert w["end_frame"] - w["start_frame"] == 25
        assert w["start_s"] == pytest.approx(w["start_frame"] / FPS)
        assert w["end_s"] == pytest.approx(w["end_frame"] / FPS)
        assert len(w["frames"]) == 4
        assert all(w["start_frame"] <= f < w["end_frame"] for f in w["frames"])
    face = [w for w in windows if w["face"]]
    no_face = [w for w in windows if not w["face"]]
    # windows entirely in the first 2 s have a face, those entirely after it have none
    assert [w["window"] for w in face][:3] == [0, 1, 2]
    assert {w["window"] for w in no_face} >= {5, 6, 7}
    for w in face:
        assert sum(w["probs"].values()) == pytest.approx(1.0, abs=1e-5)
        assert list(w["probs"]) == CLASSES
        assert w["top_class"] == max(w["probs"], key=w["probs"].get)
        x0, y0, x1, y1 = w["face_box"]
        # the face is drawn at x 100..196, y 60..156; the detector's box lies inside it
        assert 90 <= x0 < x1 <= 206 and 50 <= y0 < y1 <= 166
        assert x1 - x0 == pytest.approx(y1 - y0, abs=0.5)  # square
    for w in no_face:
        assert w["probs"] is None and w["top_class"] is None and w["face_box"] is None
    mean = np.mean([list(w["probs"].values()) for w in face], axis=0)
    assert list(summary["probs"].values()) == pytest.approx(mean.tolist(), abs=1e-5)
    assert summary["face_windows"] == len(face) and summary["windows"] == 8
    assert summary["status"] == "ok" and summary["top_class"] == CLASSES[int(mean.argmax())]
    assert set(summary["timing_s"]) == {"decode", "detect", "crop", "model", "total"}

    with (out / "talk.windows.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert list(rows[0])[:6] == ["video", "window", "start_s", "end_s", "start_frame", "end_frame"]
    assert [f"p_{c}" for c in CLASSES] == [k for k in rows[0] if k.startswith("p_")]
    for row, w in zip(rows, windows, strict=True):
        assert float(row["start_s"]) == pytest.approx(w["start_s"])
        assert row["face"] == str(int(w["face"]))
        if w["face"]:
            assert sum(float(row[f"p_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
        else:
            assert row["p_happy"] == "" and row["top_class"] == ""
    assert (out / "talk.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((out / "summary.json").read_text())
    assert run["num_ok"] == 1 and run["num_failed"] == 0 and run["failed"] == []
    assert run["videos"][0]["outputs"]["timeline"].endswith("talk.timeline.png")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


# ------------------------------------------------------------------------------- console: folder


def test_predict_folder_reports_bad_inputs_and_processes_the_rest(
    tmp_path: Path, checkpoint: Path
) -> None:
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    write_video(folder / "a_face.mp4", face_frames(2 * FPS, label=4, seed=1), fps=FPS)
    write_webm(folder / "sub" / "b_face.webm", face_frames(2 * FPS, label=1, seed=2))
    frame_dir = folder / "c_frames"
    frame_dir.mkdir()
    for i, frame in enumerate(face_frames(50, seed=3)):
        Image.fromarray(frame).save(frame_dir / f"{i + 1:05d}.jpg", quality=92)
    write_video(folder / "d_noface.mp4", np.full((2 * FPS, 240, 320, 3), 90, np.uint8), fps=FPS)
    write_video(folder / "e_short.mp4", face_frames(10), fps=FPS)
    (folder / "f_corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    (folder / "g_notes.avi").write_text("not a video at all\n")
    (folder / "readme.txt").write_text("ignored: no video suffix\n")
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "out"
    result = run_hdf(
        ["predict", str(folder), str(missing), f"--ckpt_path={checkpoint}", f"--out={out}"],
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name in ("d_noface.mp4", "e_short.mp4", "f_corrupt.mp4", "g_notes.avi", "missing.mp4"):
        assert name in result.stderr, name
    assert "shorter than one window" in result.stderr
    assert "3 classified, 5 failed" in result.stdout
    for name in ("a_face.mp4", "b_face.webm", "c_frames"):
        assert f"{name}:" in result.stdout
    run = json.loads((out / "summary.json").read_text())
    assert run["num_ok"] == 3 and run["num_failed"] == 5
    failed = {Path(f["video"]).name for f in run["failed"]}
    assert failed == {"d_noface.mp4", "e_short.mp4", "f_corrupt.mp4", "g_notes.avi", "missing.mp4"}
    by_name = {Path(v["video"]).name: v for v in run["videos"]}
    assert by_name["c_frames"]["fps"] == 25.0 and by_name["c_frames"]["video_frames"] == 50
    assert by_name["d_noface.mp4"]["status"] == "no_face"
    for name in ("a_face.mp4", "b_face.webm", "c_frames"):
        assert by_name[name]["status"] == "ok"
        assert sum(by_name[name]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    for stem in ("a_face", "b_face", "c_frames", "d_noface"):
        assert (out / f"{stem}.windows.jsonl").is_file()
        assert (out / f"{stem}.timeline.png").is_file()
    with (out / "summary.csv").open() as f:
        rows = {Path(r["video"]).name: r for r in csv.DictReader(f)}
    assert (
        rows["f_corrupt.mp4"]["status"] == "failed"
        and "f_corrupt.mp4" in rows["f_corrupt.mp4"]["error"]
    )
    assert rows["a_face.mp4"]["status"] == "ok"


# -------------------------------------------------------------------- preprocessing and detectors


def test_none_detector_matches_the_training_loader(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a face-crop video (DFEW-style), a window's probabilities are the network's output on
    the clip the DataModule's evaluation path would build from the same frames."""
    frames = render_clip(2, num_frames=30, image_size=64, seed=5)
    video = tmp_path / "crop.mp4"
    write_video(video, frames, fps=FPS)
    out = tmp_path / "out"
    code = predict_main(
        [
            str(video),
            f"--ckpt_path={checkpoint}",
            f"--out={out}",
            "--detector=none",
            "--window=20f",
            "--stride=10f",
            "--timeline=false",
        ]
    )
    assert code == 0, capsys.readouterr().err
    windows = read_jsonl(out / "crop.windows.jsonl")[1:-1]
    assert [w["start_frame"] for w in windows] == [0, 10]
    assert all(w["face_box"] == [0.0, 0.0, 64.0, 64.0] for w in windows)
    assert not (out / "crop.timeline.png").exists()
    model = load_model(checkpoint)
    pre = model.preprocessing
    for w in windows:
        clip = decode_video(video, w["frames"], size=pre.load_size)  # (3, T, L, L) uint8
        x = ClipEval(size=pre.crop_size, mean=pre.mean, std=pre.std)(clip.unsqueeze(0))
        with torch.no_grad():
            expected = model.net(x)[0].softmax(-1)[0]
        got = torch.tensor(list(w["probs"].values()))
        # swscale's bilinear resize (the loader) vs OpenCV's area resize (here)
        assert torch.allclose(got, expected, atol=0.02), (got, expected)


class BrightSquareDetector:
    """A deterministic stand-in detector: the bounding box of pixels brighter than 200."""

    full_frame = False

    def detect(self, frame: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(frame.min(axis=-1) > 200)
        if len(xs) == 0:
            return np.zeros((0, 4), dtype=np.float32)
        return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float32)


def test_plugged_detector_drives_the_crop_and_the_face_box(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = np.zeros((50, 240, 320, 3), dtype=np.uint8)
    frames[:25, 80:160, 40:120] = 255  # an 80 px bright square, first at x 40..120
    frames[25:, 80:160, 120:200] = 255  # then at x 120..200
    video = tmp_path / "square.mp4"
    write_video(video, frames, fps=FPS)
    out = tmp_path / "out"
    code = predict_main(
        [
            str(video),
            f"--ckpt_path={checkpoint}",
            f"--out={out}",
            "--window=10f",
            "--stride=10f",
            "--detector=test_predict.BrightSquareDetector",
            "--detect_every=1",
            "--detect_width=320",
            "--smooth=1",
            "--timeline=false",
        ]
    )
    assert code == 0, capsys.readouterr().err
    windows = read_jsonl(out / "square.windows.jsonl")[1:-1]
    assert len(windows) == 5
    assert windows[0]["face_box"] == pytest.approx([40, 80, 120, 160], abs=1.5)
    assert windows[-1]["face_box"] == pytest.approx([120, 80, 200, 160], abs=1.5)
    assert "square.mp4" in capsys.readouterr().out


def test_opencv_detector_runs_offline_on_a_drawn_face() -> None:
    detector = make_detector("opencv")
    assert isinstance(detector, HaarFaceDetector) and not detector.full_frame
    frame = face_frames(1, size=96)[0]
    boxes = detector.detect(frame)
    assert boxes.shape[1] == 4 and len(boxes) >= 1
    x0, y0, x1, y1 = boxes[0]
    assert 100 <= x0 < x1 <= 196 and 60 <= y0 < y1 <= 156  # inside the drawn face
    assert detector.detect(np.full((240, 320, 3), 90, np.uint8)).shape == (0, 4)
    assert isinstance(make_detector("none"), FullFrameDetector)
    with pytest.raises(ValueError, match="unknown face detector"):
        make_detector("dlib")
    with pytest.raises(ValueError, match="cannot import"):
        make_detector("no_such_module.Detector")


# ------------------------------------------------------------------------------ pure functions


@pytest.mark.parametrize(
    ("text", "fps", "frames"),
    [("2s", 25, 50), ("0.5s", 25, 12), ("48f", 25, 48), ("1", 30, 30), (" 2.5S ", 10, 25)],
)
def test_parse_span(text: str, fps: float, frames: int) -> None:
    assert parse_span(text, fps) == frames


@pytest.mark.parametrize("text", ["", "2m", "-1s", "1.5f", "0f", "0.01s"])
def test_parse_span_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="span"):
        parse_span(text, 25)


@pytest.mark.parametrize(
    ("n", "length", "stride", "starts"),
    [
        (10, 4, 3, [0, 3, 6]),
        (11, 4, 3, [0, 3, 6, 7]),
        (4, 4, 2, [0]),
        (20, 5, 10, [0, 10, 15]),
    ],
)
def test_sliding_windows_cover_every_frame(
    n: int, length: int, stride: int, starts: list[int]
) -> None:
    windows = sliding_windows(n, length, stride, clip_len=2)
    assert [w.start for w in windows] == starts
    assert num_windows(n, length, stride) == len(starts)
    assert all(w.end - w.start == length for w in windows)
    assert windows[-1].end == n
    offsets = segment_indices(length, 2, train=False)  # segment centres, as at evaluation
    assert [w.indices for w in windows] == [tuple(w.start + o for o in offsets) for w in windows]


def test_sliding_windows_short_video() -> None:
    with pytest.raises(ShortVideoError, match="shorter than one window"):
        sliding_windows(3, 4, 1, clip_len=2)
    assert num_windows(3, 4, 1) == 0


def test_track_interpolates_holds_and_stops_at_missed_faces() -> None:
    box_a = np.array([[10, 10, 30, 30]], np.float32)  # centre (20, 20), side 20
    box_b = np.array([[30, 10, 50, 30]], np.float32)  # centre (40, 20)
    none = np.zeros((0, 4), np.float32)
    detections = {0: box_a, 5: none, 10: box_b, 15: none, 20: none}
    track = track_faces(24, detections, max_gap=10, hold=4, smooth=1)
    # 0..10 joined across the miss at 5; centre x moves linearly 20 -> 40
    centres = (track.boxes[:, 0] + track.boxes[:, 2]) / 2
    assert track.found[:13].all()
    assert centres[5] == pytest.approx(30.0)
    # after 10: held up to the frames nearer to 10 than to the miss at 15
    assert track.found[11:13].all() and not track.found[13:].any()
    assert np.isnan(track.boxes[20]).all()
    # smoothing keeps a straight track straight, and picks the face that overlaps the last one
    two = {0: box_a, 2: np.concatenate([np.array([[200, 200, 260, 260]], np.float32), box_a])}
    track = track_faces(3, two, max_gap=4, hold=0, smooth=3)
    assert track.boxes[2] == pytest.approx([10, 10, 30, 30])


def test_crop_square_adds_margin_and_pads_outside_the_frame() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[40:60, 40:60] = 200
    crop = crop_square(frame, np.array([40, 40, 60, 60], np.float32), margin=0.5, size=40)
    assert crop.shape == (40, 40, 3)
    assert crop[10:30, 10:30].mean() == pytest.approx(200, abs=2)  # the box, in the middle
    assert crop[:8].mean() == pytest.approx(0, abs=1)  # the margin
    corner = crop_square(frame, np.array([-20, -20, 20, 20], np.float32), margin=0.0, size=40)
    assert corner.shape == (40, 40, 3) and corner[:20, :20].max() == 0  # padded, not shifted
    whole = crop_square(np.ones((60, 80, 3), np.uint8), None, margin=0.3, size=16)
    assert whole.shape == (16, 16, 3) and whole.min() == 1


# ----------------------------------------------------------------------------------- checkpoints


def test_unusable_checkpoints_give_one_clear_line(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(os.urandom(2048))
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    other = tmp_path / "other.ckpt"
    data = torch.load(checkpoint, weights_only=True)
    data["hdf_inference"]["net"]["init_args"]["width_factor"] = 1.0  # another architecture
    torch.save(data, other)
    for path, match in (
        (tmp_path / "absent.ckpt", "checkpoint not found"),
        (garbage, "not a PyTorch checkpoint"),
        (truncated, "not a PyTorch checkpoint"),
        (other, "does not fit the network"),
    ):
        with pytest.raises(CheckpointError, match=match) as err:
            load_model(path)
        assert str(path) in str(err.value)
    video = tmp_path / "v.mp4"
    write_video(video, face_frames(30), fps=FPS)
    assert predict_main([str(video), f"--ckpt_path={other}", f"--out={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hdf predict: error: checkpoint") and "other.ckpt" in err
    assert len(err.splitlines()) == 1


def test_checkpoint_without_inference_record_uses_the_run_config(
    tmp_path: Path, checkpoint: Path
) -> None:
    data = torch.load(checkpoint, weights_only=True)
    del data["hdf_inference"]
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(data, run / "checkpoints" / "old.ckpt")
    with pytest.raises(CheckpointError, match="does not record its network"):
        load_model(run / "checkpoints" / "old.ckpt")
    (run / "config.yaml").write_text(
        "model:\n  net:\n    class_path: hdf_lightning.models.HDFNet\n    init_args:\n"
        "      num_frames: 4\n      width_factor: 0.5\n      depth_factor: 0.3\n"
        "      head_dim: 32\n"
    )
    model = load_model(run / "checkpoints" / "old.ckpt")
    assert model.preprocessing.num_frames == 4 and model.preprocessing.normalize == "kinetics"
    reference = load_model(checkpoint)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.net(x)[0], reference.net(x)[0])


def test_console_script_exists() -> None:
    assert Path(HDF).is_file()


def test_network_weights_are_the_net_tensors_without_their_prefix() -> None:
    net = torch.ones(2)
    checkpoint = {"state_dict": {"net.head.proj.bias": net, "loss.temperature": torch.ones(())}}
    assert network_weights(checkpoint, Path("a.ckpt")) == {"head.proj.bias": net}
    with pytest.raises(CheckpointError, match=r"a\.ckpt holds no network weights"):
        network_weights({"state_dict": {"loss.temperature": net}}, Path("a.ckpt"))


# ------------------------------------------------------------------------------- options as YAML


def test_print_config_writes_a_yaml_that_config_runs(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "v.mp4"
    write_video(video, render_clip(1, num_frames=30, image_size=48, seed=2), fps=FPS)
    out = tmp_path / "out"
    flags = [f"--ckpt_path={checkpoint}", f"--out={out}", "--detector=none", "--window=20f"]
    with pytest.raises(SystemExit) as done:
        predict_main([str(video), *flags, "--timeline=false", "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    options = yaml.safe_load(printed)
    assert options["inputs"] == [str(video)] and options["window"] == "20f"
    assert options["margin"] == 0.15 and options["timeline"] is False  # defaults and flags
    config = tmp_path / "predict.yaml"
    config.write_text(printed)
    assert predict_main(["--config", str(config)]) == 0, capsys.readouterr().err
    header = read_jsonl(out / "v.windows.jsonl")[0]
    assert header["window"]["length_frames"] == 20 and not (out / "v.timeline.png").exists()


def test_config_also_takes_the_fit_config_of_an_old_checkpoint(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = torch.load(checkpoint, weights_only=True)
    del data["hdf_inference"]
    old = tmp_path / "old.ckpt"
    torch.save(data, old)
    fit = tmp_path / "fit.yaml"
    fit.write_text(
        "model:\n  net:\n    class_path: hdf_lightning.models.HDFNet\n    init_args:\n"
        "      num_frames: 4\n      width_factor: 0.5\n      depth_factor: 0.3\n"
        "      head_dim: 32\n"
    )
    video = tmp_path / "v.mp4"
    write_video(video, render_clip(1, num_frames=30, image_size=48, seed=2), fps=FPS)
    args = [str(video), f"--ckpt_path={old}", f"--out={tmp_path / 'out'}", "--detector=none"]
    # read as this command's options, the fit config's "model" key would be refused
    for spelling in (["--config", str(fit)], [f"--fit_config={fit}"]):
        assert predict_main([*args, "--window=20f", "--timeline=false", *spelling]) == 0
