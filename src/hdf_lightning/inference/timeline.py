"""The timeline picture of a video: class probabilities over time as stacked areas.

Each window contributes its probabilities at its centre time; windows without a face leave a
grey band. Built with matplotlib's object-oriented API on an Agg canvas (no pyplot state), like
:mod:`hdf_lightning.evaluation.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hdf_lightning.io import atomic_path

__all__ = ["timeline_figure", "timeline_svg", "write_png"]


def _colours(count: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def timeline_figure(
    starts: Sequence[float],
    ends: Sequence[float],
    probs: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str,
    duration: float,
) -> Figure:
    """Stacked class probabilities over time.

    Args:
        starts: window start times in seconds, ``(W,)``.
        ends: window end times in seconds, ``(W,)``.
        probs: ``(W, K)`` probabilities; rows of windows without a face are NaN.
        class_names: ``K`` names.
        title: figure title (the video's name and its predicted class).
        duration: the video's length in seconds (x range).

    Returns:
        The figure (save it with :func:`write_png`).
    """
    face, times, filled, bounds = _layout(starts, ends, probs, len(class_names))
    figure = Figure(figsize=(9.0, 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.stackplot(
        times, filled.T, labels=list(class_names), colors=_colours(len(class_names)), alpha=0.9
    )
    for i in np.flatnonzero(~face):  # grey from half-way to the previous centre to the next
        axes.axvspan(bounds[i], bounds[i + 1], color="0.85", zorder=3, lw=0)
    if (~face).any():
        axes.axvspan(0, 0, color="0.85", label="no face")
    axes.set_xlim(0.0, max(duration, float(times[-1])))
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("time (s); each window drawn at its centre")
    axes.set_ylabel("probability")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return figure


def _layout(
    starts: Sequence[float], ends: Sequence[float], probs: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The geometry both pictures share.

    Returns:
        ``face`` ``(W,)`` bool; ``times`` ``(W + 2,)``: each window at its centre, the first and
        last held out to the video's ends; ``filled`` ``(W + 2, K)``: the probabilities at those
        times (0 without a face); ``bounds`` ``(W + 1,)``: the band of window i runs from
        ``bounds[i]`` to ``bounds[i + 1]`` (half-way to the neighbouring centres).
    """
    probs = np.asarray(probs, dtype=np.float64).reshape(len(starts), num_classes)
    face = np.asarray(~np.isnan(probs).any(axis=1))
    filled = np.where(face[:, None], probs, 0.0)
    times = np.concatenate([[starts[0]], (np.asarray(starts) + np.asarray(ends)) / 2, [ends[-1]]])
    filled = np.concatenate([filled[:1], filled, filled[-1:]])
    centres = times[1:-1]
    bounds = np.concatenate([[starts[0]], (centres[1:] + centres[:-1]) / 2, [ends[-1]]])
    return face, times, filled, bounds


def timeline_svg(
    starts: Sequence[float],
    ends: Sequence[float],
    probs: np.ndarray,
    class_names: Sequence[str],
    *,
    duration: float,
    width: int = 860,
    height: int = 240,
) -> str:
    """The timeline of :func:`timeline_figure` as an interactive SVG for a web page.

    The same stacked areas and grey no-face bands; every window also has an invisible band
    (``class="window"``, ``data-window=<index>``) whose tooltip (an SVG ``<title>``) gives its
    span and its probabilities, or "no face". No script: the browser shows the tooltips.

    Args:
        starts, ends, probs, class_names, duration: as :func:`timeline_figure`.
        width, height: the size of the plot area in pixels (the legend is added on the right).

    Returns:
        The ``<svg>`` element as text.
    """
    face, times, filled, bounds = _layout(starts, ends, probs, len(class_names))
    frame = _SvgFrame(width, height, max(duration, float(times[-1])) or 1.0)
    colours = _colours(len(class_names))
    entries = [*zip(class_names, colours, strict=True)]
    if (~face).any():
        entries.append(("no face", (0.85, 0.85, 0.85, 1.0)))
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
            f'width="{frame.left + width + frame.legend}" height="{frame.top + height + 40}" '
            f'font-family="sans-serif" font-size="11">',
            *_svg_areas(frame, times, filled, class_names, colours),
            *_svg_windows(frame, starts, ends, probs, face, bounds, class_names),
            *_svg_axes(frame),
            *_svg_legend(frame, entries),
            "</svg>",
        ]
    )


