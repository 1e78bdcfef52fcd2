"""Procedural, heterogeneous dynamic-facial-expression clips written in the real dataset layouts.

DFEW and FERV39k are licence-gated, so demos, tests and heterogeneity studies run on cartoon
faces rendered here (numpy + PIL only) and written exactly as the real datasets are laid out on
disk, so the real dataset code path reads them.

* **Faces.** Each subject has an identity (face aspect, skin/hair/eye colours, framing, head
  motion, a resting expression). A clip animates 9 action parameters (:data:`ACTION_NAMES`) from
  the subject's resting pose towards the class's apex pose (:data:`CLASS_ACTIONS`) along an
  onset-apex-offset envelope placed at a random time in the clip, with per-frame jitter, blinks
  and head motion.
* **Sources.** Each clip comes from one of ``num_sources`` capture styles (brightness, contrast,
  colour cast, blur, noise, JPEG quality, resolution, frame drops); with ``unseen_source`` an
  extra, distinct style appears in the test files only, and each family of ``held_out`` adds one
  test-only style that leaves the seen range in that family alone (:data:`HELD_OUT_FAMILIES`).
* **Determinism.** Every random draw comes from a numpy ``Generator`` seeded by
  ``(seed, tag, index)``, so the same :class:`SynthConfig` always writes byte-identical files,
  whatever the iteration order.

Layouts written (docs/method.md §7):

* :func:`generate_dfew`: ``Clip/clip_224x224/<5-digit id>/<5-digit frame>.jpg`` (optionally
  ``Clip/clip_224x224_16f``) and ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv``.
* :func:`generate_ferv39k`: ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<4-digit clip>/*.jpg`` and the
  header-less, space-separated ``4_setups/All_scenes/{train,test}_All.csv``.

Both also write ``synthetic_manifest.csv`` (one row per clip; ``label`` is the 0-based class
index in :data:`CLASS_NAMES` order) and ``README.txt``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hdf_lightning.data.classes import CLASS_NAMES

__all__ = [
    "ACTION_NAMES",
    "CLASS_ACTIONS",
    "CLASS_NAMES",
    "CLASS_PRIORS",
    "EXPRESSION_GAIN",
    "FACE_RADIUS",
    "FERV39K_CLASS_NAMES",
    "HELD_OUT_FAMILIES",
    "NUM_FOLDS",
    "ClipSpec",
    "Identity",
    "SourceStyle",
    "SynthConfig",
    "Timeline",
    "class_strip",
    "generate_dfew",
    "generate_ferv39k",
    "plan_clips",
    "render_clip",
    "source_styles",
    "subject_identity",
]

logger = logging.getLogger(__name__)

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

ACTION_NAMES: tuple[str, ...] = (
    "mouth_curve",  # + corners up, - corners down
    "mouth_open",  # jaw drop
    "mouth_width",  # + stretched, - pressed
    "mouth_round",  # narrow round opening
    "upper_lip",  # upper lip raise (asymmetric sneer)
    "brow_raise",  # + up, - down
    "brow_slant",  # + inner ends up, - inner ends down
    "eye_open",  # + wide, - narrowed
    "nose_wrinkle",  # wrinkles across the nose and deeper nasolabial folds
)

CLASS_ACTIONS: np.ndarray = np.array(
    [
        # curve  open  width round  lip  brow  slant  eye  wrinkle
        [1.00, 0.25, 0.30, 0.00, 0.00, 0.05, 0.00, -0.25, 0.00],  # happy
        [-0.90, 0.00, -0.10, 0.00, 0.00, 0.10, 0.90, -0.15, 0.00],  # sad
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # neutral
        [-0.25, 0.00, -0.35, 0.00, 0.00, -0.90, -0.90, -0.15, 0.15],  # angry
        [0.00, 0.85, -0.10, 1.00, 0.00, 1.00, 0.00, 0.60, 0.00],  # surprise
        [-0.45, 0.10, -0.05, 0.00, 1.00, -0.45, -0.30, -0.35, 1.00],  # disgust
        [-0.25, 0.40, 0.55, 0.00, 0.00, 0.70, 0.60, 0.50, 0.00],  # fear
    ],
    dtype=np.float64,
)
"""Apex displacement of the :data:`ACTION_NAMES` parameters per class, shape (7, 9)."""
CLASS_ACTIONS.setflags(write=False)

EXPRESSION_GAIN = 1.8
"""Scale of the :data:`CLASS_ACTIONS` apex displacements when rendering: expressions are drawn
80% beyond the unit poses so that they stay legible at the small frame sizes of CPU training
(48-px frames in the demo); at 1.3 the demo's training left chance level 1 to 5 epochs late,
depending on the seed."""

FACE_RADIUS = 0.48
"""Face half-height as a fraction of the frame size (the frame is a close face crop, as in DFEW's
``clip_224x224``: the chin and the brows fill it, the hair top and shoulders may be cut off)."""

_NUM_ACTIONS = len(ACTION_NAMES)
_FERV39K_SCENES: tuple[str, ...] = (
    "Action",
    "Daily",
    "Interview",
    "Talkshow",
    "Crime",
    "Speech",
    "News",
    "Variety",
    "Romance",
    "Horror",
    "War",
    "Family",
)
_UNSEEN_SCENE = "Surveillance"
_BASE_SIZE = 112.0  # image size at which blur radii are expressed

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


@dataclass(frozen=True)
class Identity:
    """A subject's appearance and habits.

    Colours are RGB in 0..255. ``offset`` (x, y) and ``motion`` are fractions of the image size,
    ``rotation`` is the head-roll amplitude in degrees, ``neutral`` the resting offsets of the
    :data:`ACTION_NAMES` parameters (e.g. a mouth that curves down at rest).
    """

    aspect: float = 0.78
    skin: tuple[int, int, int] = (226, 186, 152)
    hair: tuple[int, int, int] = (62, 44, 32)
    iris: tuple[int, int, int] = (70, 95, 60)
    clothing: tuple[int, int, int] = (60, 80, 140)
    hair_length: float = 0.3
    hairline: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    motion: float = 0.02
    rotation: float = 4.0
    neutral: tuple[float, ...] = (0.0,) * _NUM_ACTIONS

    def __post_init__(self) -> None:
        if len(self.neutral) != _NUM_ACTIONS:
            raise ValueError(
                f"neutral must have {_NUM_ACTIONS} values ({', '.join(ACTION_NAMES)}), "
                f"got {len(self.neutral)}"
            )


@dataclass(frozen=True)
class SourceStyle:
    """A capture style. The defaults are a clean source.

    ``brightness`` and ``cast`` are offsets in [0, 1] intensity units, ``contrast`` a gain about
    0.5, ``blur`` the Gaussian sigma in pixels at 112 px (scaled with the image size), ``noise`` the
    std of additive Gaussian noise, ``resolution`` the fraction of the image size the face is
    rendered at before upscaling, ``drop_rate`` the probability that a frame repeats the previous
    one, ``expression_span`` the (min, max) fraction of the clip the expression lasts.
    """

    name: str = "clean"
    brightness: float = 0.0
    contrast: float = 1.0
    cast: tuple[float, float, float] = (0.0, 0.0, 0.0)
    blur: float = 0.0
    noise: float = 0.0
    jpeg_quality: int = 95
    resolution: float = 1.0
    drop_rate: float = 0.0
    expression_span: tuple[float, float] = (0.55, 0.95)

    def jittered(self, rng: np.random.Generator) -> SourceStyle:
        """The same style with small per-clip variation (resolution and drop rate are kept)."""
        return replace(
            self,
            brightness=self.brightness + float(rng.normal(0.0, 0.02)),
            contrast=self.contrast * float(1.0 + rng.normal(0.0, 0.04)),
            cast=_triple(np.asarray(self.cast) + rng.normal(0.0, 0.01, 3)),
            blur=self.blur * float(rng.uniform(0.85, 1.15)),
            noise=self.noise * float(rng.uniform(0.8, 1.2)),
            jpeg_quality=int(np.clip(self.jpeg_quality + rng.integers(-3, 4), 5, 100)),
        )


@dataclass(frozen=True)
class Timeline:
    """Where the expression happens in a clip: frame indices ``onset <= apex <= offset``.

    The envelope is 0 before ``onset``, rises smoothly to 1, holds around ``apex``, falls back to 0
    at ``offset``; ``intensity`` scales the class's apex pose.
    """

    onset: int
    apex: int
    offset: int
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.onset <= self.apex <= self.offset:
            raise ValueError(
                "Timeline expects 0 <= onset <= apex <= offset, got "
                f"onset={self.onset}, apex={self.apex}, offset={self.offset}"
            )

    @classmethod
    def centred(cls, num_frames: int, intensity: float = 1.0) -> Timeline:
        """Onset at 20%, apex at 50%, offset at 80% of the clip."""
        last = max(num_frames - 1, 0)
        return cls(round(0.2 * last), round(0.5 * last), round(0.8 * last), intensity)

    @classmethod
    def sample(
        cls,
        num_frames: int,
        rng: np.random.Generator,
        span: tuple[float, float] = (0.55, 0.95),
    ) -> Timeline:
        """A random timeline covering ``span`` (min, max; default 55-95%) of the clip, intensity
        in [0.8, 1]."""
        last = max(num_frames - 1, 0)
        duration = round(float(rng.uniform(*span)) * last)
        onset = int(rng.integers(0, last - duration + 1))
        apex = onset + round(float(rng.uniform(0.35, 0.65)) * duration)
        intensity = float(rng.uniform(0.8, 1.0))
        return cls(onset, apex, onset + duration, intensity)

    def envelope(self, num_frames: int) -> np.ndarray:
        """Expression strength per frame, shape (T,), in [0, intensity]."""
        t = np.arange(num_frames, dtype=np.float64)
        rise_end = self.apex - 0.25 * (self.apex - self.onset)
        fall_start = self.apex + 0.25 * (self.offset - self.apex)
        env = np.zeros(num_frames)
        rising = (t > self.onset) & (t < rise_end)
        env[rising] = _smoothstep((t[rising] - self.onset) / (rise_end - self.onset))
        env[(t >= rise_end) & (t <= fall_start)] = 1.0
        falling = (t > fall_start) & (t < self.offset)
        env[falling] = _smoothstep((self.offset - t[falling]) / (self.offset - fall_start))
        return env * self.intensity


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render and file one clip.

    ``index`` is the clip's position (DFEW id = index + 1), ``label`` the 0-based class index,
    ``source`` the style index (``num_sources`` = the unseen source), ``fold`` the subject group
    1..5 (the DFEW fold whose test file holds the clip).
    """

    index: int
    label: int
    subject: int
    source: int
    fold: int
    num_frames: int
    timeline: Timeline
    style: SourceStyle
    render_seed: int
    seen_in_training: bool = True


