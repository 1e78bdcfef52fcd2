"""Fuzz: random damage to frames and videos of a generated dataset never passes silently.

Each seed damages random bytes (or truncates, or empties) random JPEG frames and video files of a
small generated ``path,label`` dataset, then loads every clip twice:

* strictly: a clip either loads as a uint8 ``(3, T, L, L)`` tensor, or raises a
  :class:`~hdf_lightning.data.errors.DatasetError` naming the clip's path and its split-file line;
  any other exception (a bare crash) fails the test;
* with ``skip_bad``: a DataLoader still yields full batches of valid clips with the right labels,
  and the dataset counts exactly the failed load attempts of the clips that failed strictly.

Damage inside a still-valid JPEG or video stream (pixels changed, no structural error) cannot be
detected without checksums (the formats have none), so such a clip is required only to load with
the right shape, type and label. Every load runs under a time limit (no hang).
"""

from __future__ import annotations

import random
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hdf_lightning.data.datasets import ClipDataset
from hdf_lightning.data.errors import DatasetError
from hdf_lightning.data.splits import read_csv_split
from hdf_lightning.data.synthetic import render_clip
from hdf_lightning.data.video import write_video

CLASSES = ["happy", "sad", "neutral"]
FRAMES = 8
SIZE = 32


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six clips: three JPEG frame folders and three mp4 videos, listed in ``train.csv``."""
    root = tmp_path_factory.mktemp("fuzz_pristine")
    rows = []
    for i in range(6):
        label = i % 3
        clip = render_clip(label, num_frames=FRAMES, image_size=SIZE, seed=i)  # (T, H, W, 3)
        if i % 2:
            path = root / "videos" / f"clip{i}.mp4"
            path.parent.mkdir(exist_ok=True)
            write_video(path, clip)
        else:
            path = root / "frames" / f"clip{i}"
            path.mkdir(parents=True)
            for t, frame in enumerate(clip):
                Image.fromarray(np.ascontiguousarray(frame)).save(path / f"{t + 1:05d}.jpg")
        rows.append(f"{path.relative_to(root)},{CLASSES[label]}")
    (root / "train.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def fail(signum: int, frame: object) -> None:
        raise TimeoutError(f"a load took more than {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def corrupt(file: Path, rng: random.Random) -> str:
    """Damage ``file`` in place in one of four ways; returns what was done."""
    data = bytearray(file.read_bytes())
    mode = rng.choice(["flip", "flip_header", "truncate", "empty"])
    if mode == "empty":
        file.write_bytes(b"")
    elif mode == "truncate":
        file.write_bytes(bytes(data[: rng.randrange(1, max(2, len(data) - 1))]))
    else:
        end = min(len(data), 64) if mode == "flip_header" else len(data)
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(end)] = rng.randrange(256)
        file.write_bytes(bytes(data))
    return f"{mode} {file.name}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_random_corruption_is_named_or_counted(pristine: Path, tmp_path: Path, seed: int) -> None:
    root = tmp_path / "data"
    shutil.copytree(pristine, root)
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".mp4"))
    damaged = [corrupt(f, rng) for f in rng.sample(files, rng.randint(1, 4))]

    records = read_csv_split(root / "train.csv", CLASSES)
    strict = ClipDataset(records, num_frames=FRAMES, load_size=SIZE)
    failed = []
    for i, record in enumerate(records):
        try:
            with time_limit(60):
                video = strict.load(i)
        except DatasetError as err:
            message = str(err)
            assert str(record.path) in message, (damaged, message)
            assert f"train.csv:{i + 2}" in message, (damaged, message)
            failed.append(i)
            continue
        assert video.shape == (3, FRAMES, SIZE, SIZE) and video.dtype == torch.uint8, damaged

    lenient = ClipDataset(records, num_frames=FRAMES, load_size=SIZE, skip_bad=True)
    if len(failed) == len(records):
        with pytest.raises(DatasetError, match="none of the 6 clips"):
            lenient[0]
        return
    with time_limit(120):
        batches = list(DataLoader(lenient, batch_size=3, num_workers=0))
    items = sum(len(b["label"]) for b in batches)
    assert items == len(records)
    for batch in batches:
        assert batch["video"].shape[1:] == (3, FRAMES, SIZE, SIZE)
        assert all(int(i) not in failed for i in batch["index"])  # a failed clip never served
        for index, label in zip(batch["index"], batch["label"], strict=True):
            assert int(label) == records[int(index)].label  # a replacement keeps its own label
    # every failed load attempt is counted, nothing else: item i tries clips i, i+1, ... (cyclic)
    # until one loads
    attempts = 0
    for i in range(len(records)):
        j = i
        while j % len(records) in failed:
            attempts += 1
            j += 1
    assert lenient.skipped == attempts, damaged
