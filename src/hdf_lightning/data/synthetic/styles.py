"""Capture styles (sources): brightness, contrast, colour cast, blur, noise, JPEG quality,
resolution, frame drops and expression timing, spread over the seen range or held out of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hdf_lightning.data.synthetic.config import _TAG_STYLES, SynthConfig, _rng

__all__ = ["SourceStyle", "source_styles"]


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


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


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
    # the values beyond the seen range, per family; the unseen style takes every capture family's
    beyond: dict[str, dict[str, Any]] = {
        "colour": {"brightness": 0.17, "contrast": 0.62, "cast": _cast(hue0 + math.pi / n, 0.13)},
        "quality": {
            "blur": 1.5,
            "noise": 0.045,
            "jpeg_quality": max(5, config.jpeg_quality - 60),
        },
        "sampling": {"resolution": 0.4, "drop_rate": 0.4},
        "timing": {"expression_span": (0.25, 0.4)},
    }
    if config.unseen_source:
        capture = {**beyond["colour"], **beyond["quality"], **beyond["sampling"]}
        styles.append(SourceStyle(name="unseen_source", **capture))
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
    for family in config.held_out:
        styles.append(replace(typical, name=f"held_out_{family}", **beyond[family]))
    return tuple(styles)