# --------------------------------------------------------------------------------------------------
# Identities, sources and the clip plan
# --------------------------------------------------------------------------------------------------

_SKIN_TONES = np.array(
    [
        [243, 211, 184],
        [226, 186, 152],
        [205, 158, 120],
        [176, 125, 90],
        [132, 90, 62],
        [96, 64, 46],
    ],
    dtype=np.float64,
)


def subject_identity(seed: int, subject: int) -> Identity:
    """The deterministic identity of ``subject`` for a base ``seed``."""
    rng = _rng(seed, _TAG_SUBJECT, subject)
    tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.94, 1.06)
    hair = rng.uniform(15, 110) * np.array([1.0, 0.75, 0.55]) * rng.uniform(0.8, 1.2, 3)
    neutral = rng.normal(0.0, 0.08, _NUM_ACTIONS)
    neutral[[1, 3, 4, 8]] = np.abs(neutral[[1, 3, 4, 8]]) * 0.3  # openings stay small at rest
    return Identity(
        aspect=float(rng.uniform(0.68, 0.86)),
        skin=_rgb(tone),
        hair=_rgb(hair),
        iris=_rgb(rng.uniform(20, 120, 3)),
        clothing=_rgb(rng.uniform(30, 220, 3)),
        hair_length=float(rng.uniform(0.0, 1.0)),
        hairline=float(rng.normal(0.0, 0.04)),
        offset=(float(rng.normal(0.0, 0.025)), float(rng.normal(0.0, 0.025))),
        scale=float(rng.uniform(0.88, 1.08)),
        motion=float(rng.uniform(0.005, 0.035)),
        rotation=float(rng.uniform(1.0, 8.0)),
        neutral=tuple(float(v) for v in neutral),
    )


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.clip(np.round(values), 0, 255))
    return r, g, b


