"""Tests of hdf_lightning.evaluation.plots: normalised confusion matrix, figures, PNG output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from hdf_lightning.evaluation.plots import (
    confusion_matrix_figure,
    embedding_figure,
    figure_to_array,
    normalize_confusion,
    pca_2d,
    per_class_recall_figure,
    save_figure,
)

NAMES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]


def _counts(seed: int = 0, size: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    cm = torch.randint(0, 20, (size, size), generator=generator)
    cm.diagonal().add_(30)
    return cm


def _tick_texts(labels: list) -> list[str]:
    return [label.get_text() for label in labels]


def _assert_png(path: Path) -> tuple[int, int]:
    assert path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert 200 <= width <= 3000 and 200 <= height <= 3000
    return width, height


def test_normalize_true_rows_sum_to_one_and_zero_rows_stay_zero() -> None:
    cm = _counts()
    cm[5] = 0  # a class with no sample
    matrix = normalize_confusion(cm, "true")
    sums = matrix.sum(dim=1)
    assert torch.allclose(sums[[0, 1, 2, 3, 4, 6]], torch.ones(6, dtype=torch.float64))
    assert torch.equal(matrix[5], torch.zeros(7, dtype=torch.float64))
    assert not torch.isnan(matrix).any()
    assert matrix[0, 0] == pytest.approx(float(cm[0, 0] / cm[0].sum()))


def test_normalize_pred_all_and_none() -> None:
    cm = _counts(1, size=4)
    cm[:, 2] = 0
    pred = normalize_confusion(cm, "pred")
    assert torch.allclose(pred.sum(dim=0)[[0, 1, 3]], torch.ones(3, dtype=torch.float64))
    assert torch.equal(pred[:, 2], torch.zeros(4, dtype=torch.float64))
    assert float(normalize_confusion(cm, "all").sum()) == pytest.approx(1.0)
    assert torch.equal(normalize_confusion(cm, None), cm.double())
    assert torch.equal(normalize_confusion(torch.zeros(3, 3), "all"), torch.zeros(3, 3).double())


def test_normalize_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="square"):
        normalize_confusion(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="normalize must be"):
        normalize_confusion(torch.zeros(3, 3), "rows")  # type: ignore[arg-type]


def test_confusion_matrix_figure(tmp_path: Path) -> None:
    cm = _counts()
    figure = confusion_matrix_figure(cm, NAMES, title="Fold 1")
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert len(figure.axes) == 2  # heat map + colour bar
    assert _tick_texts(axes.get_xticklabels()) == NAMES
    assert _tick_texts(axes.get_yticklabels()) == NAMES
    assert all(label.get_rotation() == 45 for label in axes.get_xticklabels())
    assert axes.get_title() == "Fold 1"
    shown = np.asarray(axes.images[0].get_array())
    np.testing.assert_allclose(shown, normalize_confusion(cm).numpy())
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    assert len(axes.texts) == 49
    assert axes.texts[0].get_text() == f"{float(cm[0, 0] / cm[0].sum()):.2f}\n({int(cm[0, 0])})"
    _assert_png(save_figure(figure, tmp_path / "cm.png"))


def test_confusion_matrix_counts_and_name_mismatch() -> None:
    cm = _counts(2, size=3)
    figure = confusion_matrix_figure(cm, ["a", "b", "c"], normalize=None)
    assert figure.axes[0].texts[4].get_text() == str(int(cm[1, 1]))
    with pytest.raises(ValueError, match="3 names"):
        confusion_matrix_figure(cm, ["a", "b"])


def test_per_class_recall_figure(tmp_path: Path) -> None:
    recalls = [0.9, 0.5, 0.6, 0.7, 0.8, 0.1, 0.3]
    figure = per_class_recall_figure(recalls, NAMES, title="Recall")
    axes = figure.axes[0]
    assert _tick_texts(axes.get_xticklabels()) == NAMES
    heights = [patch.get_height() for patch in axes.patches]
    np.testing.assert_allclose(heights, recalls)
    dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    np.testing.assert_allclose(dashed[0].get_ydata(), np.mean(recalls))
    assert "90.0" in [text.get_text() for text in axes.texts]
    assert axes.get_title() == "Recall"
    _assert_png(save_figure(figure, tmp_path / "sub" / "recall.png"))


def test_per_class_recall_uar_override_and_tensor_input() -> None:
    figure = per_class_recall_figure(torch.tensor([1.0, 0.0, 0.5]), ["a", "b", "c"], uar=0.75)
    dashed = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed[0].get_ydata(), 0.75)
    with pytest.raises(ValueError, match="3 names"):
        per_class_recall_figure([0.1, 0.2, 0.3], ["a", "b"])


def test_pca_2d_matches_svd_and_orders_variance() -> None:
    generator = torch.Generator().manual_seed(0)
    # anisotropic cloud: variance 9 along a random direction, 1 along another, 0.01 elsewhere
    basis, _ = torch.linalg.qr(torch.randn(10, 10, generator=generator, dtype=torch.float64))
    scales = torch.tensor([3.0, 1.0] + [0.1] * 8, dtype=torch.float64)
    features = (torch.randn(200, 10, generator=generator, dtype=torch.float64) * scales) @ basis.T
    coords = pca_2d(features.float())
    assert coords.shape == (200, 2)
    variances = coords.var(dim=0)
    assert variances[0] > variances[1] > 0.5
    centred = features - features.mean(0)
    _, _, vh = np.linalg.svd(centred.numpy(), full_matrices=False)
    expected = centred.numpy() @ vh[:2].T
    np.testing.assert_allclose(np.abs(coords.numpy()), np.abs(expected), atol=1e-4)
    assert torch.equal(pca_2d(features.float()), coords)  # deterministic


def test_pca_2d_one_dimensional_features() -> None:
    coords = pca_2d(torch.tensor([[1.0], [2.0], [4.0]]))
    assert coords.shape == (3, 2)
    assert torch.equal(coords[:, 1], torch.zeros(3, dtype=torch.float64))


def test_embedding_figure(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    labels = torch.arange(60) % 6  # class 6 ("fear") absent
    features = torch.randn(60, 16, generator=generator)
    features[torch.arange(60), labels] += 5.0
    figure = embedding_figure(features, labels, NAMES)
    axes = figure.axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == [f"{name} (10)" for name in NAMES[:6]]
    coords = pca_2d(features).numpy()
    first = axes.collections[0].get_offsets()
    np.testing.assert_allclose(first, coords[labels.numpy() == 0], rtol=1e-6)
    assert "PCA" in axes.get_title()
    _assert_png(save_figure(figure, tmp_path / "embedding.png"))


def test_embedding_figure_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="method must be"):
        embedding_figure(torch.randn(4, 2), torch.zeros(4), ["a"], method="umap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(N,\) = \(4,\)"):
        embedding_figure(torch.randn(4, 2), torch.zeros(3), ["a"])
    with pytest.raises(ValueError, match=r"class indices in \[0, 1\]"):
        embedding_figure(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]), ["a", "b"])


def test_save_figure_requires_png(tmp_path: Path) -> None:
    figure = per_class_recall_figure([0.5, 0.5], ["a", "b"])
    with pytest.raises(ValueError, match=r"\.png"):
        save_figure(figure, tmp_path / "recall.pdf")
    assert not (tmp_path / "recall.pdf").exists()


def test_figures_do_not_touch_pyplot_and_render_to_array() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figure = confusion_matrix_figure(_counts(size=3), ["a", "b", "c"])
    assert plt.get_fignums() == before
    image = figure_to_array(figure)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.min() < 128 < image.max()  # not a blank canvas


def test_per_class_recall_draws_absent_classes_and_leaves_them_out_of_the_mean() -> None:
    recalls = [1.0, float("nan"), 0.0, float("nan"), 0.5, float("nan"), float("nan")]
    figure = per_class_recall_figure(recalls, NAMES)
    axes = figure.axes[0]
    labels = [text.get_text() for text in axes.texts]
    assert labels == ["100.0", "absent", "0.0", "absent", "50.0", "absent", "absent"]
    np.testing.assert_allclose([p.get_height() for p in axes.patches], [1, 0, 0, 0, 0.5, 0, 0])
    dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed[0].get_ydata(), 0.5)  # mean of the 3 present, not of 7
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["UAR 50.0%"]


def test_evaluation_figures_show_classes_without_samples_as_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callback's recall picture: absent classes, and the logged UAR on the line and title."""
    from types import SimpleNamespace

    import hdf_lightning.callbacks as callbacks
    from hdf_lightning.evaluation import EvaluationMetrics

    metrics = EvaluationMetrics(7, NAMES)
    # 3 classes present (happy, sad, neutral); sad is once predicted as angry
    metrics.update(torch.tensor([0, 0, 1, 3, 2, 2]), torch.tensor([0, 0, 1, 1, 2, 2]))
    values = metrics.compute()
    # the metric: recall happy 1, sad 0.5, neutral 1; angry (predicted, no sample) counts as 0
    assert float(values["uar"]) == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    module = SimpleNamespace(eval_results={"test": values}, class_names=NAMES)
    trainer = SimpleNamespace(
        is_global_zero=True,
        sanity_checking=False,
        logger=None,
        default_root_dir=str(tmp_path),
        current_epoch=0,
        global_step=0,
    )
    drawn: list[Figure] = []
    original = callbacks.plots.per_class_recall_figure

    def capture(*args: object, **kwargs: object) -> Figure:
        drawn.append(original(*args, **kwargs))  # type: ignore[arg-type]
        return drawn[-1]

    monkeypatch.setattr(callbacks.plots, "per_class_recall_figure", capture)
    callbacks.EvaluationFigures().on_test_end(trainer, module)  # type: ignore[arg-type]
    axes = drawn[0].axes[0]
    labels = [text.get_text() for text in axes.texts]
    assert labels == ["100.0", "50.0", "100.0", "absent", "absent", "absent", "absent"]
    dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed[0].get_ydata(), float(values["uar"]), rtol=1e-6)
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["UAR 62.5%"]
    assert axes.get_title() == "test per-class recall (UAR 0.625)"
    _assert_png(tmp_path / "figures" / "test_per_class_recall.png")
    _assert_png(tmp_path / "figures" / "test_confusion_matrix.png")
