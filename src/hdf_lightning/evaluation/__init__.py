"""Evaluation: WAR/UAR metrics, pictures of an evaluation, computational cost."""

from hdf_lightning.evaluation.cost import CostReport, format_cost, format_cost_table, measure_cost
from hdf_lightning.evaluation.metrics import (
    EvaluationMetrics,
    confusion_matrix_from_predictions,
    make_metrics,
    uar_war_from_predictions,
)
from hdf_lightning.evaluation.plots import (
    confusion_matrix_figure,
    embedding_figure,
    figure_to_array,
    normalize_confusion,
    pca_2d,
    per_class_recall_figure,
    save_figure,
)

__all__ = [
    "CostReport",
    "EvaluationMetrics",
    "confusion_matrix_figure",
    "confusion_matrix_from_predictions",
    "embedding_figure",
    "figure_to_array",
    "format_cost",
    "format_cost_table",
    "make_metrics",
    "measure_cost",
    "normalize_confusion",
    "pca_2d",
    "per_class_recall_figure",
    "save_figure",
    "uar_war_from_predictions",
]