def _cast(hue: float, magnitude: float) -> tuple[float, float, float]:
    """An RGB offset of ``magnitude`` towards the hue angle ``hue`` (radians)."""
    r, g, b = (magnitude * math.cos(hue - k * 2.0 * math.pi / 3.0) for k in range(3))
    return r, g, b


def source_styles(config: SynthConfig) -> tuple[SourceStyle, ...]:
    """The ``num_sources`` seen styles, then the unseen one when ``config.unseen_source``, then one
    per family of ``config.held_out`` (in that order).

    Seen styles spread every factor over its range (one stratum per source, a random permutation per
    factor), so no two are alike. The unseen style lies outside the seen range on every factor; a
    held-out style is at the middle of the seen range except on its family's factors, which take
    the unseen style's values (timing: the expression lasts 25-40% of the clip instead of 55-95%).
    """
    n = config.num_sources
    rng = _rng(config.seed, _TAG_STYLES)

    def spread(low: float, high: float) -> np.ndarray:
        return low + (high - low) * (rng.permutation(n) + rng.uniform(0.2, 0.8, n)) / n

    hue0 = float(rng.uniform(0.0, 2.0 * math.pi))
    hues = hue0 + 2.0 * math.pi * rng.permutation(n) / n
    brightness, contrast = spread(-0.1, 0.1), spread(0.82, 1.18)
    cast_magnitude, blur, noise = spread(0.0, 0.06), spread(0.0, 0.7), spread(0.0, 0.025)
    quality_drop, resolution, drops = spread(0.0, 30.0), spread(0.7, 1.0), spread(0.0, 0.2)
    styles = [
        SourceStyle(
            name=f"source_{i}",
            brightness=float(brightness[i]),
            contrast=float(contrast[i]),
            cast=_cast(float(hues[i]), float(cast_magnitude[i])),
            blur=float(blur[i]),
            noise=float(noise[i]),
            jpeg_quality=max(5, round(config.jpeg_quality - float(quality_drop[i]))),
            resolution=float(resolution[i]),
            drop_rate=float(drops[i]),
        )
        for i in range(n)
    ]
    if config.unseen_source:
        styles.append(
            SourceStyle(
                name="unseen_source",
                brightness=0.17,
                contrast=0.62,
                cast=_cast(hue0 + math.pi / n, 0.13),
                blur=1.5,
                noise=0.045,
                jpeg_quality=max(5, config.jpeg_quality - 60),
                resolution=0.4,
                drop_rate=0.4,
            )
        )
    typical = SourceStyle(
        brightness=0.0,
        contrast=1.0,
        cast=_cast(hue0 + math.pi / n, 0.03),
        blur=0.35,
        noise=0.0125,
        jpeg_quality=max(5, config.jpeg_quality - 15),
        resolution=0.85,
        drop_rate=0.1,
    )
    family_changes: dict[str, dict[str, Any]] = {
        "colour": {"brightness": 0.17, "contrast": 0.62, "cast": _cast(hue0 + math.pi / n, 0.13)},
        "quality": {
            "blur": 1.5,
            "noise": 0.045,
            "jpeg_quality": max(5, config.jpeg_quality - 60),
        },
        "sampling": {"resolution": 0.4, "drop_rate": 0.4},
        "timing": {"expression_span": (0.25, 0.4)},
    }
    for family in config.held_out:
        styles.append(replace(typical, name=f"held_out_{family}", **family_changes[family]))
    return tuple(styles)


