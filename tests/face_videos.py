"""Raw "recordings" for the face-crop tests: a synthetic face moving over a larger background,
encoded as H.264 in MP4 by PyAV (:func:`hdf_lightning.data.video.write_video`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hdf_lightning.data.synthetic import render_clip
from hdf_lightning.data.video import write_video

FPS = 25


def face_scene(
    num_frames: int,
    *,
    label: int = 0,
    seed: int = 0,
    face: int = 96,
    width: int = 320,
    height: int = 240,
    face_frames: int | None = None,
) -> np.ndarray:
    """``(T, height, width, 3)`` uint8: the rendered face of class ``label`` (``face`` px, a size
    OpenCV's Haar cascade finds) drifting right and bobbing over a horizontal grey ramp.

    Only the first ``face_frames`` frames (default: all) show the face; the rest is background.
    """
    faces = render_clip(label, num_frames=num_frames, image_size=face, seed=seed)
    ramp = np.linspace(60, 150, width, dtype=np.float32).astype(np.uint8)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    frames[:] = ramp[None, None, :, None]
    shown = num_frames if face_frames is None else face_frames
    span_x, span_y = width - face - 20, height - face - 20
    for i in range(shown):
        x = 10 + round(span_x * i / max(1, num_frames - 1))
        y = 10 + round(span_y * (0.5 + 0.4 * np.sin(i / 6)))
        frames[i, y : y + face, x : x + face] = faces[i]
    return frames


def write_face_video(path: Path, num_frames: int, **scene: int | None) -> Path:
    """Write :func:`face_scene` as an H.264 MP4 at 25 fps; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, face_scene(num_frames, **scene), fps=FPS)
    return path
