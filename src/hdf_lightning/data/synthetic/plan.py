"""The clip plan: every clip's label, subject, source, fold, length, timeline and style, drawn
from exact quotas and seeded streams before anything is rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hdf_lightning.data.synthetic.config import (
    _TAG_CLIP,
    _TAG_FOLDS,
    _TAG_HELD_OUT,
    _TAG_LABELS,
    _TAG_SOURCES,
    _TAG_UNSEEN,
    CLASS_PRIORS,
    HELD_OUT_FAMILIES,
    NUM_FOLDS,
    SynthConfig,
    _rng,
)
from hdf_lightning.data.synthetic.render import Timeline
from hdf_lightning.data.synthetic.styles import SourceStyle, source_styles

__all__ = ["ClipSpec", "plan_clips"]


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