def _quota(priors: Sequence[float], total: int) -> np.ndarray:
    """Largest-remainder allocation of ``total`` items to the normalised ``priors``, shape (K,)."""
    p = np.asarray(priors, dtype=np.float64)
    exact = p / p.sum() * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def _shuffled_quota(priors: Sequence[float], total: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` category indices with exact quotas, in a random order, shape (total,)."""
    counts = _quota(priors, total)
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def plan_clips(config: SynthConfig) -> tuple[ClipSpec, ...]:
    """Every clip to generate, in id order: seen clips first, then the unseen source's clips,
    then those of each held-out style.

    Labels and sources follow exact quotas (class priors, equal sources) shuffled over the clips;
    subjects are dealt to the 5 folds round-robin after a random permutation; everything else about
    a clip comes from a Generator seeded by ``(seed, clip index)``.
    """
    seed = config.seed
    priors = CLASS_PRIORS[config.imbalance]
    folds = np.empty(config.num_subjects, dtype=np.int64)
    folds[_rng(seed, _TAG_FOLDS).permutation(config.num_subjects)] = (
        np.arange(config.num_subjects) % NUM_FOLDS + 1
    )
    styles = source_styles(config)

    num_seen = config.num_subjects * config.clips_per_subject
    labels = _shuffled_quota(priors, num_seen, _rng(seed, _TAG_LABELS))
    sources = _shuffled_quota([1.0] * config.num_sources, num_seen, _rng(seed, _TAG_SOURCES))
    subjects = np.repeat(np.arange(config.num_subjects), config.clips_per_subject)
    if config.unseen_source:
        extra = max(1, round(config.clips_per_subject / config.num_sources))
        num_unseen = config.num_subjects * extra
        labels = np.concatenate(
            [labels, _shuffled_quota(priors, num_unseen, _rng(seed, _TAG_UNSEEN))]
        )
        sources = np.concatenate([sources, np.full(num_unseen, config.num_sources)])
        subjects = np.concatenate([subjects, np.repeat(np.arange(config.num_subjects), extra)])
    first_held_out = config.num_sources + int(config.unseen_source)
    per_subject = config.held_out_clips_per_subject or max(
        1, round(config.clips_per_subject / config.num_sources)
    )
    for position, family in enumerate(config.held_out):
        count = config.num_subjects * per_subject
        tag = _TAG_HELD_OUT + list(HELD_OUT_FAMILIES).index(family)
        labels = np.concatenate([labels, _shuffled_quota(priors, count, _rng(seed, tag))])
        sources = np.concatenate([sources, np.full(count, first_held_out + position)])
        subjects = np.concatenate(
            [subjects, np.repeat(np.arange(config.num_subjects), per_subject)]
        )

    low, high = config.num_frames_range
    specs = []
    for index, (label, source, subject) in enumerate(zip(labels, sources, subjects, strict=True)):
        rng = _rng(seed, _TAG_CLIP, index)
        num_frames = int(rng.integers(low, high + 1))
        style = styles[source]
        specs.append(
            ClipSpec(
                index=index,
                label=int(label),
                subject=int(subject),
                source=int(source),
                fold=int(folds[subject]),
                num_frames=num_frames,
                timeline=Timeline.sample(num_frames, rng, style.expression_span),
                style=style.jittered(rng),
                render_seed=int(rng.integers(2**63)),
                seen_in_training=bool(source < config.num_sources),
            )
        )
    return tuple(specs)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

_CIRCLE = np.linspace(0.0, 2.0 * math.pi, 36, endpoint=False)
_CURVE_S = np.linspace(0.0, 1.0, 13)


def _ellipse(cu: float, cv: float, au: float, av: float) -> np.ndarray:
    """Polygon of an axis-aligned ellipse in face coordinates, shape (36, 2)."""
    return np.stack([cu + au * np.cos(_CIRCLE), cv + av * np.sin(_CIRCLE)], axis=1)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Quadratic Bezier through the end points whose midpoint is ``p1``, shape (13, 2)."""
    control = 2.0 * p1 - 0.5 * (p0 + p2)
    s = _CURVE_S[:, None]
    return (1 - s) ** 2 * p0 + 2 * (1 - s) * s * control + s**2 * p2


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return _rgb(np.asarray(colour, dtype=np.float64) * factor)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], w: float) -> tuple[int, int, int]:
    w = min(max(w, 0.0), 1.0)
    return _rgb((1.0 - w) * np.asarray(a, np.float64) + w * np.asarray(b, np.float64))


class _Painter:
    """Draws face-coordinate shapes (u right, v down, unit = face half-height) onto a canvas."""

    def __init__(
        self, image: Image.Image, centre: tuple[float, float], radius: float, angle: float
    ) -> None:
        self.draw = ImageDraw.Draw(image)
        self.cx, self.cy = centre
        self.radius = radius
        self.cos, self.sin = math.cos(angle), math.sin(angle)

    def _xy(self, points: np.ndarray) -> list[float]:
        u, v = points[:, 0] * self.radius, points[:, 1] * self.radius  # (N,), (N,)
        x = self.cx + u * self.cos - v * self.sin
        y = self.cy + u * self.sin + v * self.cos
        return np.stack([x, y], axis=1).ravel().tolist()

    def polygon(self, points: np.ndarray, fill: tuple[int, int, int]) -> None:
        self.draw.polygon(self._xy(points), fill=fill)

    def line(self, points: np.ndarray, fill: tuple[int, int, int], width: float) -> None:
        self.draw.line(
            self._xy(points), fill=fill, width=max(1, round(width * self.radius)), joint="curve"
        )


def _draw_face(painter: _Painter, identity: Identity, params: np.ndarray, blink: float) -> None:
    """Draw one face from the 9 :data:`ACTION_NAMES` values; ``blink`` scales eye opening."""
    curve, mouth_open, width, roundness, upper_lip, brow, slant, eye, wrinkle = params.tolist()
    mouth_open, roundness = max(mouth_open, 0.0), max(roundness, 0.0)
    upper_lip, wrinkle = max(upper_lip, 0.0), max(wrinkle, 0.0)
    skin, hair, a = identity.skin, identity.hair, identity.aspect
    dark = (25, 18, 16)

    # hair behind the head, shoulders, neck, ears, face
    length = identity.hair_length
    painter.polygon(_ellipse(0.0, -0.12 + 0.3 * length, a * 1.16, 1.0 + 0.3 * length), hair)
    shoulders = np.array(
        [[-0.42, 0.9], [0.42, 0.9], [1.45, 1.3], [2.0, 3.0], [-2.0, 3.0], [-1.45, 1.3]]
    )
    painter.polygon(shoulders, identity.clothing)
    painter.polygon(
        np.array([[-0.27, 0.4], [0.27, 0.4], [0.3, 1.1], [-0.3, 1.1]]), _shade(skin, 0.85)
    )
    for side in (-1.0, 1.0):
        painter.polygon(_ellipse(side * a, 0.02, 0.1, 0.17), _shade(skin, 0.93))
    painter.polygon(_ellipse(0.0, 0.0, a, 1.0), skin)

    # hair cap down to a hairline
    arc = np.linspace(math.pi + 0.25, 2.0 * math.pi - 0.25, 19)
    top = np.stack([a * np.cos(arc), np.sin(arc)], axis=1) * 1.02
    end_u, end_v = float(top[-1, 0]), float(top[-1, 1])
    hair_v = -0.68 + identity.hairline
    us = np.linspace(end_u, -end_u, 13)
    hairline = np.stack([us, hair_v + (end_v - hair_v) * np.abs(us / end_u) ** 3], axis=1)
    painter.polygon(np.concatenate([top, hairline]), hair)

    # eyes: white, iris, pupil (closed eyes are a line)
    half_height = 0.075 * min(max(1.0 + eye, 0.05), 2.0) * blink
    for side in (-1.0, 1.0):
        cu, cv = side * 0.34, -0.13
        if half_height < 0.018:
            painter.line(
                np.array([[cu - 0.15, cv], [cu, cv + 0.015], [cu + 0.15, cv]]), dark, 0.025
            )
            continue
        painter.polygon(_ellipse(cu, cv, 0.15, half_height), (238, 236, 232))
        iris = min(0.062, half_height)
        painter.polygon(_ellipse(cu, cv, 0.062, iris), identity.iris)
        painter.polygon(_ellipse(cu, cv, 0.028, min(0.028, half_height)), dark)
        lid = _ellipse(cu, cv, 0.15, half_height)[18:]  # upper half of the outline, (18, 2)
        painter.line(np.concatenate([lid, [[cu + 0.15, cv]]]), dark, 0.02)

    # eyebrows
    base = -0.40 - 0.11 * brow
    for side in (-1.0, 1.0):
        points = np.array(
            [
                [side * 0.12, base - 0.09 * slant],
                [side * 0.31, base - 0.035 - 0.02 * slant],
                [side * 0.50, base + 0.03 * slant + 0.02],
            ]
        )
        painter.line(points, _shade(hair, 0.8), 0.075)

    # nose, wrinkles, nasolabial folds
    painter.line(np.array([[0.0, -0.08], [0.03, 0.2]]), _shade(skin, 0.78), 0.025)
    for side in (-1.0, 1.0):
        painter.polygon(_ellipse(side * 0.06, 0.24, 0.035, 0.02), _shade(skin, 0.5))
    crease = _shade(skin, 0.55)
    if wrinkle > 0.02:
        colour = _mix(skin, crease, 0.9 * wrinkle)
        for v in (-0.07, -0.02, 0.03):
            painter.line(np.array([[-0.075, v], [0.0, v + 0.012], [0.075, v]]), colour, 0.02)
    fold = min(0.8 * wrinkle + 0.5 * max(curve, 0.0), 1.0)
    if fold > 0.02:
        for side in (-1.0, 1.0):
            pts = np.array([[side * 0.13, 0.19], [side * 0.24, 0.33], [side * 0.31, 0.5]])
            painter.line(pts, _mix(skin, crease, 0.8 * fold), 0.022)

    # mouth: lips, cavity, teeth
    lips = _rgb(np.asarray(skin, np.float64) * np.array([0.7, 0.35, 0.4]) + [40, 0, 0])
    half_width = 0.3 * (1.0 + 0.35 * width - 0.35 * roundness)
    centre = 0.52
    corner = centre - 0.18 * curve
    upper_mid = centre - 0.025 - 0.1 * upper_lip - 0.03 * mouth_open - 0.07 * roundness
    lower_mid = centre + 0.035 + 0.26 * mouth_open + 0.04 * roundness
    left, right = np.array([-half_width, corner]), np.array([half_width, corner])
    upper = _bezier(left, np.array([0.0, upper_mid]), right)
    upper[:, 1] -= 0.06 * upper_lip * np.exp(-(((_CURVE_S - 0.3) / 0.18) ** 2))  # sneer
    lower = _bezier(left, np.array([0.0, lower_mid]), right)
    painter.polygon(np.concatenate([upper, lower[::-1]]), lips)
    opening = (lower[:, 1] - upper[:, 1])[:, None]  # (13, 1), 0 at the corners
    if lower_mid - upper_mid > 0.085:
        # lips 0.03 thick where the mouth is open enough, thinning to the corners
        inner_upper = upper + [0.0, 1.0] * np.minimum(0.03, 0.35 * opening)
        inner_lower = lower - [0.0, 1.0] * np.minimum(0.035, 0.35 * opening)
        painter.polygon(np.concatenate([inner_upper, inner_lower[::-1]]), (70, 22, 28))
        teeth = [0.0, 1.0] * np.minimum(0.05, 0.4 * (inner_lower - inner_upper)[:, 1:])
        teeth = teeth * max(1.0 - roundness, 0.0)
        if teeth.max() > 0.005:
            painter.polygon(
                np.concatenate([inner_upper, (inner_upper + teeth)[::-1]]), (236, 232, 220)
            )


def _background(size: int, rng: np.random.Generator) -> Image.Image:
    """A muted vertical-gradient background, (size, size) RGB."""
    colour = rng.uniform(0.2, 0.85, 3)
    colour = colour.mean() + 0.5 * (colour - colour.mean())
    ramp = np.linspace(1.1, 0.8, size)[:, None, None]  # (H, 1, 1)
    image = np.clip(colour[None, None, :] * ramp * 255.0, 0, 255).astype(np.uint8)  # (H, 1, 3)
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(image, (size, size, 3))))


def render_clip(
    label: int,
    *,
    num_frames: int = 16,
    image_size: int = 112,
    identity: Identity | None = None,
    style: SourceStyle | None = None,
    timeline: Timeline | None = None,
    jitter: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Render one clip of class ``label`` (0-based, :data:`CLASS_NAMES` order).

    Args:
        label: class index in 0..6.
        num_frames: number of frames T.
        image_size: output frame size S.
        identity: the subject (default: :class:`Identity`'s defaults).
        style: the capture style (default: clean, no degradation).
        timeline: where the expression happens (default: :meth:`Timeline.centred`).
        jitter: per-frame parameter jitter, blinks and head motion; False renders a still pose.
        seed: seed of the clip's random draws (background, motion, jitter, blinks, noise, drops).
            The draws do not depend on ``label``: two clips with the same seed differ only by the
            expression.

    Returns:
        uint8 array of shape (T, S, S, 3).
    """
    if not 0 <= label < len(CLASS_NAMES):
        raise ValueError(f"label must be a class index in 0..{len(CLASS_NAMES) - 1}, got {label}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    identity = Identity() if identity is None else identity
    style = SourceStyle() if style is None else style
    timeline = Timeline.centred(num_frames) if timeline is None else timeline
    if timeline.onset >= num_frames:
        raise ValueError(
            f"timeline onset {timeline.onset} lies outside a clip of {num_frames} frames"
        )
    rng = np.random.default_rng(seed)

    # random draws, in a fixed order independent of the label
    render_size = max(8, round(image_size * style.resolution))
    canvas = _background(2 * render_size, rng)
    noise_params = rng.normal(0.0, 0.035, (num_frames, _NUM_ACTIONS))  # (T, 9)
    blink_starts = rng.random(num_frames) < 0.05  # (T,)
    periods = rng.uniform(12.0, 40.0, 4)
    phases = rng.uniform(0.0, 2.0 * math.pi, 4)
    framing = rng.normal(0.0, 0.02, 2)
    zoom = float(rng.uniform(0.93, 1.07))

    if jitter:
        t = np.arange(num_frames, dtype=np.float64)
        wave = np.sin(2.0 * math.pi * t[:, None] / periods + phases)  # (T, 4)
        dx = identity.offset[0] + framing[0] + identity.motion * wave[:, 0]
        dy = identity.offset[1] + framing[1] + 0.6 * identity.motion * wave[:, 1]
        roll = np.deg2rad(identity.rotation * wave[:, 2])
        scale = identity.scale * zoom * (1.0 + 0.02 * wave[:, 3])
    else:
        dx, dy = np.full(num_frames, identity.offset[0]), np.full(num_frames, identity.offset[1])
        roll, scale = np.zeros(num_frames), np.full(num_frames, identity.scale)

    envelope = timeline.envelope(num_frames)  # (T,)
    apex = EXPRESSION_GAIN * CLASS_ACTIONS[label]  # (9,)
    params = np.asarray(identity.neutral) + envelope[:, None] * apex  # (T, 9)
    blink = np.ones(num_frames)
    if jitter:
        params = params + noise_params
        for start in np.flatnonzero(blink_starts):
            pattern = np.array([0.35, 0.05, 0.5])[: num_frames - start]
            blink[start : start + len(pattern)] = np.minimum(
                blink[start : start + len(pattern)], pattern
            )

    size = 2 * render_size
    frames = []
    for i in range(num_frames):
        image = canvas.copy()
        centre = (size * (0.5 + dx[i]), size * (0.5 + dy[i]))
        painter = _Painter(image, centre, FACE_RADIUS * size * scale[i], float(roll[i]))
        _draw_face(painter, identity, params[i], float(blink[i]))
        image = image.reduce(2)  # anti-aliasing by 2x supersampling
        if render_size != image_size:
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        if style.blur > 0.0:
            image = image.filter(ImageFilter.GaussianBlur(style.blur * image_size / _BASE_SIZE))
        frames.append(np.asarray(image))
    return _apply_style(np.stack(frames), style, rng)


def _apply_style(frames: np.ndarray, style: SourceStyle, rng: np.random.Generator) -> np.ndarray:
    """Colour, noise and frame drops on uint8 frames (T, S, S, 3) -> uint8 (T, S, S, 3)."""
    clean = (
        style.brightness == 0.0
        and style.contrast == 1.0
        and not any(style.cast)
        and style.noise == 0.0
    )
    if not clean:
        x = frames.astype(np.float32) / 255.0
        offset = 0.5 + style.brightness + np.asarray(style.cast, dtype=np.float32)  # (3,)
        x = (x - 0.5) * style.contrast + offset
        if style.noise > 0.0:
            x += style.noise * rng.standard_normal(x.shape, dtype=np.float32)
        frames = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    if style.drop_rate > 0.0 and len(frames) > 1:
        dropped = rng.random(len(frames)) < style.drop_rate
        dropped[0] = False
        source = np.maximum.accumulate(np.where(dropped, 0, np.arange(len(frames))))
        frames = frames[source]
    return frames


def class_strip(config: SynthConfig = _DEFAULT_CONFIG, *, gap: int = 4) -> np.ndarray:
    """One apex frame per class, side by side, for the README and notebooks.

    Uses subject 0 of ``config.seed`` at full intensity, clean style, no jitter.

    Returns:
        uint8 array of shape (S, 7 * S + 6 * gap, 3) with S = ``config.image_size``.
    """
    identity = subject_identity(config.seed, 0)
    timeline = Timeline(0, 0, 0, 1.0)
    panels = [
        render_clip(
            label,
            num_frames=1,
            image_size=config.image_size,
            identity=identity,
            timeline=timeline,
            jitter=False,
            seed=config.seed,
        )[0]
        for label in range(len(CLASS_NAMES))
    ]
    size = config.image_size
    strip = np.full((size, len(panels) * (size + gap) - gap, 3), 255, dtype=np.uint8)
    for i, panel in enumerate(panels):
        strip[:, i * (size + gap) : i * (size + gap) + size] = panel
    return strip


# --------------------------------------------------------------------------------------------------
# Writing the dataset layouts
# --------------------------------------------------------------------------------------------------

_MANIFEST_FIELDS = (
    "video_name",
    "label",
    "class_name",
    "subject",
    "source",
    "fold",
    "num_frames",
    "intensity",
    "onset",
    "apex",
    "offset",
    "seen_in_training",
)


def _encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def _render_spec(spec: ClipSpec, config: SynthConfig) -> list[bytes]:
    """Render a planned clip and encode its frames; repeated frames share the same bytes."""
    frames = render_clip(
        spec.label,
        num_frames=spec.num_frames,
        image_size=config.image_size,
        identity=subject_identity(config.seed, spec.subject),
        style=spec.style,
        timeline=spec.timeline,
        seed=spec.render_seed,
    )
    encoded: list[bytes] = []
    for i, frame in enumerate(frames):
        if i > 0 and np.array_equal(frame, frames[i - 1]):
            encoded.append(encoded[-1])
        else:
            encoded.append(_encode_jpeg(frame, spec.style.jpeg_quality))
    return encoded


def _write_frames(folder: Path, frames: Sequence[bytes]) -> None:
    folder.mkdir(parents=True)
    for i, data in enumerate(frames, start=1):
        (folder / f"{i:05d}.jpg").write_bytes(data)


def _require_absent(*paths: Path) -> None:
    for path in paths:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(
                f"{path} already exists and is not empty; generate into an empty directory "
                "(the generator never overwrites or deletes files)"
            )


def _write_rows(path: Path, rows: Sequence[Sequence[object]], header: Sequence[str] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)


def _manifest_row(spec: ClipSpec, video_name: str, source_name: str) -> list[object]:
    return [
        video_name,
        spec.label,
        CLASS_NAMES[spec.label],
        spec.subject,
        source_name,
        spec.fold,
        spec.num_frames,
        f"{spec.timeline.intensity:.4f}",
        spec.timeline.onset,
        spec.timeline.apex,
        spec.timeline.offset,
        spec.seen_in_training,
    ]


def _readme(dataset: str, config: SynthConfig, summary: Mapping[str, Any]) -> str:
    return (
        f"Synthetic {dataset}-layout data generated by hdf_lightning.data.synthetic "
        f"(procedurally rendered cartoon faces, not real {dataset} data).\n\n"
        f"Regenerate byte-identical files with:\n"
        f"    from hdf_lightning.data.synthetic import SynthConfig, generate_{dataset.lower()}\n"
        f"    generate_{dataset.lower()}(root, {config!r})\n\n"
        f"clips: {summary['num_clips']}, frames: {summary['num_frames']}\n"
        f"class counts: {dict(summary['class_counts'])}\n"
        f"source counts: {dict(summary['source_counts'])}\n"
        "synthetic_manifest.csv lists per clip: label (0-based index in the order "
        f"{', '.join(CLASS_NAMES)}), subject, source, fold (subject group), num_frames, "
        "intensity, onset/apex/offset frame indices and whether the source is seen in training.\n"
    )


def _summary(
    dataset: str, root: Path, specs: Sequence[ClipSpec], names: Sequence[str], frames: int
) -> dict[str, Any]:
    classes = Counter(CLASS_NAMES[s.label] for s in specs)
    sources = Counter(names[s.source] for s in specs)
    return {
        "dataset": dataset,
        "root": str(root),
        "num_clips": len(specs),
        "num_frames": frames,
        "class_counts": {name: classes.get(name, 0) for name in CLASS_NAMES},
        "source_counts": {name: sources.get(name, 0) for name in names},
        "seen_clips": sum(s.seen_in_training for s in specs),
        "unseen_clips": sum(not s.seen_in_training for s in specs),
    }


def generate_dfew(root: str | Path, config: SynthConfig = _DEFAULT_CONFIG) -> dict[str, Any]:
    """Write the DFEW layout under ``root`` and return a summary.

    Writes ``Clip/clip_224x224/<00001>/<00001>.jpg ...`` (and ``Clip/clip_224x224_16f`` with
    ``config.write_16f``), ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv``
    (header ``video_name,label``, labels 1..7), ``synthetic_manifest.csv`` and ``README.txt``.
    Fold k's test file holds the clips of subject group k, its train file the seen-source clips of
    the other groups.

    Returns:
        ``dataset``, ``root``, ``num_clips``, ``num_frames``, ``class_counts`` and ``source_counts``
        (name -> clips), ``seen_clips``, ``unseen_clips``, ``fold_counts`` (fold -> {"train",
        "test"} clips) and ``paths`` (clips, clips_16f or None, splits, manifest, readme).

    Raises:
        FileExistsError: when one of the output folders or files exists and is not empty.
    """
    start = time.perf_counter()
    root = Path(root)
    clips_dir = root / "Clip" / "clip_224x224"
    clips_16f = root / "Clip" / "clip_224x224_16f" if config.write_16f else None
    split_dir = root / "EmoLabel_DataSplit"
    manifest, readme = root / "synthetic_manifest.csv", root / "README.txt"
    _require_absent(clips_dir, split_dir, manifest, readme, *([clips_16f] if clips_16f else []))

    specs = plan_clips(config)
    names = [style.name for style in source_styles(config)]
    total = 0
    for spec in specs:
        frames = _render_spec(spec, config)
        total += len(frames)
        _write_frames(clips_dir / f"{spec.index + 1:05d}", frames)
        if clips_16f is not None:
            picks = np.rint(np.linspace(0, len(frames) - 1, 16)).astype(np.int64)
            _write_frames(clips_16f / f"{spec.index + 1:05d}", [frames[i] for i in picks])

    def video_name(spec: ClipSpec) -> str:
        return str(spec.index + 1) if config.strip_leading_zeros else f"{spec.index + 1:05d}"

    fold_counts = {}
    for fold in range(1, NUM_FOLDS + 1):
        test = [s for s in specs if s.fold == fold]
        train = [s for s in specs if s.fold != fold and s.seen_in_training]
        for split, chosen in (("train", train), ("test", test)):
            rows = [[video_name(s), s.label + 1] for s in chosen]
            path = split_dir / f"{split}(single-labeled)" / f"set_{fold}.csv"
            _write_rows(path, rows, header=("video_name", "label"))
        fold_counts[fold] = {"train": len(train), "test": len(test)}

    rows = [_manifest_row(s, f"{s.index + 1:05d}", names[s.source]) for s in specs]
    _write_rows(manifest, rows, header=_MANIFEST_FIELDS)
    summary = _summary("DFEW", root, specs, names, total)
    summary["fold_counts"] = fold_counts
    summary["paths"] = {
        "clips": str(clips_dir),
        "clips_16f": None if clips_16f is None else str(clips_16f),
        "splits": str(split_dir),
        "manifest": str(manifest),
        "readme": str(readme),
    }
    readme.write_text(_readme("DFEW", config, summary))
    logger.info(
        "wrote %d synthetic DFEW clips (%d frames) to %s in %.1f s",
        len(specs),
        total,
        root,
        time.perf_counter() - start,
    )
    return summary


def generate_ferv39k(root: str | Path, config: SynthConfig = _DEFAULT_CONFIG) -> dict[str, Any]:
    """Write the FERV39k layout under ``root`` and return a summary.

    Frames go to ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>/00001.jpg ...`` (sources are scenes,
    emotions are :data:`FERV39K_CLASS_NAMES`, clips numbered ``0001`` per scene and emotion); the
    split files ``4_setups/All_scenes/{train,test}_All.csv`` have no header and one
    ``<Scene>/<Emotion>/<clip> <Emotion>`` line per clip. The test split is subject group 1 plus the
    unseen source, the train split the seen-source clips of the other groups. Clip lengths follow
    ``config.num_frames_range`` (the default range gives some clips shorter than 16 frames, as in
    FERV39k). ``config.write_16f`` and ``strip_leading_zeros`` do not apply. Also writes
    ``synthetic_manifest.csv`` and ``README.txt``.

    Returns:
        ``dataset``, ``root``, ``num_clips``, ``num_frames``, ``class_counts`` and ``source_counts``
        (name -> clips), ``seen_clips``, ``unseen_clips``, ``split_counts`` ({"train", "test"} ->
        clips), ``short_clips`` (clips under 16 frames) and ``paths`` (clips, splits, manifest,
        readme).

    Raises:
        FileExistsError: when one of the output folders or files exists and is not empty.
    """
    start = time.perf_counter()
    root = Path(root)
    clips_dir = root / "2_ClipsforFaceCrop"
    split_dir = root / "4_setups" / "All_scenes"
    manifest, readme = root / "synthetic_manifest.csv", root / "README.txt"
    _require_absent(clips_dir, split_dir, manifest, readme)

    specs = plan_clips(config)
    scenes = [
        _FERV39K_SCENES[i] if i < len(_FERV39K_SCENES) else f"Scene{i + 1:02d}"
        for i in range(config.num_sources)
    ]
    if config.unseen_source:
        scenes.append(_UNSEEN_SCENE)
    scenes += [f"HeldOut{family.capitalize()}" for family in config.held_out]
    numbering: Counter[tuple[int, int]] = Counter()
    splits: dict[str, list[str]] = {"train": [], "test": []}
    manifest_rows = []
    total = 0
    for spec in specs:
        emotion = FERV39K_CLASS_NAMES[spec.label]
        numbering[spec.source, spec.label] += 1
        name = f"{scenes[spec.source]}/{emotion}/{numbering[spec.source, spec.label]:04d}"
        frames = _render_spec(spec, config)
        total += len(frames)
        _write_frames(clips_dir / name, frames)
        manifest_rows.append(_manifest_row(spec, name, scenes[spec.source]))
        split = "test" if spec.fold == 1 or not spec.seen_in_training else "train"
        splits[split].append(f"{name} {emotion}\n")
    split_dir.mkdir(parents=True)
    for split, lines in splits.items():
        (split_dir / f"{split}_All.csv").write_text("".join(lines))
    _write_rows(manifest, manifest_rows, header=_MANIFEST_FIELDS)

    summary = _summary("FERV39k", root, specs, scenes, total)
    summary["split_counts"] = {split: len(rows) for split, rows in splits.items()}
    summary["short_clips"] = sum(s.num_frames < 16 for s in specs)
    summary["paths"] = {
        "clips": str(clips_dir),
        "splits": str(split_dir),
        "manifest": str(manifest),
        "readme": str(readme),
    }
    readme.write_text(_readme("FERV39k", config, summary))
    logger.info(
        "wrote %d synthetic FERV39k clips (%d frames) to %s in %.1f s",
        len(specs),
        total,
        root,
        time.perf_counter() - start,
    )
    return summary
