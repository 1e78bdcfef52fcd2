"""Rendering clips: where the expression happens (:class:`Timeline`), a clip of one subject in
one capture style (:func:`render_clip`), and one apex frame per class (:func:`class_strip`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from hdf_lightning.data.classes import CLASS_NAMES
from hdf_lightning.data.synthetic.config import _DEFAULT_CONFIG, SynthConfig
from hdf_lightning.data.synthetic.faces import (
    _NUM_ACTIONS,
    CLASS_ACTIONS,
    EXPRESSION_GAIN,
    FACE_RADIUS,
    Identity,
    _draw_face,
    _Painter,
    subject_identity,
)
from hdf_lightning.data.synthetic.styles import SourceStyle

__all__ = ["Timeline", "class_strip", "render_clip"]


_BASE_SIZE = 112.0  # image size at which blur radii are expressed


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


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


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
        dx, dy, roll, scale = _head_motion(identity, num_frames, periods, phases, framing, zoom)
    else:
        dx, dy = np.full(num_frames, identity.offset[0]), np.full(num_frames, identity.offset[1])
        roll, scale = np.zeros(num_frames), np.full(num_frames, identity.scale)
    jitter_draws = (noise_params, blink_starts) if jitter else None
    params, blink = _expression(identity, label, timeline, num_frames, jitter_draws)

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


def _head_motion(
    identity: Identity,
    num_frames: int,
    periods: np.ndarray,
    phases: np.ndarray,
    framing: np.ndarray,
    zoom: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Head offset (dx, dy: fractions of the image), roll (radians) and scale per frame, each
    (T,): slow sinusoids (``periods``, ``phases``: (4,)) about the subject's framing."""
    t = np.arange(num_frames, dtype=np.float64)
    wave = np.sin(2.0 * math.pi * t[:, None] / periods + phases)  # (T, 4)
    dx = identity.offset[0] + framing[0] + identity.motion * wave[:, 0]
    dy = identity.offset[1] + framing[1] + 0.6 * identity.motion * wave[:, 1]
    roll = np.deg2rad(identity.rotation * wave[:, 2])
    scale = identity.scale * zoom * (1.0 + 0.02 * wave[:, 3])
    return dx, dy, roll, scale


def _expression(
    identity: Identity,
    label: int,
    timeline: Timeline,
    num_frames: int,
    jitter_draws: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The action parameters (T, 9), from the resting pose towards the class's apex along the
    timeline's envelope, and the eye opening (T,). ``jitter_draws`` (noise (T, 9), blink starts
    (T,) bool) adds per-frame jitter and blinks."""
    envelope = timeline.envelope(num_frames)  # (T,)
    apex = EXPRESSION_GAIN * CLASS_ACTIONS[label]  # (9,)
    params = np.asarray(identity.neutral) + envelope[:, None] * apex  # (T, 9)
    blink = np.ones(num_frames)
    if jitter_draws is not None:
        noise_params, blink_starts = jitter_draws
        params = params + noise_params
        for start in np.flatnonzero(blink_starts):
            pattern = np.array([0.35, 0.05, 0.5])[: num_frames - start]
            blink[start : start + len(pattern)] = np.minimum(
                blink[start : start + len(pattern)], pattern
            )
    return params, blink


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
