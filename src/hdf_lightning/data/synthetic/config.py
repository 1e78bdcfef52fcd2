"""What the synthetic generator writes: :class:`SynthConfig`, the class priors, the held-out
families, and the seeded random streams every draw comes from.

Every random draw comes from a numpy ``Generator`` seeded by ``(seed, tag, index)`` (the tags
below), so the same :class:`SynthConfig` always writes byte-identical files, whatever the
iteration order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hdf_lightning.data.classes import CLASS_NAMES

__all__ = [
    "CLASS_PRIORS",
    "FERV39K_CLASS_NAMES",
    "HELD_OUT_FAMILIES",
    "NUM_FOLDS",
    "SynthConfig",
]


FERV39K_CLASS_NAMES: tuple[str, ...] = (
    "Happy",
    "Sad",
    "Neutral",
    "Angry",
    "Surprise",
    "Disgust",
    "Fear",
)
"""FERV39k's emotion folder names, in :data:`CLASS_NAMES` order."""


NUM_FOLDS = 5
"""DFEW's 5-fold, subject-disjoint cross validation."""


CLASS_PRIORS: Mapping[str, tuple[float, ...]] = {
    "none": (1.0,) * len(CLASS_NAMES),
    "dfew": (0.26, 0.17, 0.26, 0.16, 0.10, 0.012, 0.03),
}
"""Unnormalised class priors per ``SynthConfig.imbalance`` mode, in :data:`CLASS_NAMES` order."""


# Tags that separate the random streams derived from one seed.
_TAG_SUBJECT = 1
_TAG_FOLDS = 2
_TAG_LABELS = 3
_TAG_SOURCES = 4
_TAG_CLIP = 5
_TAG_STYLES = 6
_TAG_UNSEEN = 7
_TAG_HELD_OUT = 8  # + the family's position in HELD_OUT_FAMILIES


HELD_OUT_FAMILIES: dict[str, str] = {
    "colour": "colour cast, brightness and contrast",
    "quality": "blur, sensor noise and JPEG quality",
    "sampling": "resolution and frame drops",
    "timing": "expression timing (a brief expression)",
}
"""The kinds of heterogeneity a held-out style can come from (``SynthConfig.held_out``), each
with what it changes. A held-out style sits in the middle of the seen range on every other factor
and outside it on its own family's factors only."""


def _rng(*key: int) -> np.random.Generator:
    """A numpy Generator seeded by a tuple of non-negative integers."""
    return np.random.default_rng(list(key))


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Args:
        num_subjects: identities; subjects are split over the 5 folds (subject-disjoint), >= 5.
        clips_per_subject: clips of seen sources per subject.
        image_size: written frame size in pixels (the DFEW folder is still named clip_224x224).
        num_frames_range: inclusive (min, max) number of frames per clip (DFEW: 11..847).
        num_sources: seen capture styles (brightness, contrast, colour cast, blur, noise, JPEG
            quality, resolution, frame drops), distinct from each other.
        unseen_source: add one extra, distinct style whose clips appear only in test files
            (``max(1, round(clips_per_subject / num_sources))`` extra clips per subject).
        held_out: families of :data:`HELD_OUT_FAMILIES`, each adding one style named
            ``held_out_<family>`` whose clips appear only in test files.
        held_out_clips_per_subject: clips per subject of each ``held_out`` style (default: as
            many as the unseen source has).
        imbalance: class prior, ``"none"`` (uniform) or ``"dfew"`` (DFEW's, disgust ~1.2%).
        write_16f: also write ``Clip/clip_224x224_16f`` with exactly 16 frames per clip (DFEW only).
        strip_leading_zeros: write DFEW ids without leading zeros in the split CSVs, as DFEW does.
        jpeg_quality: the best JPEG quality; each source degrades from it.
        seed: base seed (>= 0); the same config always writes byte-identical files.
    """

    num_subjects: int = 40
    clips_per_subject: int = 10
    image_size: int = 112
    num_frames_range: tuple[int, int] = (12, 40)
    num_sources: int = 4
    unseen_source: bool = False
    held_out: tuple[str, ...] = ()
    held_out_clips_per_subject: int | None = None
    imbalance: Literal["none", "dfew"] = "none"
    write_16f: bool = False
    strip_leading_zeros: bool = True
    jpeg_quality: int = 90
    seed: int = 0

    def __post_init__(self) -> None:
        frames = tuple(int(n) for n in self.num_frames_range)
        object.__setattr__(self, "num_frames_range", frames)
        held_out = tuple(self.held_out)
        object.__setattr__(self, "held_out", held_out)
        unknown = [family for family in held_out if family not in HELD_OUT_FAMILIES]
        if unknown or len(set(held_out)) != len(held_out):
            raise ValueError(
                f"held_out must name distinct families of {list(HELD_OUT_FAMILIES)}, "
                f"got {list(held_out)}"
            )
        if self.held_out_clips_per_subject is not None and self.held_out_clips_per_subject < 1:
            raise ValueError(
                f"held_out_clips_per_subject must be >= 1, got {self.held_out_clips_per_subject}"
            )
        if self.num_subjects < NUM_FOLDS:
            raise ValueError(
                f"num_subjects must be >= {NUM_FOLDS} (one subject group per fold), "
                f"got {self.num_subjects}"
            )
        if self.clips_per_subject < 1:
            raise ValueError(f"clips_per_subject must be >= 1, got {self.clips_per_subject}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {self.image_size}")
        if len(frames) != 2 or not 1 <= frames[0] <= frames[1]:
            raise ValueError(
                f"num_frames_range must be (min, max) with 1 <= min <= max, got {frames}"
            )
        if self.num_sources < 1:
            raise ValueError(f"num_sources must be >= 1, got {self.num_sources}")
        if self.imbalance not in CLASS_PRIORS:
            raise ValueError(
                f"imbalance must be one of {sorted(CLASS_PRIORS)}, got {self.imbalance!r}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


_DEFAULT_CONFIG = SynthConfig()
