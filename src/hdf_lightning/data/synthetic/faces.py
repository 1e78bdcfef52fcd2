"""Cartoon faces: a subject's identity, the 9 action parameters each class moves, and the
drawing of one face from them (numpy + PIL only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from hdf_lightning.data.synthetic.config import _TAG_SUBJECT, _rng

__all__ = [
    "ACTION_NAMES",
    "CLASS_ACTIONS",
    "EXPRESSION_GAIN",
    "FACE_RADIUS",
    "Identity",
    "subject_identity",
]


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


_CIRCLE = np.linspace(0.0, 2.0 * math.pi, 36, endpoint=False)
_CURVE_S = np.linspace(0.0, 1.0, 13)
_DARK = (25, 18, 16)


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
    _draw_head(painter, identity)
    _draw_eyes(painter, identity.iris, eye, blink)
    _draw_brows(painter, identity.hair, brow, slant)
    _draw_nose(painter, identity.skin, curve, wrinkle)
    _draw_mouth(painter, identity.skin, curve, mouth_open, width, roundness, upper_lip)


def _draw_head(painter: _Painter, identity: Identity) -> None:
    """Hair behind the head, shoulders, neck, ears, face, and the hair cap down to a hairline."""
    skin, hair, a = identity.skin, identity.hair, identity.aspect
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

    arc = np.linspace(math.pi + 0.25, 2.0 * math.pi - 0.25, 19)
    top = np.stack([a * np.cos(arc), np.sin(arc)], axis=1) * 1.02
    end_u, end_v = float(top[-1, 0]), float(top[-1, 1])
    hair_v = -0.68 + identity.hairline
    us = np.linspace(end_u, -end_u, 13)
    hairline = np.stack([us, hair_v + (end_v - hair_v) * np.abs(us / end_u) ** 3], axis=1)
    painter.polygon(np.concatenate([top, hairline]), hair)


def _draw_eyes(
    painter: _Painter, iris_colour: tuple[int, int, int], eye: float, blink: float
) -> None:
    """Eyes: white, iris, pupil (closed eyes are a line)."""
    half_height = 0.075 * min(max(1.0 + eye, 0.05), 2.0) * blink
    for side in (-1.0, 1.0):
        cu, cv = side * 0.34, -0.13
        if half_height < 0.018:
            painter.line(
                np.array([[cu - 0.15, cv], [cu, cv + 0.015], [cu + 0.15, cv]]), _DARK, 0.025
            )
            continue
        painter.polygon(_ellipse(cu, cv, 0.15, half_height), (238, 236, 232))
        iris = min(0.062, half_height)
        painter.polygon(_ellipse(cu, cv, 0.062, iris), iris_colour)
        painter.polygon(_ellipse(cu, cv, 0.028, min(0.028, half_height)), _DARK)
        lid = _ellipse(cu, cv, 0.15, half_height)[18:]  # upper half of the outline, (18, 2)
        painter.line(np.concatenate([lid, [[cu + 0.15, cv]]]), _DARK, 0.02)


def _draw_brows(painter: _Painter, hair: tuple[int, int, int], brow: float, slant: float) -> None:
    """Eyebrows, raised by ``brow`` and slanted by ``slant``."""
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


def _draw_nose(painter: _Painter, skin: tuple[int, int, int], curve: float, wrinkle: float) -> None:
    """Nose, wrinkles across it and the nasolabial folds."""
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


def _draw_mouth(
    painter: _Painter,
    skin: tuple[int, int, int],
    curve: float,
    mouth_open: float,
    width: float,
    roundness: float,
    upper_lip: float,
) -> None:
    """Mouth: lips, cavity, teeth."""
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
        teeth = np.array([0.0, 1.0]) * np.minimum(0.05, 0.4 * (inner_lower - inner_upper)[:, 1:])
        teeth = teeth * max(1.0 - roundness, 0.0)
        if teeth.max() > 0.005:
            painter.polygon(
                np.concatenate([inner_upper, (inner_upper + teeth)[::-1]]), (236, 232, 220)
            )
