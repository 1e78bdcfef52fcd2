"""Tests of hdf_lightning.evaluation.metrics: WAR/UAR, per-class recall, DDP synchronisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hdf_lightning.evaluation.metrics import (
    EvaluationMetrics,
    confusion_matrix_from_predictions,
    make_metrics,
    uar_war_from_predictions,
)

NAMES = ["happy", "sad", "neutral"]


def test_uar_war_hand_computed() -> None:
    # class 0: 3 of 4 right, class 1: 1 of 2 right, class 2: 0 of 1 right
    targets = [0, 0, 0, 0, 1, 1, 2]
    preds = [0, 0, 0, 1, 1, 0, 1]
    war, uar = uar_war_from_predictions(preds, targets, num_classes=3)
    assert war == pytest.approx(4 / 7)
    assert uar == pytest.approx((3 / 4 + 1 / 2 + 0) / 3)


def test_reference_accepts_scores_and_numpy() -> None:
    targets = np.array([0, 1, 2, 2])
    scores = torch.tensor([[5.0, 0, 0], [0, 1, 3], [0, 0, 1], [2, 0, 1]])  # argmax 0, 2, 2, 0
    war, uar = uar_war_from_predictions(scores, targets, num_classes=3)
    assert war == pytest.approx(2 / 4)
    assert uar == pytest.approx((1 + 0 + 1 / 2) / 3)


def test_confusion_matrix_from_predictions() -> None:
    cm = confusion_matrix_from_predictions([0, 2, 2, 1], [0, 1, 2, 1], num_classes=3)
    expected = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    assert torch.equal(cm, expected)


@pytest.mark.parametrize("seed", range(6))
def test_evaluation_metrics_match_reference(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    num_classes = 5
    names = [f"c{k}" for k in range(num_classes)]
    # seeds 0-2: every class present; seeds 3-5: class 4 never a target, sometimes predicted
    top = num_classes if seed < 3 else num_classes - 1
    targets = torch.randint(0, top, (97,), generator=generator)
    logits = torch.randn(97, num_classes, generator=generator)
    logits[torch.arange(97), targets] += 1.0
    metrics = EvaluationMetrics(num_classes, names)
    for chunk in range(0, 97, 20):  # several batches of different sizes
        metrics.update(logits[chunk : chunk + 20], targets[chunk : chunk + 20])
    result = metrics.compute()
    war, uar = uar_war_from_predictions(logits, targets, num_classes)
    assert float(result["war"]) == pytest.approx(war, abs=1e-6)
    assert float(result["uar"]) == pytest.approx(uar, abs=1e-6)
    cm = confusion_matrix_from_predictions(logits, targets, num_classes)
    assert torch.equal(result["confusion_matrix"].cpu(), cm)
    assert list(result["per_class_recall"]) == names
    support = cm.sum(1).clamp(min=1)
    for index, name in enumerate(names):
        expected = float(cm[index, index] / support[index])
        assert float(result["per_class_recall"][name]) == pytest.approx(expected, abs=1e-6)


def test_predicted_but_absent_class_counts_as_zero_recall() -> None:
    # class 2 never occurs as a target but is predicted once; class 3 never occurs at all
    targets = torch.tensor([0, 0, 1, 1])
    preds = torch.tensor([0, 0, 1, 2])
    metrics = EvaluationMetrics(4, ["a", "b", "c", "d"])
    metrics.update(preds, targets)
    assert float(metrics.compute()["uar"]) == pytest.approx((1 + 0.5 + 0) / 3)
    assert uar_war_from_predictions(preds, targets, 4)[1] == pytest.approx((1 + 0.5 + 0) / 3)


def test_reset_clears_states() -> None:
    metrics = EvaluationMetrics(3, NAMES)
    metrics.update(torch.tensor([0, 0]), torch.tensor([1, 1]))
    assert float(metrics.compute()["war"]) == 0.0
    metrics.reset()
    metrics.update(torch.tensor([2, 1]), torch.tensor([2, 1]))
    result = metrics.compute()
    assert float(result["war"]) == 1.0
    assert int(result["confusion_matrix"].sum()) == 2


def test_make_metrics_keys_and_prefix() -> None:
    collection = make_metrics(3, NAMES, prefix="val/")
    collection.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    values = collection.compute()
    assert set(values) == {"val/war", "val/uar"}
    assert float(values["val/war"]) == pytest.approx(2 / 3)
    assert float(values["val/uar"]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("num_classes", "names"),
    [(3, ["a", "b"]), (2, ["a", "a"]), (1, ["a"]), (True, ["a"])],
)
def test_bad_class_arguments_raise(num_classes: int, names: list[str]) -> None:
    with pytest.raises(ValueError, match=r"num_classes|class_names"):
        EvaluationMetrics(num_classes, names)


def test_bad_shapes_raise() -> None:
    metrics = EvaluationMetrics(3, NAMES)
    with pytest.raises(ValueError, match=r"\(N, 3\) scores"):
        metrics.update(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="N=4"):
        metrics.update(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        uar_war_from_predictions([0, 3], [0, 1], num_classes=3)


# --- DDP: the synchronised value is the value on the concatenated predictions -----------------

# Rank 0 sees many samples of class 0 (mostly right), rank 1 a few of classes 1 and 2 (half right).
# Per-rank UARs average to a different number than the UAR of the union.
DDP_TARGETS = (
    [0] * 8 + [1] * 2 + [2] * 1,
    [1] * 3 + [2] * 4,
)
DDP_PREDS = (
    [0] * 7 + [1] + [1, 0] + [0],
    [1, 2, 2, 2, 2, 0, 1],
)


def _ddp_worker(rank: int, world_size: int, store: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        metrics = EvaluationMetrics(3, NAMES)
        preds = torch.tensor(DDP_PREDS[rank])
        targets = torch.tensor(DDP_TARGETS[rank])
        half = len(targets) // 2
        metrics.update(preds[:half], targets[:half])
        metrics.update(preds[half:], targets[half:])
        result = metrics.compute()
        torch.save(
            {
                "war": float(result["war"]),
                "uar": float(result["uar"]),
                "recall": [float(v) for v in result["per_class_recall"].values()],
                "cm": result["confusion_matrix"],
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ddp_uar_is_computed_on_the_union(tmp_path: Path) -> None:
    world_size = 2
    all_preds = torch.tensor(DDP_PREDS[0] + DDP_PREDS[1])
    all_targets = torch.tensor(DDP_TARGETS[0] + DDP_TARGETS[1])
    war, uar = uar_war_from_predictions(all_preds, all_targets, 3)
    per_rank_uar = [
        uar_war_from_predictions(p, t, 3)[1] for p, t in zip(DDP_PREDS, DDP_TARGETS, strict=True)
    ]
    assert abs(np.mean(per_rank_uar) - uar) > 0.05  # the example tells the two apart

    mp.spawn(
        _ddp_worker,
        args=(world_size, str(tmp_path / "store"), str(tmp_path)),
        nprocs=world_size,
        join=True,
    )
    cm = confusion_matrix_from_predictions(all_preds, all_targets, 3)
    for rank in range(world_size):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        assert out["uar"] == pytest.approx(uar, abs=1e-6)
        assert out["war"] == pytest.approx(war, abs=1e-6)
        assert torch.equal(out["cm"], cm)
        expected_recall = (cm.diagonal() / cm.sum(1)).tolist()
        assert out["recall"] == pytest.approx(expected_recall, abs=1e-6)
