"""Pictures of a run: confusion matrix, per-class recall, 2-D embedding, learning curve.

Figures are built with the object-oriented matplotlib API on an Agg canvas: nothing goes
through ``pyplot``, so no global figure registry or backend state is touched and a figure is freed
as soon as it is no longer referenced. :func:`save_figure` writes a PNG; :func:`figure_to_array`
renders an RGB array for loggers that take images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from hdf_lightning.io import atomic_path

__all__ = [
    "confusion_matrix_figure",
    "embedding_figure",
    "figure_to_array",
    "learning_curve_figure",
    "normalize_confusion",
    "pca_2d",
    "per_class_recall_figure",
    "save_figure",
]

Normalize = Literal["true", "pred", "all"] | None

_FONT_SIZE = 10
_DPI = 120


def _new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure on its own Agg canvas (no pyplot) with one axes."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _check_names(count: int, class_names: Sequence[str], what: str) -> list[str]:
    names = [str(name) for name in class_names]
    if len(names) != count:
        raise ValueError(f"class_names must hold {count} names to match {what}, got {len(names)}")
    return names


def normalize_confusion(cm: Tensor, normalize: Normalize = "true") -> Tensor:
    """Normalise a confusion matrix of counts.

    Args:
        cm: ``(K, K)`` counts, rows = true class, columns = predicted class.
        normalize: ``"true"`` divides each row by its sum (each row of the result sums to 1: the
            diagonal holds the per-class recalls), ``"pred"`` each column by its sum, ``"all"`` by
            the total, ``None`` returns the counts as float.

    Returns:
        ``(K, K)`` float64 tensor. Rows (or columns) whose sum is zero stay all-zero (no NaN).
    """
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {tuple(cm.shape)}")
    counts = cm.detach().cpu().double()
    divisors: dict[str | None, Callable[[Tensor], Tensor]] = {
        "true": lambda m: m.sum(dim=1, keepdim=True),  # (K, 1)
        "pred": lambda m: m.sum(dim=0, keepdim=True),  # (1, K)
        "all": lambda m: m.sum().reshape(1, 1),  # (1, 1)
        None: lambda m: torch.ones(1, 1, dtype=m.dtype),
    }
    if normalize not in divisors:
        raise ValueError(
            f"normalize must be one of 'true', 'pred', 'all' or None, got {normalize!r}"
        )
    divisor = divisors[normalize](counts)
    return torch.where(divisor > 0, counts / divisor.clamp(min=1e-300), torch.zeros_like(counts))


def confusion_matrix_figure(
    cm: Tensor,
    class_names: Sequence[str],
    *,
    normalize: Normalize = "true",
    title: str | None = None,
) -> Figure:
    """Heat map of a confusion matrix.

    Args:
        cm: ``(K, K)`` counts, rows = true class, columns = predicted class.
        class_names: K class names (tick labels on both axes).
        normalize: see :func:`normalize_confusion`; the default shows each row as fractions of the
            true class, so the diagonal reads as the per-class recall.
        title: figure title (default "Confusion matrix" plus the normalisation).

    Returns:
        A matplotlib ``Figure`` with the cell values written in the cells and a colour bar.
    """
    matrix = normalize_confusion(cm, normalize).numpy()
    counts = cm.detach().cpu().long().numpy()
    size = matrix.shape[0]
    names = _check_names(size, class_names, f"a {size}x{size} matrix")
    side = max(4.5, 0.75 * size + 2.5)
    figure, axes = _new_figure(side + 1.0, side)
    vmax = 1.0 if normalize is not None else max(float(matrix.max()), 1.0)
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.ax.tick_params(labelsize=_FONT_SIZE - 1)
    ticks = np.arange(size)
    axes.set_xticks(ticks, labels=names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, labels=names)
    axes.tick_params(labelsize=_FONT_SIZE)
    axes.set_xlabel("Predicted class", fontsize=_FONT_SIZE + 1)
    axes.set_ylabel("True class", fontsize=_FONT_SIZE + 1)
    cell_font = max(6, _FONT_SIZE - max(0, size - 8) // 2)
    for row in range(size):
        for col in range(size):
            value = matrix[row, col]
            text = f"{value:.2f}" if normalize is not None else f"{counts[row, col]:d}"
            if normalize == "true":
                text = f"{value:.2f}\n({counts[row, col]:d})"
            colour = "white" if value > 0.55 * vmax else "black"
            axes.text(col, row, text, ha="center", va="center", color=colour, fontsize=cell_font)
    suffix = {"true": " (normalised over true class)", "pred": " (normalised over prediction)"}
    default = "Confusion matrix" + suffix.get(str(normalize), "")
    axes.set_title(title if title is not None else default, fontsize=_FONT_SIZE + 2)
    return figure


def per_class_recall_figure(
    recalls: Sequence[float] | Tensor,
    class_names: Sequence[str],
    *,
    title: str | None = None,
    uar: float | None = None,
) -> Figure:
    """Bar chart of per-class recalls with the UAR as a dashed line.

    Args:
        recalls: K recalls in [0, 1], in class order; NaN marks a class without evaluation
            samples, drawn as "absent" (no bar) and left out of the default UAR line.
        class_names: K class names.
        title: figure title (default "Per-class recall").
        uar: the value of the dashed line (pass the logged UAR); default the mean of the
            recalls of the present classes.

    Returns:
        A matplotlib ``Figure``; each bar carries its value in percent.
    """
    values = np.asarray(
        recalls.detach().cpu().double() if isinstance(recalls, Tensor) else recalls, dtype=float
    ).reshape(-1)
    names = _check_names(values.size, class_names, f"{values.size} recalls")
    if values.size == 0:
        raise ValueError("recalls must hold at least one value")
    present = ~np.isnan(values)
    if uar is None and not present.any():
        raise ValueError("recalls must hold at least one present (non-NaN) class")
    line = float(values[present].mean()) if uar is None else float(uar)
    figure, axes = _new_figure(max(5.0, 0.8 * values.size + 2.0), 4.0)
    positions = np.arange(values.size)
    bars = axes.bar(
        positions,
        np.where(present, values, 0.0),
        color="tab:blue",
        edgecolor="black",
        linewidth=0.5,
    )
    labels = [f"{100 * v:.1f}" if ok else "absent" for v, ok in zip(values, present, strict=True)]
    axes.bar_label(bars, labels=labels, fontsize=_FONT_SIZE - 1)
    axes.axhline(
        line, color="tab:red", linestyle="--", linewidth=1.5, label=f"UAR {100 * line:.1f}%"
    )
    axes.set_xticks(positions, labels=names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_ylim(0.0, 1.1)
    axes.set_ylabel("Recall", fontsize=_FONT_SIZE + 1)
    axes.tick_params(labelsize=_FONT_SIZE)
    axes.legend(loc="upper right", fontsize=_FONT_SIZE - 1)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.set_title(title if title is not None else "Per-class recall", fontsize=_FONT_SIZE + 2)
    return figure


def _series(name: str, values: Sequence[float] | None, count: int) -> np.ndarray:
    """``values`` as a float array of ``count`` entries (all NaN when None)."""
    if values is None:
        return np.full(count, np.nan)
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.size != count:
        raise ValueError(f"{name} must hold one value per epoch ({count}), got {array.size}")
    return array


def learning_curve_figure(
    epochs: Sequence[int],
    *,
    train_loss: Sequence[float] | None = None,
    val_loss: Sequence[float] | None = None,
    val_war: Sequence[float] | None = None,
    val_uar: Sequence[float] | None = None,
    best_epoch: int | None = None,
    title: str | None = None,
) -> Figure:
    """Loss, WAR and UAR per epoch, side by side.

    Args:
        epochs: E epoch numbers (the x axis), in increasing order.
        train_loss: E mean training losses; NaN (or None for all) where not measured.
        val_loss: E validation losses (cross-entropy), drawn on the loss panel.
        val_war: E validation WARs in [0, 1], drawn in percent.
        val_uar: E validation UARs in [0, 1], drawn in percent.
        best_epoch: the selected epoch, marked by a dotted vertical line on every panel.
        title: figure title (default "Learning curve").

    Returns:
        A matplotlib ``Figure`` with three axes (loss, WAR %, UAR %). Missing values (NaN)
        leave gaps; every measured epoch is drawn as a marker, so one epoch is visible too.
    """
    x = np.asarray(list(epochs), dtype=float).reshape(-1)
    if x.size == 0:
        raise ValueError("epochs must hold at least one epoch")
    count = x.size
    series = {
        name: _series(name, values, count)
        for name, values in (
            ("train_loss", train_loss),
            ("val_loss", val_loss),
            ("val_war", val_war),
            ("val_uar", val_uar),
        )
    }
    figure = Figure(figsize=(12.0, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, war_axes, uar_axes = figure.subplots(1, 3)
    panels: list[tuple[Axes, str, list[tuple[str, str, np.ndarray]]]] = [
        (
            loss_axes,
            "Loss",
            [
                ("train", "tab:blue", series["train_loss"]),
                ("val CE", "tab:orange", series["val_loss"]),
            ],
        ),
        (war_axes, "WAR (%)", [("val", "tab:orange", 100 * series["val_war"])]),
        (uar_axes, "UAR (%)", [("val", "tab:orange", 100 * series["val_uar"])]),
    ]
    for axes, label, lines in panels:
        for name, colour, values in lines:
            if not np.isnan(values).all():
                axes.plot(x, values, marker="o", markersize=3, color=colour, label=name)
        if best_epoch is not None:
            axes.axvline(best_epoch, color="tab:green", linestyle=":", linewidth=1.5, label="best")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("Epoch", fontsize=_FONT_SIZE + 1)
        axes.set_ylabel(label, fontsize=_FONT_SIZE + 1)
        axes.tick_params(labelsize=_FONT_SIZE - 1)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=_FONT_SIZE - 1)
    for axes in (war_axes, uar_axes):
        axes.set_ylim(0.0, 100.0)
    figure.suptitle(title if title is not None else "Learning curve", fontsize=_FONT_SIZE + 2)
    return figure


def pca_2d(features: Tensor) -> Tensor:
    """Project features on their first two principal components (exact SVD, deterministic signs).

    Args:
        features: ``(N, D)`` features, N >= 2.

    Returns:
        ``(N, 2)`` float64 coordinates (a zero second column when D == 1). The sign of each axis is
        fixed so that its largest-magnitude loading is positive.
    """
    data = features.detach().cpu().double()
    centred = data - data.mean(dim=0, keepdim=True)  # (N, D)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (min(N, D), D)
    axes = vh[:2]  # (≤2, D)
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))  # (≤2, 1)
    axes = axes * torch.where(signs == 0, 1.0, signs)
    coords = centred @ axes.T  # (N, ≤2)
    if coords.shape[1] < 2:
        coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 2 - coords.shape[1])], dim=1)
    return coords


_PROJECTIONS: dict[str, Callable[[Tensor], Tensor]] = {"pca": pca_2d}


def embedding_figure(
    features: Tensor,
    labels: Tensor,
    class_names: Sequence[str],
    *,
    method: Literal["pca"] = "pca",
    title: str | None = None,
) -> Figure:
    """Scatter plot of features projected to 2-D, coloured by class.

    Args:
        features: ``(N, D)`` features (e.g. the model's pooled feature), N >= 2.
        labels: ``(N,)`` class indices in [0, K), K = len(class_names).
        class_names: K class names (legend entries; classes absent from ``labels`` are left out).
        method: ``"pca"`` (:func:`pca_2d`).
        title: figure title (default names the method and N).

    Returns:
        A matplotlib ``Figure``.
    """
    if method not in _PROJECTIONS:
        raise ValueError(f"method must be one of {sorted(_PROJECTIONS)}, got {method!r}")
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"features must have shape (N, D) with N >= 2, got {tuple(features.shape)}"
        )
    label_array = labels.detach().cpu().long().reshape(-1).numpy()
    if label_array.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels must have shape (N,) = ({features.shape[0]},), got {tuple(labels.shape)}"
        )
    names = [str(name) for name in class_names]
    if label_array.min() < 0 or label_array.max() >= len(names):
        raise ValueError(
            f"labels must be class indices in [0, {len(names) - 1}] (one per class name), "
            f"found values in [{label_array.min()}, {label_array.max()}]"
        )
    coords = _PROJECTIONS[method](features).numpy()  # (N, 2)
    figure, axes = _new_figure(6.5, 5.0)
    colours = _class_colours(len(names))
    marker_size = float(np.clip(2000.0 / math.sqrt(label_array.size), 4.0, 40.0))
    for index, name in enumerate(names):
        mask = label_array == index
        if mask.any():
            axes.scatter(
                coords[mask, 0],
                coords[mask, 1],
                s=marker_size,
                color=colours[index],
                alpha=0.75,
                edgecolors="none",
                label=f"{name} ({int(mask.sum())})",
            )
    axes.legend(
        loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=_FONT_SIZE - 1, frameon=False
    )
    axis_names = ("PC 1", "PC 2")
    axes.set_xlabel(axis_names[0], fontsize=_FONT_SIZE + 1)
    axes.set_ylabel(axis_names[1], fontsize=_FONT_SIZE + 1)
    axes.tick_params(labelsize=_FONT_SIZE - 1)
    default = f"Feature embedding ({method.upper()}, N={label_array.size})"
    axes.set_title(title if title is not None else default, fontsize=_FONT_SIZE + 2)
    return figure


def _class_colours(count: int) -> list[tuple[float, float, float, float]]:
    """Distinct colours: tab10 up to 10 classes, tab20 up to 20, then an evenly sampled hsv map."""
    from matplotlib import colormaps

    name = "tab10" if count <= 10 else "tab20" if count <= 20 else "hsv"
    cmap = colormaps[name]
    if name == "hsv":
        return [cmap(i / count) for i in range(count)]
    return [cmap(i) for i in range(count)]


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a figure as PNG (dpi 120, tight bounding box), creating the parent folder.

    Args:
        fig: the figure.
        path: destination; must end in ``.png``.

    Returns:
        The path written.
    """
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(target)!r}")
    with atomic_path(target) as tmp:  # an interrupted run never leaves a truncated picture
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", facecolor="white")
    return target


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a figure to an RGB image.

    Returns:
        ``(H, W, 3)`` uint8 array, at the figure's own dpi.
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
