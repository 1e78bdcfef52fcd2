"""Tests for hdf_lightning.data.video (frame folders with PIL, video files with PyAV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, JpegImagePlugin

from hdf_lightning.data import video
from hdf_lightning.data.video import (
    decode_video,
    is_video,
    list_frames,
    load_frames,
    natural_sort_key,
    probe_video,
    video_num_frames,
    write_video,
)

# Distinct, codec-friendly colours (saturated primaries and greys survive yuv420p well).
COLOURS = np.array(
    [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [255, 0, 255],
        [128, 128, 128],
        [255, 255, 255],
    ],
    dtype=np.uint8,
)


def _solid(colour: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.broadcast_to(colour, (height, width, 3)).copy()


def _write_jpegs(folder: Path, n: int, height: int = 48, width: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(_solid(COLOURS[i % len(COLOURS)], height, width)).save(path, quality=95)
        paths.append(path)
    return paths


def _noisy_jpeg(path: Path, size: int = 96) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
    return path


# ---------------------------------------------------------------- frame folders


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["10.jpg", "2.jpg", "1.jpg"], ["1.jpg", "2.jpg", "10.jpg"]),
        (["img_10.png", "img_9.png", "img_100.png"], ["img_9.png", "img_10.png", "img_100.png"]),
        (["b2.jpg", "a10.jpg", "a9.jpg"], ["a9.jpg", "a10.jpg", "b2.jpg"]),
        (["01.jpg", "1.jpg", "002.jpg"], ["01.jpg", "1.jpg", "002.jpg"]),
    ],
)
def test_natural_sort_key_table(names: list[str], expected: list[str]) -> None:
    assert sorted(names, key=natural_sort_key) == expected


def test_list_frames_natural_order_and_filtering(tmp_path: Path) -> None:
    for name in ["10.jpg", "2.jpg", "1.JPG", "3.png", "4.jpeg", "notes.txt", "labels.csv"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "5.jpg").mkdir()  # a directory with an image suffix is not a frame
    assert [p.name for p in list_frames(tmp_path)] == [
        "1.JPG",
        "2.jpg",
        "3.png",
        "4.jpeg",
        "10.jpg",
    ]
    assert all(p.parent == tmp_path for p in list_frames(tmp_path))


def test_list_frames_missing_folder_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "clip_00042"
    with pytest.raises(FileNotFoundError, match="clip_00042"):
        list_frames(missing)


def test_list_frames_empty_folder_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "empty_clip"
    folder.mkdir()
    (folder / "readme.txt").write_text("no frames here")
    with pytest.raises(ValueError, match="empty_clip"):
        list_frames(folder)


# ---------------------------------------------------------------- load_frames


@pytest.mark.parametrize(("size", "shape"), [(32, (3, 5, 32, 32)), (None, (3, 5, 48, 64))])
def test_load_frames_shape_dtype_and_content(
    tmp_path: Path, size: int | None, shape: tuple[int, ...]
) -> None:
    paths = _write_jpegs(tmp_path, 5)
    clip = load_frames(paths, size=size)
    assert clip.shape == shape
    assert clip.dtype == torch.uint8
    assert clip.is_contiguous()
    centre = clip[:, :, shape[2] // 2, shape[3] // 2].T.int()  # (T, 3)
    expected = torch.from_numpy(COLOURS[:5]).int()
    assert (centre - expected).abs().max() <= 6


def test_load_frames_interleaved_view_holds_the_same_pixels(tmp_path: Path) -> None:
    paths = _write_jpegs(tmp_path, 3)
    order = [paths[2], paths[0], paths[2]]
    planar = load_frames(order, size=16)
    view = load_frames(order, size=16, planar=False)
    assert torch.equal(view, planar)
    assert not view.is_contiguous()
    # frame-major RGB-interleaved memory: (3, T, H, W) is a permuted (T, H, W, 3)
    assert view.permute(1, 2, 3, 0).is_contiguous()


def test_load_frames_keeps_the_requested_order(tmp_path: Path) -> None:
    paths = _write_jpegs(tmp_path, 4)
    clip = load_frames([paths[3], paths[0], paths[2]], size=8)
    centre = clip[:, :, 4, 4].T.int()
    expected = torch.from_numpy(COLOURS[[3, 0, 2]]).int()
    assert (centre - expected).abs().max() <= 6


def test_load_frames_native_size_resizes_mismatched_frames(tmp_path: Path) -> None:
    paths = _write_jpegs(tmp_path / "a", 1, 40, 60) + _write_jpegs(tmp_path / "b", 1, 20, 30)
    clip = load_frames(paths)
    assert clip.shape == (3, 2, 40, 60)


def test_grey_and_rgba_frames_become_rgb(tmp_path: Path) -> None:
    grey = tmp_path / "1.jpg"
    Image.fromarray(np.full((16, 16), 200, np.uint8), mode="L").save(grey, quality=95)
    rgba = tmp_path / "2.png"
    Image.fromarray(np.full((16, 16, 4), (10, 20, 30, 255), np.uint8), mode="RGBA").save(rgba)
    clip = load_frames([grey, rgba], size=8)
    assert clip.shape == (3, 2, 8, 8)
    assert (clip[:, 0].int() - 200).abs().max() <= 2
    assert clip[:, 1, 0, 0].tolist() == [10, 20, 30]


def test_repeated_paths_are_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_jpegs(tmp_path, 3)
    calls: list[Path] = []
    original = video._decode_image

    def counting(path: Path, draft: int | None, out: tuple[int, int] | None) -> np.ndarray:
        calls.append(path)
        return original(path, draft, out)

    monkeypatch.setattr(video, "_decode_image", counting)
    wanted = [paths[0], paths[0], paths[1], paths[2], paths[2], paths[2]]
    clip = load_frames(wanted, size=16)
    assert sorted(calls) == sorted(paths)
    assert clip.shape == (3, 6, 16, 16)
    reference = load_frames(paths, size=16)
    assert torch.equal(clip, reference[:, [0, 0, 1, 2, 2, 2]])


def test_jpeg_draft_is_requested_at_the_output_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _noisy_jpeg(tmp_path / "big.jpg", size=224)
    requested: list[tuple[str | None, tuple[int, int] | None]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):  # type: ignore[no-untyped-def]
        requested.append((mode, size))
        result = original(self, mode, size)
        assert self.size == (112, 112)  # decoded at half DCT scale
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    turbo = load_frames([path], size=112)
    assert requested == []  # libjpeg-turbo (simplejpeg) decoded it, at half DCT scale
    monkeypatch.setattr(video, "simplejpeg", None)  # the PIL fallback drafts the same way
    clip = load_frames([path], size=112)
    assert requested == [("RGB", (112, 112))]
    assert clip.shape == (3, 1, 112, 112)
    assert torch.equal(clip, turbo)


def test_truncated_jpeg_raises_value_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _noisy_jpeg(tmp_path / "00001.jpg")
    bad = _noisy_jpeg(tmp_path / "00002.jpg")
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    # Even when other code asked PIL to pad truncated files, the loader must notice.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ValueError, match=r"00002\.jpg"):
        load_frames([good, bad], size=32)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_not_an_image_raises_value_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jpg"
    path.write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match=r"garbage\.jpg"):
        load_frames([path])


def test_missing_frame_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"gone\.jpg"):
        load_frames([tmp_path / "gone.jpg"], size=8)


@pytest.mark.parametrize(("paths", "size"), [([], 8), (["x.jpg"], 0)])
def test_load_frames_argument_errors(paths: list[str], size: int) -> None:
    with pytest.raises(ValueError, match="expected"):
        load_frames(paths, size=size)


# ---------------------------------------------------------------- video files


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.mp4", True), ("B.AVI", True), ("c.mkv", True), ("d.jpg", False), ("mp4", False)],
)
def test_is_video_table(name: str, expected: bool) -> None:
    assert is_video(Path(name)) is expected


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_video_round_trip(tmp_path: Path, suffix: str) -> None:
    frames = np.stack([_solid(c, 32, 48) for c in COLOURS])  # (8, 32, 48, 3)
    path = tmp_path / f"clip{suffix}"
    write_video(path, frames, fps=10)
    assert video_num_frames(path) == len(COLOURS)

    indices = [5, 0, 2, 2, 7]
    clip = decode_video(path, indices)
    assert clip.shape == (3, 5, 32, 48)
    assert clip.dtype == torch.uint8
    centre = clip[:, :, 16, 24].T.int()
    assert (centre - torch.from_numpy(COLOURS[indices]).int()).abs().max() <= 20

    small = decode_video(path, [1, 3], size=16)
    assert small.shape == (3, 2, 16, 16)
    assert (small[:, :, 8, 8].T.int() - torch.from_numpy(COLOURS[[1, 3]]).int()).abs().max() <= 20

    everything = decode_video(path, None)
    assert everything.shape == (3, 8, 32, 48)
    assert torch.equal(everything[:, indices], clip)
    assert clip.is_contiguous()

    view = decode_video(path, indices, planar=False)
    assert torch.equal(view, clip) and view.permute(1, 2, 3, 0).is_contiguous()


def test_decode_video_converts_only_requested_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, np.stack([_solid(c, 16, 16) for c in COLOURS]))
    converted = 0
    original = video._frame_to_array

    def counting(frame: object, size: int | None) -> np.ndarray:
        nonlocal converted
        converted += 1
        return original(frame, size)  # type: ignore[arg-type]

    monkeypatch.setattr(video, "_frame_to_array", counting)
    clip = decode_video(path, [3, 1, 1])
    assert converted == 2
    assert clip.shape == (3, 3, 16, 16)


def test_decode_video_clamps_indices_past_the_last_frame(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    write_video(path, np.stack([_solid(c, 16, 16) for c in COLOURS[:3]]))
    clip = decode_video(path, [0, 3, 9])
    assert clip.shape == (3, 3, 16, 16)
    assert torch.equal(clip[:, 1], decode_video(path, [2])[:, 0])
    assert torch.equal(clip[:, 2], clip[:, 1])
    with pytest.raises(ValueError, match="non-negative"):
        decode_video(path, [-1])


def append_undecodable_packets(src: Path, dst: Path, extra: int) -> None:
    """Copy ``src`` (H.264 mp4) to ``dst`` with ``extra`` corrupt packets after the last frame:
    the container then holds more packets than decodable frames."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        last = None
        for packet in inp.demux(stream):
            if packet.size == 0:
                continue
            packet.stream = copy
            out.mux(packet)
            last = packet
        assert last is not None and last.pts is not None and last.dts is not None
        step = last.duration or 1
        for k in range(1, extra + 1):
            junk = av.Packet(bytes(64))
            junk.pts, junk.dts = last.pts + k * step, last.dts + k * step
            junk.duration, junk.time_base, junk.stream = step, last.time_base, copy
            out.mux(junk)


