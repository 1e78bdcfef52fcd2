"""Split readers, bad-data errors and ClipDataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import DFEWTree, FERV39kTree, write_frames, write_tiny_video
from hdf_lightning.data import CLASS_NAMES
from hdf_lightning.data.clip_samplers import EpochSampler
from hdf_lightning.data.datasets import ClipDataset, ClipRecord, scan_index
from hdf_lightning.data.errors import (
    CorruptClipError,
    DatasetError,
    DatasetNotFoundError,
    EmptyClipError,
    MissingClipError,
    SplitFileError,
)
from hdf_lightning.data.splits import read_csv_split, read_dfew_split, read_ferv39k_split

# ------------------------------------------------------------------------------------ DFEW reader


def test_dfew_reader_gives_exactly_the_split(dfew_tree: DFEWTree) -> None:
    for split in ("train", "test"):
        records = read_dfew_split(dfew_tree.root, 1, split)
        assert [(r.clip_id, r.label) for r in records] == getattr(dfew_tree, split)
        assert all(r.kind == "frames" and r.path == dfew_tree.clip_dir(r.clip_id) for r in records)
    assert len(read_dfew_split(dfew_tree.root, 1, "train")) == 21


def test_dfew_ids_are_padded_and_labels_shifted(dfew_tree: DFEWTree) -> None:
    lines = dfew_tree.split_file("train").read_text().splitlines()
    assert lines[1] == "1,1"  # written without leading zeros, label 1 = happy
    first = read_dfew_split(dfew_tree.root, 1, "train")[0]
    assert (first.clip_id, first.label, CLASS_NAMES[first.label]) == ("00001", 0, "happy")
    assert first.source.endswith("set_1.csv:2")


def test_dfew_split_without_header_keeps_first_clip(dfew_tree: DFEWTree) -> None:
    path = dfew_tree.split_file("test")
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    records = read_dfew_split(dfew_tree.root, 1, "test")
    assert [(r.clip_id, r.label) for r in records] == dfew_tree.test


def test_dfew_video_variant(tmp_path: Path, dfew_tree: DFEWTree) -> None:
    write_tiny_video(dfew_tree.root / "Clip" / "original" / "00022.mp4", 6)
    write_tiny_video(dfew_tree.root / "Clip" / "original" / "23.avi", 6)
    path = dfew_tree.split_file("test")
    path.write_text("video_name,label\n22,1\n00023,7\n")
    records = read_dfew_split(dfew_tree.root, 1, "test", variant="video")
    assert [(r.clip_id, r.label, r.kind, r.path.name) for r in records] == [
        ("00022", 0, "video", "00022.mp4"),
        ("00023", 6, "video", "23.avi"),
    ]


@pytest.mark.parametrize(
    ("row", "error", "needles"),
    [
        ("5,8", SplitFileError, ["set_1.csv:23", "'8'", "1..7"]),
        ("5,0", SplitFileError, ["set_1.csv:23", "'0'"]),
        ("5,sad", SplitFileError, ["set_1.csv:23", "'sad'"]),
        ("5,1,extra", SplitFileError, ["set_1.csv:23", "2 columns"]),
        ("99999,3", MissingClipError, ["set_1.csv:23", "99999"]),
    ],
)
def test_dfew_bad_rows_name_file_and_line(
    dfew_tree: DFEWTree, row: str, error: type[DatasetError], needles: list[str]
) -> None:
    path = dfew_tree.split_file("train")
    path.write_text(path.read_text() + row + "\n")  # header + 21 rows: this is line 23
    with pytest.raises(error) as info:
        read_dfew_split(dfew_tree.root, 1, "train")
    for needle in needles:
        assert needle in str(info.value)
    collected: list[DatasetError] = []
    records = read_dfew_split(dfew_tree.root, 1, "train", errors=collected)
    assert len(records) == 21
    assert [type(e) for e in collected] == [error]


def test_dfew_missing_root_and_split_file(tmp_path: Path, dfew_tree: DFEWTree) -> None:
    with pytest.raises(DatasetNotFoundError, match="nowhere") as info:
        read_dfew_split(tmp_path / "nowhere", 1, "train")
    assert "EmoLabel_DataSplit" in str(info.value) and "dfew-dataset.github.io" in str(info.value)
    with pytest.raises(DatasetNotFoundError, match=r"set_2\.csv"):
        read_dfew_split(dfew_tree.root, 2, "train")
    with pytest.raises(ValueError, match="fold"):
        read_dfew_split(dfew_tree.root, 6, "train")


# --------------------------------------------------------------------------------- FERV39k reader


def test_ferv39k_reader_keeps_first_line_and_maps_names(ferv39k_tree: FERV39kTree) -> None:
    for split in ("train", "test"):
        records = read_ferv39k_split(ferv39k_tree.root, split)
        assert [(r.clip_id, r.label) for r in records] == getattr(ferv39k_tree, split)
    first_line = ferv39k_tree.split_file("train").read_text().splitlines()[0]
    assert first_line == "Action/Happy/0010 Happy"
    angry = read_ferv39k_split(ferv39k_tree.root, "train")[3]
    assert (angry.clip_id, CLASS_NAMES[angry.label]) == ("Action/Angry/0013", "angry")


@pytest.mark.parametrize(
    ("row", "error", "needles"),
    [
        ("Action/Happy/0010 Joyful", SplitFileError, ["train_All.csv:8", "'Joyful'"]),
        ("Action/Happy/0010", SplitFileError, ["train_All.csv:8", "2 space-separated"]),
        ("Action/Sad/9999 Sad", MissingClipError, ["train_All.csv:8", "Action/Sad/9999"]),
    ],
)
def test_ferv39k_bad_rows_name_file_and_line(
    ferv39k_tree: FERV39kTree, row: str, error: type[DatasetError], needles: list[str]
) -> None:
    path = ferv39k_tree.split_file("train")
    path.write_text(path.read_text() + row + "\n")
    with pytest.raises(error) as info:
        read_ferv39k_split(ferv39k_tree.root, "train")
    for needle in needles:
        assert needle in str(info.value)


def test_ferv39k_missing_root_names_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        read_ferv39k_split(tmp_path / "absent", "train")
    message = str(info.value)
    assert str(tmp_path / "absent") in message
    assert "4_setups/All_scenes" in message and "github.com/wangyanckxx/FERV39k" in message


# ------------------------------------------------------------------------------------- CSV reader


def test_csv_reader_names_indices_relative_absolute_frames_videos(tmp_path: Path) -> None:
    write_frames(tmp_path / "data" / "a", 4)
    write_frames(tmp_path / "elsewhere" / "b", 4)
    write_tiny_video(tmp_path / "data" / "c.mp4", 5)
    csv = tmp_path / "data" / "train.csv"
    csv.write_text(f"path,label\na,Cat\n{tmp_path / 'elsewhere' / 'b'},1\nc.mp4,dog\n")
    records = read_csv_split(csv, ["cat", "dog"])
    assert [(r.path, r.label, r.kind) for r in records] == [
        (tmp_path / "data" / "a", 0, "frames"),
        (tmp_path / "elsewhere" / "b", 1, "frames"),
        (tmp_path / "data" / "c.mp4", 1, "video"),
    ]


def test_csv_reader_first_row_without_header_is_a_clip(tmp_path: Path) -> None:
    write_frames(tmp_path / "a", 3)
    (tmp_path / "s.csv").write_text("a,0\n")
    assert [r.clip_id for r in read_csv_split(tmp_path / "s.csv", ["x", "y"])] == ["a"]


@pytest.mark.parametrize(
    ("row", "error", "needle"),
    [
        ("a,bird", SplitFileError, "'bird'"),
        ("a,2", SplitFileError, "'2'"),
        ("a", SplitFileError, "2 columns"),
        ("missing_folder,0", MissingClipError, "missing_folder"),
        ("notes.txt,0", MissingClipError, "notes.txt"),
    ],
)
def test_csv_reader_bad_rows(
    tmp_path: Path, row: str, error: type[DatasetError], needle: str
) -> None:
    write_frames(tmp_path / "a", 3)
    (tmp_path / "notes.txt").write_text("not a clip")
    (tmp_path / "s.csv").write_text(f"path,label\na,0\n{row}\n")
    with pytest.raises(error, match=r"s\.csv:3") as info:
        read_csv_split(tmp_path / "s.csv", ["cat", "dog"])
    assert needle in str(info.value)


# ------------------------------------------------------------------------------------ ClipDataset


def _dataset(records: list[ClipRecord], **overrides: object) -> ClipDataset:
    options: dict = {"num_frames": 4, "load_size": 16, "sampler": "segment", "seed": 3}
    options.update(overrides)
    return ClipDataset(records, **options)


def test_dataset_items_have_contract_shapes(dfew_tree: DFEWTree) -> None:
    records = read_dfew_split(dfew_tree.root, 1, "train")
    item = _dataset(records, num_frames=16)[1]  # clip 00002 has 5 frames < 16
    assert item["video"].shape == (3, 16, 16, 16) and item["video"].dtype == torch.uint8
    assert (item["label"], item["index"]) == (1, 1)
    # the short clip repeats frames, in order: the grey level never decreases
    levels = item["video"][1, :, 8, 8].tolist()
    assert levels == sorted(levels) and len(set(levels)) == 5


def test_dataset_views(dfew_tree: DFEWTree) -> None:
    records = read_dfew_split(dfew_tree.root, 1, "test")
    video = _dataset(records, views=3)[0]["video"]
    assert video.shape == (3, 3, 4, 16, 16)
    assert not torch.equal(video[0], video[2])  # different temporal positions
    with pytest.raises(ValueError, match="evaluation"):
        _dataset(records, views=2, train=True)


def test_video_records_load(tmp_path: Path) -> None:
    path = write_tiny_video(tmp_path / "v.mp4", 10)
    video = _dataset([ClipRecord(path, 0, "v", "video")])[0]["video"]
    assert video.shape == (3, 4, 16, 16) and video.dtype == torch.uint8


def test_training_sampling_depends_on_seed_epoch_index_only(tmp_path: Path) -> None:
    records = [
        ClipRecord(write_frames(tmp_path / f"c{i}", 60), i % 2, f"c{i}", "frames") for i in range(4)
    ]
    data = _dataset(records, train=True)
    assert torch.equal(data[(2, 5)]["video"], data[(2, 5)]["video"])
    assert not torch.equal(data[(2, 5)]["video"], data[(2, 6)]["video"])
    data.set_epoch(5)
    assert torch.equal(data[2]["video"], data[(2, 5)]["video"])

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochSampler(data, num_replicas=1, rank=0, seed=0)
        sampler.set_epoch(1)
        loader = DataLoader(data, batch_size=2, sampler=sampler, num_workers=workers)
        return [b["video"] for b in loader]

    for a, b in zip(batches(0), batches(2), strict=True):
        assert torch.equal(a, b)


def test_empty_folder_names_the_clip(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    record = ClipRecord(tmp_path / "empty", 0, "empty", "frames", "split.csv:4")
    with pytest.raises(EmptyClipError, match=r"clip empty .*split\.csv:4"):
        _dataset([record])[0]


def test_corrupt_jpeg_names_clip_and_file(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "c", 4)
    (folder / "00003.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(CorruptClipError, match=r"00003\.jpg") as info:
        _dataset([ClipRecord(folder, 0, "c7", "frames")])[0]
    assert "clip c7" in str(info.value)


def test_unreadable_video_names_the_video(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptClipError, match=r"broken\.mp4"):
        _dataset([ClipRecord(path, 0, "broken", "video")])[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_bad_replaces_and_counts_across_workers(tmp_path: Path, workers: int) -> None:
    good = [ClipRecord(write_frames(tmp_path / f"g{i}", 5), 1, f"g{i}", "frames") for i in range(3)]
    bad = write_frames(tmp_path / "bad", 5)
    (bad / "00001.jpg").write_bytes(b"garbage")
    records = [good[0], ClipRecord(bad, 0, "bad", "frames"), good[1], good[2]]
    data = _dataset(records, skip_bad=True)
    loader = DataLoader(data, batch_size=1, num_workers=workers)
    indices = [int(b["index"]) for b in loader]
    assert indices == [0, 2, 2, 3]  # the bad clip is replaced by the next good one
    assert data.skipped == 1
    with pytest.raises(CorruptClipError, match="clip bad"):
        _dataset(records)[1]


def test_scan_index_drops_missing_and_empty(tmp_path: Path) -> None:
    good = ClipRecord(write_frames(tmp_path / "g", 3), 0, "g", "frames")
    (tmp_path / "e").mkdir()
    records = [
        good,
        ClipRecord(tmp_path / "e", 1, "e", "frames"),
        ClipRecord(tmp_path / "gone", 1, "gone", "frames"),
    ]
    kept, index, bad = scan_index(records, skip_bad=True)
    counts = [n for n, _ in index]
    assert kept == [good] and counts == [3]
    assert [type(e) for e in bad] == [EmptyClipError, MissingClipError]
    with pytest.raises(EmptyClipError, match="clip e "):
        scan_index(records, skip_bad=False)


def test_frame_folders_are_listed_once(
    dfew_tree: DFEWTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hdf_lightning.data import datasets

    calls: list[Path] = []
    original = datasets.list_frames

    def counting(folder: Path) -> list[Path]:
        calls.append(Path(folder))
        return original(folder)

    monkeypatch.setattr(datasets, "list_frames", counting)
    records = read_dfew_split(dfew_tree.root, 1, "train")[:3]
    good, index, bad = scan_index(records, skip_bad=False)
    assert len(calls) == 3 and good == records and not bad
    dataset = _dataset(good, index=index)
    first = [dataset[i]["video"] for i in range(3)] + [dataset[(0, 1)]["video"]]
    assert len(calls) == 3  # items reuse the index
    listed = _dataset(good)  # no index given: listed once at construction
    assert len(calls) == 6
    assert all(torch.equal(listed[i]["video"], first[i]) for i in range(3))
    assert len(calls) == 6
    assert listed.frames_of(0) == index[0]


def test_device_decode_items_hold_jpeg_bytes(dfew_tree: DFEWTree) -> None:
    from hdf_lightning.data.datasets import collate_clips
    from hdf_lightning.data.transforms import decode_jpeg_clips

    records = read_dfew_split(dfew_tree.root, 1, "train")[:2]
    decoded = _dataset(records, train=True)
    raw = _dataset(records, train=True, decode_on="device")
    item = raw[0]
    assert "video" not in item and len(item["jpeg"]) == 4 and item["jpeg"][0].dtype == torch.uint8
    batch = collate_clips([raw[0], raw[1]])
    assert batch["label"].tolist() == [0, 1] and len(batch["jpeg"]) == 2
    video = decode_jpeg_clips(batch["jpeg"], 16, "cpu")
    assert video.shape == (2, 3, 4, 16, 16)
    reference = torch.stack([decoded[0]["video"], decoded[1]["video"]])
    assert (video.float() - reference.float()).abs().max() <= 3  # same frames, same decoder family
    with pytest.raises(ValueError, match="decode_on"):
        _dataset(records, decode_on="gpu")