@dataclass(frozen=True)
class _SvgFrame:
    """The plot area of the SVG timeline: ``width`` x ``height`` pixels for ``span`` seconds,
    with margins on the left (axis labels), the top, and the legend on the right."""

    width: int
    height: int
    span: float
    left: int = 44
    top: int = 10
    legend: int = 150

    def x(self, t: float) -> float:
        return self.left + self.width * t / self.span

    def y(self, p: float) -> float:
        return self.top + self.height * (1.0 - p)


def _svg_areas(
    frame: _SvgFrame,
    times: np.ndarray,
    filled: np.ndarray,
    class_names: Sequence[str],
    colours: Sequence[Sequence[float]],
) -> list[str]:
    """One stacked-area polygon per class."""
    parts = []
    below = np.zeros(len(times))
    for k, name in enumerate(class_names):
        above = below + filled[:, k]
        points = [(frame.x(t), frame.y(p)) for t, p in zip(times, above, strict=True)]
        points += [(frame.x(t), frame.y(p)) for t, p in zip(times[::-1], below[::-1], strict=True)]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(
            f'<polygon class="area" data-class="{escape(name)}" points="{path}" '
            f'fill="{_hex(colours[k])}" fill-opacity="0.9"/>'
        )
        below = above
    return parts


def _svg_windows(
    frame: _SvgFrame,
    starts: Sequence[float],
    ends: Sequence[float],
    probs: np.ndarray,
    face: np.ndarray,
    bounds: np.ndarray,
    class_names: Sequence[str],
) -> list[str]:
    """A grey band per face-less window and an invisible band with a tooltip per window."""
    parts = []
    top, height = frame.top, frame.height
    for i in range(len(starts)):
        x0, x1 = frame.x(bounds[i]), frame.x(bounds[i + 1])
        if face[i]:
            ranked = sorted(zip(class_names, probs[i], strict=True), key=lambda c: -c[1])
            tip = ", ".join(f"{escape(n)} {p:.2f}" for n, p in ranked)
        else:
            tip = "no face"
            parts.append(
                f'<rect class="no-face" x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" '
                f'height="{height}" fill="#d9d9d9"/>'
            )
        parts.append(
            f'<rect class="window" data-window="{i}" data-face="{str(bool(face[i])).lower()}" '
            f'x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{height}" '
            f'fill="transparent"><title>window {i}, {starts[i]:.2f}-{ends[i]:.2f} s: {tip}'
            "</title></rect>"
        )
    return parts


def _svg_axes(frame: _SvgFrame) -> list[str]:
    """The probability and time labels and the axis title."""
    left, top, width, height = frame.left, frame.top, frame.width, frame.height
    parts = [
        f'<text x="{left - 6}" y="{frame.y(p) + 4:.1f}" text-anchor="end">{p:g}</text>'
        for p in (0.0, 0.5, 1.0)
    ]
    parts += [
        f'<text x="{frame.x(float(t)):.1f}" y="{top + height + 16}" text-anchor="middle">'
        f"{t:.1f}</text>"
        for t in np.linspace(0.0, frame.span, 6)
    ]
    parts.append(
        f'<text x="{left + width / 2:.1f}" y="{top + height + 34}" text-anchor="middle">'
        "time (s); hover a window for its probabilities</text>"
    )
    return parts


def _svg_legend(frame: _SvgFrame, entries: Sequence[tuple[str, Sequence[float]]]) -> list[str]:
    """A colour swatch and a name per class (and for "no face")."""
    right = frame.left + frame.width
    parts = []
    for k, (name, colour) in enumerate(entries):
        ly = frame.top + 14 * k
        parts.append(
            f'<rect x="{right + 12}" y="{ly}" width="10" height="10" '
            f'fill="{_hex(colour)}"/><text x="{right + 26}" y="{ly + 9}">'
            f"{escape(name)}</text>"
        )
    return parts


def _hex(colour: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in colour[:3])


def write_png(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG atomically (a temporary name in the same folder, then a rename)."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, facecolor="white")
    return path
