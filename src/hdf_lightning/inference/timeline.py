"""The timeline picture of a video: class probabilities over time as stacked areas.

Each window contributes its probabilities at its centre time; windows without a face leave a
grey band. Built with matplotlib's object-oriented API on an Agg canvas (no pyplot state), like
:mod:`hdf_lightning.evaluation.plots`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["timeline_figure", "write_png"]


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
    probs = np.asarray(probs, dtype=np.float64).reshape(len(starts), len(class_names))
    face = np.asarray(~np.isnan(probs).any(axis=1))  # (W,)
    filled = np.where(face[:, None], probs, 0.0)  # (W, K)
    # each window at its centre; the first and last are held out to the video's ends
    times = np.concatenate([[starts[0]], (np.asarray(starts) + np.asarray(ends)) / 2, [ends[-1]]])
    filled = np.concatenate([filled[:1], filled, filled[-1:]])  # (W + 2, K)
    figure = Figure(figsize=(9.0, 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.stackplot(
        times, filled.T, labels=list(class_names), colors=_colours(len(class_names)), alpha=0.9
    )
    centres = times[1:-1]
    bounds = np.concatenate([[starts[0]], (centres[1:] + centres[:-1]) / 2, [ends[-1]]])
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


def write_png(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG atomically (a temporary name in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, format="png", dpi=110, facecolor="white")
    os.replace(temporary, path)
    return path
