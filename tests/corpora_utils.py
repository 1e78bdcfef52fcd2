"""Miniature MAFW, RAVDESS and CREMA-D trees in their published layouts.

File and folder names are the corpora's own; the clips are rendered by the synthetic generator
(:func:`~hdf_lightning.data.synthetic.render_clip`, the expression of the corpus class's DFEW
counterpart) and written as the corpora ship them: MAFW as frame folders, RAVDESS as MP4 files,
CREMA-D as FLV files (Sorenson H.263, the ``flv`` codec, in an FLV container).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

from hdf_lightning.data.classes import (
    CLASS_NAMES,
    CREMAD_CLASS_NAMES,
    MAFW_CLASS_NAMES,
    RAVDESS_CLASS_NAMES,
    TO_DFEW,
)
from hdf_lightning.data.synthetic import render_clip, subject_identity
from hdf_lightning.data.video import write_video

SIZE = 32
FRAMES = 6
MAFW_SPLIT_DIR = "Train & Test Set/single/no_caption"
CREMAD_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
# classes without a DFEW counterpart are drawn as their nearest DFEW expression
_NEAREST = {
    "calm": "neutral",
    "contempt": "disgust",
    "anxiety": "fear",
    "helplessness": "sad",
    "disappointment": "sad",
}


def render(corpus: str, name: str, subject: int, seed: int, frames: int = FRAMES) -> np.ndarray:
    """A clip of class ``name`` of ``corpus``: uint8 (T, SIZE, SIZE, 3)."""
    dfew = TO_DFEW[corpus][name] or _NEAREST[name]
    return render_clip(
        CLASS_NAMES.index(dfew),
        num_frames=frames,
        image_size=SIZE,
        identity=subject_identity(0, subject),
        seed=seed,
    )


def write_frame_folder(folder: Path, clip: np.ndarray, suffix: str = ".jpg") -> Path:
    """``00001.jpg ...`` (or ``1.png ...`` for ``suffix=".png"``, as MAFW's frames are named)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(clip, start=1):
        name = f"{t:05d}.jpg" if suffix == ".jpg" else f"{t}{suffix}"
        Image.fromarray(np.ascontiguousarray(frame)).save(folder / name)
    return folder


def write_flv(path: Path, clip: np.ndarray, fps: int = 30) -> Path:
    """An FLV file of Sorenson H.263 video, CREMA-D's VideoFlash format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="flv") as container:
        stream = container.add_stream("flv", rate=fps)
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@dataclass
class CorpusTree:
    """A miniature corpus: its root and every clip written (clip id -> class name, actor)."""

    root: Path
    clips: dict[str, tuple[str, int]] = field(default_factory=dict)

    def class_counts(self, names: Sequence[str], clips: Sequence[str]) -> list[int]:
        counts = [0] * len(names)
        for clip in clips:
            counts[names.index(self.clips[clip][0])] += 1
        return counts


# ------------------------------------------------------------------------------------ RAVDESS


def ravdess_name(
    emotion: int,
    actor: int,
    *,
    modality: int = 2,
    channel: int = 1,
    intensity: int = 1,
    statement: int = 1,
    repetition: int = 1,
) -> str:
    """``MM-VV-EE-II-SS-RR-AA``."""
    parts = (modality, channel, emotion, intensity, statement, repetition, actor)
    return "-".join(f"{p:02d}" for p in parts)


def ravdess_clips(actor: int) -> list[str]:
    """Per actor: the 8 speech emotions video-only (``02-``), two of them again as full
    audio-video (``01-``) and two at strong intensity, and the 6 song emotions."""
    names = [ravdess_name(e, actor) for e in range(1, 9)]
    names += [ravdess_name(e, actor, modality=1) for e in (3, 5)]
    names += [ravdess_name(e, actor, intensity=2, repetition=2) for e in (4, 6)]
    names += [ravdess_name(e, actor, channel=2) for e in range(1, 7)]
    return names


def build_ravdess(
    root: Path, actors: Sequence[int] = (1, 2, 3, 4), *, frames: bool = False
) -> CorpusTree:
    """``Actor_nn/`` folders of MP4 files (or, with ``frames``, frame folders of the same
    names), plus one audio-only ``03-`` WAV file per actor, as the audio archives hold."""
    tree = CorpusTree(root)
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        for i, name in enumerate(ravdess_clips(actor)):
            emotion = RAVDESS_CLASS_NAMES[int(name.split("-")[2]) - 1]
            clip = render("RAVDESS", emotion, actor, seed=actor * 100 + i)
            if frames:
                write_frame_folder(folder / name, clip)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                write_video(folder / f"{name}.mp4", clip)
            tree.clips[name] = (emotion, actor)
        if not frames:
            (folder / f"{ravdess_name(1, actor, modality=3)}.wav").write_bytes(b"RIFF")
    return tree


# ------------------------------------------------------------------------------------ CREMA-D


def build_cremad(
    root: Path, actors: Sequence[int] = (1001, 1002, 1003, 1004), *, frames: bool = False
) -> CorpusTree:
    """``VideoFlash/<actor>_<sentence>_<EMO>_<LEVEL>.flv``: per actor the six emotions of
    sentence DFA (level XX, as most CREMA-D clips) and two of IEO (levels HI and LO); with
    ``frames``, frame folders of the same names."""
    tree = CorpusTree(root)
    folder = root / "VideoFlash"
    for actor in actors:
        names = [f"{actor}_DFA_{emo}_XX" for emo in CREMAD_EMOTIONS]
        names += [f"{actor}_IEO_ANG_HI", f"{actor}_IEO_HAP_LO"]
        for i, name in enumerate(names):
            emotion = CREMAD_CLASS_NAMES[CREMAD_EMOTIONS.index(name.split("_")[2])]
            clip = render("CREMA-D", emotion, actor, seed=actor * 100 + i)
            if frames:
                write_frame_folder(folder / name, clip)
            else:
                write_flv(folder / f"{name}.flv", clip)
            tree.clips[name] = (emotion, actor)
    return tree


# ------------------------------------------------------------------------------------ MAFW


def build_mafw(root: Path, *, clips_per_class: int = 3, variant: str = "faces") -> CorpusTree:
    """``data/<variant>/<5-digit clip>/`` frame folders (``data/clips/<clip>.mp4`` for
    ``video``) and MAFW's split files ``Train & Test Set/single/no_caption/set_{1..5}/
    {train,test}.txt`` (``<clip>.mp4 <class name>``, sorted by class as MAFW's are).

    Clip i of a class is tested in fold ``(i + class) % 5 + 1``, so every fold trains on every
    class when ``clips_per_class >= 2``.
    """
    tree = CorpusTree(root)
    tests: dict[int, list[str]] = {k: [] for k in range(1, 6)}
    number = 0
    for label, name in enumerate(MAFW_CLASS_NAMES):
        for i in range(clips_per_class):
            number += 1
            clip_id = f"{number:05d}"
            clip = render("MAFW", name, subject=number, seed=number)
            if variant == "video":
                (root / "data" / "clips").mkdir(parents=True, exist_ok=True)
                write_video(root / "data" / "clips" / f"{clip_id}.mp4", clip)
            else:
                suffix = ".png" if variant == "frames" else ".jpg"
                write_frame_folder(root / "data" / variant / clip_id, clip, suffix)
            tree.clips[clip_id] = (name, 0)
            tests[(i + label) % 5 + 1].append(clip_id)
    for fold in range(1, 6):
        folder = root / MAFW_SPLIT_DIR / f"set_{fold}"
        folder.mkdir(parents=True)
        for split in ("train", "test"):
            chosen = [
                c for c in tree.clips if (c in tests[fold]) == (split == "test")
            ]  # file order: by class, as MAFW's
            lines = [f"{c}.mp4 {tree.clips[c][0]}" for c in chosen]
            (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return tree
