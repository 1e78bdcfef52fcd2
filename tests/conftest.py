"""Miniature DFEW / FERV39k / CSV trees with tiny JPEG frames and videos, built in tmp_path.

No test downloads weights or touches the user's torch.hub cache: the whole session runs with
``TORCH_HOME`` in a fresh folder and published weights pointed at a closed loopback port.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from hdf_lightning.models import MIRROR_ENV

FRAME_SIZE = 32
DFEW_NAMES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
FERV39K_NAMES = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")


def write_frames(folder: Path, num_frames: int, *, size: int = FRAME_SIZE, tint: int = 0) -> Path:
    """Write ``00001.jpg ...``; frame i is a flat grey of level ``8 * i`` (+ ``tint`` in red)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num_frames):
        pixel = np.array([(8 * i + tint) % 256, 8 * i % 256, 8 * i % 256], dtype=np.uint8)
        frame = np.broadcast_to(pixel, (size, size, 3)).copy()
        Image.fromarray(frame).save(folder / f"{i + 1:05d}.jpg", quality=95)
    return folder


def write_tiny_video(path: Path, num_frames: int, *, size: int = FRAME_SIZE) -> Path:
    """Write an MPEG-4 video of ``num_frames`` flat frames whose level grows with the index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(num_frames):
            frame = np.full((size, size, 3), 8 * i % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@dataclass
class DFEWTree:
    """A miniature DFEW: fold 1 only; ``train``/``test`` list the expected (padded id, label)."""

    root: Path
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    frames: dict[str, int]
    short_id: str

    def clip_dir(self, clip_id: str) -> Path:
        return self.root / "Clip" / "clip_224x224" / clip_id

    def split_file(self, split: str, fold: int = 1) -> Path:
        return self.root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"


def build_dfew(root: Path, *, train_per_class: int = 3, short_frames: int = 5) -> DFEWTree:
    """DFEW fold 1 with ``train_per_class`` train clips and 1 test clip per class.

    Odd ids are written without leading zeros in the split files (as DFEW does), even ids padded;
    clip 00002 has ``short_frames`` frames (fewer than a 16-frame clip), the others 6..20.
    """
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    frames: dict[str, int] = {}
    rows: dict[str, list[str]] = {"train": [], "test": []}
    clip = 0
    for split, per_class in (("train", train_per_class), ("test", 1)):
        for repeat in range(per_class):
            for label in range(7):
                clip += 1
                clip_id = f"{clip:05d}"
                n = short_frames if clip == 2 else 6 + (clip * 5 + repeat) % 15
                write_frames(root / "Clip" / "clip_224x224" / clip_id, n, tint=label * 30)
                frames[clip_id] = n
                splits[split].append((clip_id, label))
                written = str(clip) if clip % 2 else clip_id
                rows[split].append(f"{written},{label + 1}")
    for split, lines in rows.items():
        path = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / "set_1.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("video_name,label\n" + "\n".join(lines) + "\n")
    return DFEWTree(root, splits["train"], splits["test"], frames, "00002")


@dataclass
class FERV39kTree:
    """A miniature FERV39k; ``train``/``test`` list the expected (clip path, DFEW label)."""

    root: Path
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]

    def split_file(self, split: str) -> Path:
        return self.root / "4_setups" / "All_scenes" / f"{split}_All.csv"


def build_ferv39k(root: Path) -> FERV39kTree:
    """Two scenes; one train and one test clip per emotion, split files without a header."""
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for split, scene in (("train", "Action"), ("test", "Daily")):
        lines = []
        for label, name in enumerate(FERV39K_NAMES):
            clip_id = f"{scene}/{name}/{label + 10:04d}"
            write_frames(root / "2_ClipsforFaceCrop" / clip_id, 8 + label)
            splits[split].append((clip_id, label))
            lines.append(f"{clip_id} {name}")
        path = root / "4_setups" / "All_scenes" / f"{split}_All.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return FERV39kTree(root, splits["train"], splits["test"])


@pytest.fixture
def dfew_tree(tmp_path: Path) -> DFEWTree:
    """Miniature DFEW (21 train / 7 test clips, fold 1) under tmp_path/dfew."""
    return build_dfew(tmp_path / "dfew")


@pytest.fixture
def ferv39k_tree(tmp_path: Path) -> FERV39kTree:
    """Miniature FERV39k (7 train / 7 test clips) under tmp_path/ferv39k."""
    return build_ferv39k(tmp_path / "ferv39k")


@pytest.fixture
def frames_writer() -> Callable[..., Path]:
    """The JPEG frame-folder writer (``write_frames(folder, n, size=32, tint=0)``)."""
    return write_frames


@pytest.fixture
def video_writer() -> Callable[..., Path]:
    """The tiny video writer (``write_tiny_video(path, n, size=32)``)."""
    return write_tiny_video


@pytest.fixture(scope="session", autouse=True)
def offline_weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An empty torch.hub cache and an unreachable weights mirror for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        patch.setenv(MIRROR_ENV, _closed_port_url())
        yield


def _closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused, as without network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights"