def test_video_with_more_packets_than_decodable_frames(tmp_path: Path) -> None:
    clean = tmp_path / "clean.mp4"
    write_video(clean, np.stack([_solid(COLOURS[i % 3], 16, 16) for i in range(6)]))
    path = tmp_path / "padded.mp4"
    append_undecodable_packets(clean, path, 3)
    length = probe_video(path)
    assert (length.declared, length.decoded, length.damaged) == (9, 6, True)
    assert video_num_frames(path) == 6  # the one frame count: what decodes
    frames = decode_video(path, None)
    assert frames.shape[1] == 6
    clip = decode_video(path, [0, 5, 6, 8])  # indices past the end take the last frame
    assert torch.equal(clip[:, 2], frames[:, 5]) and torch.equal(clip[:, 3], frames[:, 5])


def test_jpeg_frames_decode_as_pil_draft(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "f.jpg"
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(path, quality=90)
    with Image.open(path) as img:
        img.draft("RGB", (20, 20))
        draft = np.asarray(img.convert("RGB"))
    assert draft.shape == (24, 20, 3)
    out = load_frames([path], size=None)
    with Image.open(path) as img:
        assert torch.equal(
            out[:, 0], torch.from_numpy(np.asarray(img.convert("RGB"))).permute(2, 0, 1)
        )
    half = video._decode_image(path, 20, None)
    assert np.array_equal(half, draft)  # libjpeg-turbo's DCT scaling, as PIL's draft


def test_unreadable_video_raises_value_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"broken\.mp4.*Invalid data"):
        video_num_frames(path)
    with pytest.raises(ValueError, match=r"broken\.mp4"):
        decode_video(path, [0])


def test_missing_video_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.mp4"):
        video_num_frames(tmp_path / "nothing.mp4")


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((2, 15, 16, 3), np.uint8),  # odd height
        np.zeros((2, 16, 16, 3), np.float32),  # wrong dtype
        np.zeros((16, 16, 3), np.uint8),  # no time axis
        np.zeros((0, 16, 16, 3), np.uint8),  # empty
    ],
)
def test_write_video_rejects_bad_frames(tmp_path: Path, frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match="expected"):
        write_video(tmp_path / "x.mp4", frames)
