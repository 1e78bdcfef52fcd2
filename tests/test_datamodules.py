"""DataModules: stages, batches after on_after_batch_transfer, protocols, samplers, errors."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from conftest import DFEWTree, FERV39kTree, write_frames
from hdf_lightning.data import (
    CLASS_NAMES,
    DatasetNotFoundError,
    DFEWDataModule,
    FERV39kDataModule,
    MissingClipError,
    SyntheticDFEWDataModule,
    VideoCSVDataModule,
)
from hdf_lightning.data.clip_samplers import DistributedWeightedSampler, stratified_split


def _dfew(root: Path, **overrides: object) -> DFEWDataModule:
    options: dict = {"num_frames": 4, "crop_size": 16, "batch_size": 4, "num_workers": 0}
    options.update(overrides)
    return DFEWDataModule(root, **options)


def _keys(records: list) -> list[str]:
    return [r.clip_id for r in records]


def test_init_does_no_io_and_exposes_contract(tmp_path: Path) -> None:
    dm = _dfew(tmp_path / "does_not_exist")  # nothing is read yet
    assert (dm.num_classes, dm.class_names, dm.num_frames, dm.crop_size) == (
        7,
        list(CLASS_NAMES),
        4,
        16,
    )
    assert dm.hparams["protocol"] == "paper" and dm.hparams["fold"] == 1
    assert str(dm.hparams["root"]).endswith("does_not_exist")
    with pytest.raises(ValueError, match="protocol"):
        _dfew(tmp_path, protocol="cheating")


def test_missing_root_error_names_path_and_layout(tmp_path: Path) -> None:
    dm = _dfew(tmp_path / "dfew_absent")
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(tmp_path / "dfew_absent") in message
    assert "Clip/clip_224x224/<5-digit id>" in message and "EmoLabel_DataSplit" in message
    assert "https://dfew-dataset.github.io" in message
    assert "\n\n" not in message


def test_fit_batches_after_transfer(dfew_tree: DFEWTree) -> None:
    dm = _dfew(dfew_tree.root, normalize="kinetics")
    dm.setup("fit")
    assert set(dm.datasets) == {"train", "val"}  # fit builds only what it needs
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].dtype == torch.uint8 and batch["video"].shape == (4, 3, 4, 16, 16)
    dm.trainer = SimpleNamespace(training=True, current_epoch=0)  # type: ignore[assignment]
    out = dm.on_after_batch_transfer(batch, 0)
    assert out["video"].shape == (4, 3, 4, 16, 16) and out["video"].dtype == torch.float32
    assert out["label"].dtype == torch.long and out["index"].dtype == torch.long
    assert out["label"].shape == (4,)
    # kinetics normalisation: values leave [0, 1]
    assert out["video"].min() < 0


@pytest.mark.parametrize("augment_on", ["loader", "device"])
def test_training_augmentation_runs_where_asked(dfew_tree: DFEWTree, augment_on: str) -> None:
    dm = _dfew(dfew_tree.root, crop_size=8, load_size=16, augment_on=augment_on)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    side = 8 if augment_on == "loader" else 16  # the workers crop, or leave it to the device
    assert batch["video"].dtype == torch.uint8 and batch["video"].shape == (4, 3, 4, side, side)
    dm.trainer = SimpleNamespace(training=True, current_epoch=0)  # type: ignore[assignment]
    out = dm.on_after_batch_transfer(batch, 0)["video"]
    assert out.shape == (4, 3, 4, 8, 8) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_loader_augmentation_is_seeded_by_clip_and_epoch_not_workers(dfew_tree: DFEWTree) -> None:
    dm = _dfew(dfew_tree.root, crop_size=8, load_size=16, augment_on="loader")
    dm.setup("fit")
    train = dm.datasets["train"]
    assert train.transform is not None and dm.datasets["val"].transform is None
    first = train[(0, 0)]["video"]
    assert first.shape == (3, 4, 8, 8) and first.is_contiguous()
    assert torch.equal(train[(0, 0)]["video"], first)
    assert not torch.equal(train[(0, 1)]["video"], first)  # a new epoch, a new augmentation
    serial = [b["video"] for b in dm.train_dataloader()]
    dm.num_workers = 2
    parallel = [b["video"] for b in dm.train_dataloader()]
    assert len(serial) == len(parallel) > 1
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_no_augmentation_means_no_loader_transform(dfew_tree: DFEWTree) -> None:
    dm = _dfew(dfew_tree.root, augment=False)
    dm.setup("fit")
    assert dm.datasets["train"].transform is None
    with pytest.raises(ValueError, match="augment_on"):
        _dfew(dfew_tree.root, augment_on="gpu")


def test_eval_batches_and_views(dfew_tree: DFEWTree) -> None:
    dm = _dfew(dfew_tree.root, crop_size=8, load_size=16, eval_views=2)
    dm.setup("test")
    assert set(dm.datasets) == {"test"}
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (4, 2, 3, 4, 16, 16)
    out = dm.on_after_batch_transfer(batch, 0)  # no trainer: evaluation transform
    assert out["video"].shape == (4, 2, 3, 4, 8, 8) and out["video"].dtype == torch.float32
    assert float(out["video"].min()) >= 0.0 and float(out["video"].max()) <= 1.0
    predict = next(iter(dm.predict_dataloader()))
    assert torch.equal(predict["label"], batch["label"])


def test_paper_protocol_validates_on_test(dfew_tree: DFEWTree) -> None:
    dm = _dfew(dfew_tree.root)
    dm.setup("fit")
    assert _keys(dm.datasets["val"].records) == [c for c, _ in dfew_tree.test]
    assert _keys(dm.datasets["train"].records) == [c for c, _ in dfew_tree.train]


def test_honest_protocol_is_stratified_disjoint_deterministic(dfew_tree: DFEWTree) -> None:
    def split(seed: int) -> tuple[list[str], list[str]]:
        dm = _dfew(dfew_tree.root, protocol="honest", val_fraction=0.34, seed=seed)
        dm.setup("fit")
        return _keys(dm.datasets["train"].records), _keys(dm.datasets["val"].records)

    train, val = split(0)
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(c for c, _ in dfew_tree.train)
    labels = dict(dfew_tree.train)
    assert Counter(labels[c] for c in val) == Counter(range(7))  # one of three per class
    assert split(0) == (train, val)
    assert any(split(s)[1] != val for s in (1, 2, 3))
    assert not set(val) & {c for c, _ in dfew_tree.test}


def test_stratified_split_rounds_per_class() -> None:
    labels = [0] * 10 + [1] * 20 + [2]
    keep, held = stratified_split(labels, 0.2, seed=0)
    assert Counter(labels[i] for i in held) == {0: 2, 1: 4}
    assert sorted(keep + held) == list(range(31))


def test_ferv39k_datamodule(ferv39k_tree: FERV39kTree) -> None:
    dm = FERV39kDataModule(
        ferv39k_tree.root, num_frames=4, crop_size=16, batch_size=7, num_workers=0
    )
    dm.setup("validate")
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert batch["video"].shape == (7, 3, 4, 16, 16)
    assert batch["label"].tolist() == [label for _, label in ferv39k_tree.test]
    with pytest.raises(DatasetNotFoundError, match="2_ClipsforFaceCrop"):
        FERV39kDataModule(ferv39k_tree.root / "nope").setup("fit")


def test_csv_datamodule_with_val_csv(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        write_frames(tmp_path / name, 5)
    (tmp_path / "train.csv").write_text("path,label\na,calm\nb,tense\nc,calm\n")
    (tmp_path / "val.csv").write_text("d,1\n")
    (tmp_path / "test.csv").write_text("c,0\nd,tense\n")
    dm = VideoCSVDataModule(
        tmp_path / "train.csv",
        tmp_path / "test.csv",
        classes=["calm", "tense"],
        val_csv=tmp_path / "val.csv",
        num_frames=2,
        crop_size=8,
        batch_size=2,
        num_workers=0,
    )
    dm.setup("fit")
    assert dm.num_classes == 2 and dm.class_names == ["calm", "tense"]
    assert _keys(dm.datasets["val"].records) == ["d"]
    assert dm.class_counts("train") == [2, 1]
    assert next(iter(dm.train_dataloader()))["video"].shape == (2, 3, 2, 8, 8)


def test_balanced_sampler_draws_classes_uniformly_and_shards_disjointly() -> None:
    labels = [0] * 900 + [1] * 90 + [2] * 10
    counts = Counter(labels)
    weights = [1.0 / counts[y] for y in labels]
    whole = DistributedWeightedSampler(weights, num_samples=3000, num_replicas=1, rank=0, seed=7)
    drawn = Counter(labels[i] for i, _ in whole)
    assert all(850 < drawn[c] < 1150 for c in range(3)), drawn
    shards = [
        list(DistributedWeightedSampler(weights, num_samples=3000, num_replicas=2, rank=r, seed=7))
        for r in range(2)
    ]
    assert [len(s) for s in shards] == [1500, 1500]
    merged = [key for pair in zip(*shards, strict=True) for key in pair]
    assert merged == list(whole)  # the two ranks' shards partition the same global sample
    whole.set_epoch(1)
    assert [i for i, _ in whole] != [i for i, _ in merged] and {e for _, e in whole} == {1}


def test_balanced_sampler_without_replacement_disjoint() -> None:
    shards = [
        set(
            DistributedWeightedSampler(
                [1.0] * 10, num_replicas=2, rank=r, seed=0, replacement=False
            )
        )
        for r in range(2)
    ]
    indices = [{i for i, _ in s} for s in shards]
    assert not indices[0] & indices[1] and indices[0] | indices[1] == set(range(10))
    with pytest.raises(ValueError, match="weights"):
        DistributedWeightedSampler([-1.0, 2.0])


def test_balanced_train_dataloader_uses_weighted_sampler(dfew_tree: DFEWTree) -> None:
    dm = _dfew(dfew_tree.root, balanced_sampler=True)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, DistributedWeightedSampler)
    assert len(list(loader.sampler)) == 21


def test_skip_bad_drops_counts_and_logs(
    dfew_tree: DFEWTree, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.rmtree(dfew_tree.clip_dir("00003"))
    for frame in dfew_tree.clip_dir("00004").iterdir():
        frame.unlink()
    path = dfew_tree.split_file("train")
    path.write_text(path.read_text() + "9,12\n")
    with pytest.raises(MissingClipError, match="00003"):
        _dfew(dfew_tree.root).setup("fit")
    dm = _dfew(dfew_tree.root, skip_bad=True)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert len(dm.datasets["train"]) == 19
    assert dm.skipped == {"train": 3, "val": 0}
    assert "skipped 3 unusable clip(s)" in caplog.text and "00004" in caplog.text


def test_synthetic_datamodule_generates_only_when_missing(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    dm = SyntheticDFEWDataModule(
        root,
        num_subjects=5,
        clips_per_subject=2,
        image_size=16,
        num_frames_range=(4, 6),
        num_frames=4,
        crop_size=8,
        batch_size=2,
        num_workers=0,
    )
    with pytest.raises(DatasetNotFoundError):
        dm.setup("fit")  # setup never creates data
    dm.prepare_data()
    assert (root / "EmoLabel_DataSplit").is_dir()
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["video"].shape == (2, 3, 4, 8, 8)
    marker = root / "untouched"
    marker.write_text("x")
    dm.prepare_data()
    assert marker.exists()
    real = _dfew(tmp_path / "real_dfew")
    real.prepare_data()  # a real dataset's DataModule never creates data
    assert not (tmp_path / "real_dfew").exists()
    with pytest.raises(DatasetNotFoundError):
        real.setup("fit")


class _Probe(pl.LightningModule):
    """Smallest model: records the batches it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, 7)
        self.seen: list[tuple[str, tuple[int, ...], torch.dtype]] = []

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        video = batch["video"]
        self.seen.append((stage, tuple(video.shape), video.dtype))
        logits = self.head(video.mean(dim=(2, 3, 4)))
        return torch.nn.functional.cross_entropy(logits, batch["label"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_fit_runs_on_the_datamodule(dfew_tree: DFEWTree, tmp_path: Path) -> None:
    dm = _dfew(dfew_tree.root, batch_size=8, augment=True)
    model = _Probe()
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.train_dataloader.sampler.epoch == 1  # Lightning set the sampler's epoch
    assert ("train", (8, 3, 4, 16, 16), torch.float32) in model.seen
    assert ("val", (7, 3, 4, 16, 16), torch.float32) in model.seen


def test_honest_protocol_counts_bad_train_rows_once(dfew_tree: DFEWTree) -> None:
    path = dfew_tree.split_file("train")
    path.write_text(path.read_text() + "9,12\n")
    dm = _dfew(dfew_tree.root, protocol="honest", val_fraction=0.34, skip_bad=True)
    dm.setup("fit")
    assert dm.skipped == {"train": 1, "val": 0}
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 21
