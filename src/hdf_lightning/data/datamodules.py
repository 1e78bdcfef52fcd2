"""LightningDataModules for DFEW, FERV39k, ``path,label`` CSVs and the synthetic DFEW tree.

One :class:`ClipDataModule` holds every loading option; each dataset contributes only a reader of
its splits (:mod:`hdf_lightning.data.splits`).

No I/O happens in ``__init__``; :meth:`ClipDataModule.setup` reads only the splits the stage needs
(a missing dataset raises :class:`~hdf_lightning.data.errors.DatasetNotFoundError` there, before any
training step). Batches leave the DataLoader as uint8 clips, already augmented by the workers
(``augment_on="loader"``, the default) or augmented on the device in
:meth:`ClipDataModule.on_after_batch_transfer` (``augment_on="device"``); the float conversion and
normalisation always happen there.

Protocols (recorded in ``hparams.protocol``):

* ``"paper"``: the validation split *is* the test split (model selection on test, as the published
  DFEW / FERV39k numbers were obtained).
* ``"honest"``: a stratified ``val_fraction`` of the training split, drawn with ``seed``, is held
  out for validation; the test split is only used by ``test``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from einops import rearrange
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from hdf_lightning.data.clip_samplers import (
    DistributedWeightedSampler,
    EpochSampler,
    stratified_split,
)
from hdf_lightning.data.datasets import ClipDataset, ClipRecord, collate_clips, scan_index
from hdf_lightning.data.errors import DatasetError
from hdf_lightning.data.face_crops import FaceCropRecord, clips_crop_record
from hdf_lightning.data.frame_sampling import SAMPLERS
from hdf_lightning.data.splits import (
    CSVSplits,
    DFEWSplits,
    DFEWVariant,
    FERV39kSplits,
    Split,
    SplitReader,
)
from hdf_lightning.data.synthetic import SynthConfig, generate_dfew
from hdf_lightning.data.transforms import (
    NORMALIZATION,
    ClipAugment,
    ClipEval,
    decode_jpeg_clips,
)

log = logging.getLogger(__name__)

SamplerMode = Literal["segment", "m3dfel", "dense"]
AugmentOn = Literal["loader", "device"]

AUGMENT_RATIO: tuple[float, float] = (3 / 4, 4 / 3)
"""Aspect-ratio range of the random resized crop (docs/method.md §7)."""
AUGMENT_FLIP_P = 0.5
"""Probability of a horizontal flip per clip (docs/method.md §7)."""
AUGMENT_JITTER = 0.4
"""Brightness, contrast and saturation jitter strength (docs/method.md §7)."""

STAGE_SPLITS: dict[str | None, tuple[Split, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
    None: ("train", "val", "test"),
}
"""Lightning stage -> the splits ``setup`` builds (predict runs on the test split)."""


class ClipDataModule(pl.LightningDataModule):
    """The DataModule of labelled clip datasets; a :class:`SplitReader` says how splits are read.

    The dataset-specific DataModules below (:class:`DFEWDataModule`, :class:`FERV39kDataModule`,
    :class:`VideoCSVDataModule`, :class:`SyntheticDFEWDataModule`) only build their reader and pass
    every other option here, so a loading option exists in this one constructor.

    Batches: ``video`` float ``(B, 3, T, S, S)`` after :meth:`on_after_batch_transfer` (with
    ``eval_views > 1``, validation/test/predict batches are ``(B, V, 3, T, S, S)``; average the
    predictions over V), ``label`` ``(B,)`` long, ``index`` ``(B,)`` long (row in the split).

    Sizes: a clip of any source length is sampled to ``num_frames`` frames; each frame is decoded
    at ``load_size`` x ``load_size`` pixels (the size the workers hand over); the training crop
    (random resized crop) and the evaluation resize produce ``crop_size`` x ``crop_size``, the
    network's input size.

    Args:
        splits: the dataset's :class:`~hdf_lightning.data.splits.SplitReader`.
        num_frames: frames per sampled clip, T (the network's ``num_frames``).
        crop_size: output size S of the augmentation / evaluation resize (the network's input).
        load_size: frames are decoded at ``load_size²`` before cropping (default ``crop_size``).
        batch_size: per-device batch size.
        num_workers: DataLoader worker processes.
        sampler: frame sampler (``"segment"``, ``"m3dfel"`` or ``"dense"``).
        eval_views: clips per video at evaluation.
        protocol: ``"paper"`` (validate on test) or ``"honest"`` (validate on a held-out part of
            train).
        val_fraction: fraction of every class held out under ``"honest"``.
        seed: seed of the honest split, the shuffling and the frame sampling.
        normalize: ``"none"`` or ``"kinetics"`` (mean 0.45, std 0.225).
        augment: random resized crop, flip and colour jitter on training batches.
        augment_on: where the training augmentation runs. ``"loader"``: each DataLoader worker
            crops, resizes, flips and jitters its clip on uint8
            (:meth:`ClipAugment.augment_clip`) and the batch is only converted to float and
            normalised; the fastest choice on the CPU, and the work scales with
            ``num_workers``. ``"device"``: the workers only decode (at ``load_size``) and
            :class:`ClipAugment` augments the whole batch on the accelerator in
            :meth:`on_after_batch_transfer`; frees the loader's CPU when training on a GPU.
            Both draw the same distribution of parameters, deterministic by (seed, epoch, clip).
        crop_scale: area range of the random resized crop (0.08-1 in the method's recipe; milder
            ranges suit tiny datasets such as the demo's).
        skip_bad: drop unusable clips (counted and logged) instead of raising.
        balanced_sampler: draw training clips with probability inversely proportional to their
            class frequency (works under DDP).
        pin_memory: DataLoader ``pin_memory``.
        persistent_workers: keep the DataLoader workers alive between epochs (when
            ``num_workers > 0``); re-forking them costs about 9 % of an epoch at 2 workers.
        hue: strength of the hue jitter in [0, 0.5] (the paper recipe: 0.4; 0 turns it off).
        worker_timeout: seconds a DataLoader worker may take to deliver a batch (when
            ``num_workers > 0``) before the run stops with an error naming the stall, instead of
            waiting forever on a stuck worker; 0 waits forever.
    """

    def __init__(
        self,
        splits: SplitReader,
        *,
        num_frames: int = 16,
        crop_size: int = 112,
        load_size: int | None = None,
        batch_size: int = 16,
        num_workers: int = 4,
        sampler: SamplerMode = "segment",
        eval_views: int = 1,
        protocol: Literal["paper", "honest"] = "paper",
        val_fraction: float = 0.1,
        seed: int = 42,
        normalize: Literal["none", "kinetics"] = "none",
        augment: bool = True,
        augment_on: AugmentOn = "loader",
        crop_scale: tuple[float, float] = (0.08, 1.0),
        skip_bad: bool = False,
        balanced_sampler: bool = False,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        hue: float = 0.0,
        worker_timeout: float = 600.0,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("num_frames", num_frames, 1),
            ("crop_size", crop_size, 1),
            ("load_size", crop_size if load_size is None else load_size, 1),
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("eval_views", eval_views, 1),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        if protocol not in ("paper", "honest"):
            raise ValueError(f"protocol must be 'paper' or 'honest', got {protocol!r}")
        if normalize not in NORMALIZATION:
            raise ValueError(f"normalize must be one of {sorted(NORMALIZATION)}, got {normalize!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if augment_on not in ("loader", "device"):
            raise ValueError(f"augment_on must be 'loader' or 'device', got {augment_on!r}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        if worker_timeout < 0:
            raise ValueError(f"worker_timeout must be >= 0 seconds, got {worker_timeout}")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.save_hyperparameters(ignore=["splits"])
        self.splits = splits
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.load_size = crop_size if load_size is None else load_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.sampler = sampler
        self.eval_views = eval_views
        self.protocol = protocol
        self.val_fraction = val_fraction
        self.seed = seed
        self.normalize = normalize
        self.augment = augment
        self.augment_on = augment_on
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.skip_bad = skip_bad
        self.balanced_sampler = balanced_sampler
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.hue = hue
        self.worker_timeout = float(worker_timeout)
        self.datasets: dict[Split, ClipDataset] = {}
        self.dropped: dict[Split, list[DatasetError]] = {}
        self._records: dict[Split, list[ClipRecord]] = {}
        self._transforms: dict[bool, nn.Module] = {}
        self._face_crop: tuple[FaceCropRecord | None] | None = None  # (record,) once read

    # -- splits --------------------------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        """Class names of the dataset, index = label."""
        return list(self.splits.class_names)

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_names)

    @property
    def face_crop(self) -> FaceCropRecord | None:
        """How the training clips were cropped: the record of the ``manifest.json`` that ``hdf
        data extract --faces`` wrote beside their folders, or None when they have none (DFEW's
        own crops, the synthetic data) or were not all cropped the same way
        (:func:`~hdf_lightning.data.face_crops.clips_crop_record`). Read once, on first use; the
        inference record of every checkpoint stores it."""
        if self._face_crop is None:
            records = self.split_records("train", errors=[])  # unusable rows were reported
            self._face_crop = (clips_crop_record(r.path for r in records),)
        return self._face_crop[0]

    def split_records(
        self, split: Split, errors: list[DatasetError] | None = None
    ) -> list[ClipRecord]:
        """Records of ``"train"``, ``"val"`` or ``"test"`` under the chosen protocol (cached).

        Args:
            split: the split.
            errors: when given, unusable rows are appended here and skipped (not cached).
        """
        if errors is None and split in self._records:
            return self._records[split]
        if split == "test" or self.splits.has_val_split:
            records = self.splits.read(split, errors)
        elif self.protocol == "paper":
            records = self.splits.read("test" if split == "val" else "train", errors)
        else:
            # rows the train reader rejects are reported with the train split only
            own_errors = errors if split == "train" or errors is None else []
            train = self.splits.read("train", own_errors)
            keep, held = stratified_split(
                [r.label for r in train], self.val_fraction, seed=self.seed
            )
            records = [train[i] for i in (held if split == "val" else keep)]
        if errors is None:
            self._records[split] = records
        return records

    def class_counts(self, split: Split = "train") -> list[int]:
        """Number of clips of each class in ``split`` (length ``num_classes``)."""
        if split in self.datasets:
            labels = self.datasets[split].labels()
        else:
            labels = [r.label for r in self.split_records(split)]
        counts = [0] * self.num_classes
        for label in labels:
            counts[label] += 1
        return counts

    @property
    def skipped(self) -> dict[Split, int]:
        """Clips skipped per split: dropped at ``setup`` plus replaced while loading."""
        return {
            split: len(self.dropped.get(split, [])) + dataset.skipped
            for split, dataset in self.datasets.items()
        }

    # -- Lightning hooks -----------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage`` (fit: train + val; validate; test; predict: test)."""
        if stage not in STAGE_SPLITS:
            raise ValueError(f"stage must be one of {list(STAGE_SPLITS)}, got {stage!r}")
        for split in STAGE_SPLITS[stage]:
            if split not in self.datasets:
                self.datasets[split] = self._build(split)

    def _build(self, split: Split) -> ClipDataset:
        errors: list[DatasetError] | None = [] if self.skip_bad else None
        records, index, bad = scan_index(self.split_records(split, errors), skip_bad=self.skip_bad)
        dropped = (errors or []) + bad
        self.dropped[split] = dropped
        if dropped:
            log.warning(
                "%s split: skipped %d unusable clip(s):\n%s",
                split,
                len(dropped),
                "\n".join(f"  {err}" for err in dropped),
            )
        if not records:
            raise DatasetError(f"the {split} split has no usable clip")
        train = split == "train"
        return ClipDataset(
            records,
            num_frames=self.num_frames,
            load_size=self.load_size,
            sampler=self.sampler,
            train=train,
            views=1 if train else self.eval_views,
            seed=self.seed,
            skip_bad=self.skip_bad,
            transform=self._loader_augment() if train else None,
            decode_on="device" if train and self._decode_on_device() else "loader",
            index=index,
        )

    def _decode_on_device(self) -> bool:
        """JPEG frames decoded on the GPU (nvJPEG): ``augment_on="device"`` on CUDA."""
        if not (self.augment and self.augment_on == "device") or self.trainer is None:
            return False
        return self.trainer.strategy.root_device.type == "cuda"

    def _loader_augment(self) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
        """The per-clip training augmentation of the workers (``augment_on="loader"``)."""
        if not (self.augment and self.augment_on == "loader"):
            return None
        return self._augment().augment_clip

    def teardown(self, stage: str | None = None) -> None:
        """Log the clips that were skipped while loading."""
        for split, dataset in self.datasets.items():
            if dataset.skipped:
                log.warning(
                    "%s split: %d clip load(s) failed and were replaced", split, dataset.skipped
                )

    def _dataloader(self, split: Split) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"the {split} split is not set up; call setup() with its stage first")
        dataset = self.datasets[split]
        sampler: DistributedSampler | None = None
        if split == "train":
            num_replicas, rank = (
                (self.trainer.world_size, self.trainer.global_rank)
                if self.trainer is not None
                else (None, None)
            )
            if self.balanced_sampler:
                counts = self.class_counts("train")
                sampler = DistributedWeightedSampler(
                    [1.0 / counts[y] for y in dataset.labels()],
                    num_replicas=num_replicas,
                    rank=rank,
                    seed=self.seed,
                )
            else:
                sampler = EpochSampler(
                    dataset, num_replicas=num_replicas, rank=rank, seed=self.seed
                )
        elif self.trainer is not None and self.trainer.world_size > 1:
            if len(dataset) < self.trainer.world_size:
                raise DatasetError(
                    f"the {split} split has {len(dataset)} clip(s), fewer than the "
                    f"{self.trainer.world_size} devices that evaluate it: use fewer devices, or a "
                    "larger split (protocol, val_fraction)"
                )
            # Every clip evaluated exactly once across ranks (Lightning's default sampler pads the
            # last shard with repeated clips, which would bias WAR/UAR).
            sampler = UnrepeatedDistributedSampler(
                dataset,
                num_replicas=self.trainer.world_size,
                rank=self.trainer.global_rank,
                shuffle=False,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            collate_fn=collate_clips,
            timeout=self.worker_timeout if self.num_workers > 0 else 0.0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or class-balanced) training batches."""
        return self._dataloader("train")

    def val_dataloader(self) -> DataLoader:
        """Validation batches (the test split under the paper protocol)."""
        return self._dataloader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches."""
        return self._dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        """Test-split batches for prediction."""
        return self._dataloader("test")

    def _augment(self) -> ClipAugment:
        """The training augmentation (docs/method.md §7) with this DataModule's sizes."""
        mean, std = NORMALIZATION[self.normalize]
        return ClipAugment(
            size=self.crop_size,
            scale=self.crop_scale,
            ratio=AUGMENT_RATIO,
            flip_p=AUGMENT_FLIP_P,
            jitter=AUGMENT_JITTER,
            hue=self.hue,
            mean=mean,
            std=std,
        )

    def _transform(self, train: bool) -> nn.Module:
        """The batch transform: the augmentation (``train``) or the evaluation resize."""
        if train not in self._transforms:
            mean, std = NORMALIZATION[self.normalize]
            self._transforms[train] = (
                self._augment() if train else ClipEval(size=self.crop_size, mean=mean, std=std)
            )
        return self._transforms[train]

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Decode JPEG-bytes batches (``decode_on="device"``) on the root device: ``jpeg`` ->
        ``video`` uint8 ``(B, 3, T, L, L)`` there (nvJPEG wants the bytes on the CPU)."""
        if isinstance(batch, dict) and "jpeg" in batch:
            device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
            batch["video"] = decode_jpeg_clips(batch.pop("jpeg"), self.load_size, device)
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (training, with ``augment``) or resize (otherwise) and normalise ``video``.

        ``video`` uint8 ``(B, 3, T, L, L)`` -> float ``(B, 3, T, S, S)``; multi-view batches
        ``(B, V, 3, T, L, L)`` -> ``(B, V, 3, T, S, S)``. Other keys are left untouched.
        """
        training = self.trainer is not None and bool(self.trainer.training)
        video = batch["video"]
        on_device = training and self.augment and self.augment_on == "device"
        transform = self._transform(on_device).to(video.device)
        if video.ndim == 6:
            views = video.shape[1]
            flat = transform(rearrange(video, "b v c t h w -> (b v) c t h w"))
            batch["video"] = rearrange(flat, "(b v) c t h w -> b v c t h w", v=views)
        elif isinstance(transform, ClipAugment):
            batch["video"] = transform(video, generator=self._batch_generator(batch, video.device))
        else:
            batch["video"] = transform(video)
        return batch

    def _batch_generator(self, batch: Any, device: torch.device) -> torch.Generator:
        """A generator seeded by (seed, epoch, the batch's clip indices): augmentation does not
        depend on the global RNG, so a resumed run augments exactly as an uninterrupted one."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        index = batch.get("index")
        key = 0 if index is None else int((index.long() * 1_000_003).remainder(2**31 - 1).sum())
        seed = (self.seed * 1_000_033 + epoch * 7_919 + key) % (2**63 - 1)
        return torch.Generator(device=device).manual_seed(seed)


class DFEWDataModule(ClipDataModule):
    """DFEW, one of its 5 folds (labels in DFEW order; see :func:`read_dfew_split`).

    Args:
        root: DFEW root, holding ``Clip/`` and ``EmoLabel_DataSplit/``.
        fold: 1..5.
        variant: ``"clip_224x224"``, ``"clip_224x224_16f"`` or ``"video"`` (``Clip/original``).
        **options: the loading options of :class:`ClipDataModule` (``num_frames``,
            ``crop_size``, ``batch_size``, ``protocol``, ...).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fold: int = 1,
        variant: DFEWVariant = "clip_224x224",
        **options: Any,
    ) -> None:
        super().__init__(DFEWSplits(Path(root), fold=fold, variant=variant), **options)
        self.root = Path(root)
        self.fold = fold
        self.variant = variant


class FERV39kDataModule(ClipDataModule):
    """FERV39k (one train/test split; labels mapped to DFEW order, see :func:`read_ferv39k_split`).

    Under the ``"paper"`` protocol the test split is used for model selection.

    Args:
        root: FERV39k root, holding ``2_ClipsforFaceCrop/`` and ``4_setups/``.
        **options: the loading options of :class:`ClipDataModule`.
    """

    def __init__(self, root: str | Path, **options: Any) -> None:
        super().__init__(FERV39kSplits(Path(root)), **options)
        self.root = Path(root)


class VideoCSVDataModule(ClipDataModule):
    """Any dataset listed in ``path,label`` CSVs (see :func:`read_csv_split`).

    With ``val_csv`` the validation split is read from it and ``protocol`` does not apply;
    without it, ``protocol`` decides as for the other datasets.

    Args:
        train_csv: training split.
        test_csv: test split.
        classes: class names; labels in the CSVs are names or 0-based indices into this list.
        val_csv: optional validation split.
        base_dir: folder relative paths start from (default: each CSV's folder).
        **options: the loading options of :class:`ClipDataModule`.
    """

    def __init__(
        self,
        train_csv: str | Path,
        test_csv: str | Path,
        *,
        classes: list[str],
        val_csv: str | Path | None = None,
        base_dir: str | Path | None = None,
        **options: Any,
    ) -> None:
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must hold at least two distinct names, got {classes}")
        csvs = {"train": Path(train_csv), "test": Path(test_csv)}
        if val_csv is not None:
            csvs["val"] = Path(val_csv)
        base = None if base_dir is None else Path(base_dir)
        super().__init__(CSVSplits(csvs, tuple(classes), base), **options)


_SYNTH_DEFAULTS = SynthConfig()
"""The generator's defaults, those of :class:`SyntheticDFEWDataModule`'s parameters."""


class SyntheticDFEWDataModule(DFEWDataModule):
    """DFEW-layout procedural clips, generated by :meth:`prepare_data` when ``root`` is missing.

    The generated tree has the real DFEW layout, so everything downstream is exercised as with
    DFEW itself. The generator's parameters are :class:`~hdf_lightning.data.synthetic.SynthConfig`'s
    fields of the same names, with its defaults (``synth_seed`` is its ``seed``).

    Args:
        root: where the synthetic tree lives (created if missing).
        num_subjects: synthetic subjects (``SynthConfig.num_subjects``).
        clips_per_subject: clips per subject.
        image_size: side in pixels of the frames written to disk (the decoder then resizes them
            to ``load_size``).
        num_frames_range: (min, max) length of the generated source clips, in frames (the
            sampler then picks ``num_frames`` of them).
        num_sources: capture styles of the training clips.
        unseen_source: add a style seen only in test clips.
        held_out: families of heterogeneity (``colour``, ``quality``, ``sampling``, ``timing``),
            each adding a style seen only in test clips (see ``SynthConfig.held_out``).
        held_out_clips_per_subject: clips per subject of each held-out style.
        imbalance: class prior, ``"none"`` or ``"dfew"``.
        write_16f: also write ``Clip/clip_224x224_16f`` (needed by that variant).
        synth_seed: seed of the generator (``SynthConfig.seed``).
        fold: 1..5.
        variant: see :class:`DFEWDataModule`.
        **options: the loading options of :class:`ClipDataModule`.
    """

    def __init__(
        self,
        root: str | Path = "data/synthetic_dfew",
        *,
        num_subjects: int = _SYNTH_DEFAULTS.num_subjects,
        clips_per_subject: int = _SYNTH_DEFAULTS.clips_per_subject,
        image_size: int = _SYNTH_DEFAULTS.image_size,
        num_frames_range: tuple[int, int] = _SYNTH_DEFAULTS.num_frames_range,
        num_sources: int = _SYNTH_DEFAULTS.num_sources,
        unseen_source: bool = _SYNTH_DEFAULTS.unseen_source,
        held_out: Sequence[str] = _SYNTH_DEFAULTS.held_out,
        held_out_clips_per_subject: int | None = _SYNTH_DEFAULTS.held_out_clips_per_subject,
        imbalance: Literal["none", "dfew"] = _SYNTH_DEFAULTS.imbalance,
        write_16f: bool = _SYNTH_DEFAULTS.write_16f,
        synth_seed: int = _SYNTH_DEFAULTS.seed,
        fold: int = 1,
        variant: DFEWVariant = "clip_224x224",
        **options: Any,
    ) -> None:
        super().__init__(root, fold=fold, variant=variant, **options)
        self.synth_config = SynthConfig(
            num_subjects=num_subjects,
            clips_per_subject=clips_per_subject,
            image_size=image_size,
            num_frames_range=num_frames_range,
            num_sources=num_sources,
            unseen_source=unseen_source,
            held_out=tuple(held_out),
            held_out_clips_per_subject=held_out_clips_per_subject,
            imbalance=imbalance,
            write_16f=write_16f,
            seed=synth_seed,
        )

    def prepare_data(self) -> None:
        """Generate the synthetic tree under ``root`` if it does not exist."""
        if not self.root.exists():
            log.info("generating synthetic DFEW clips under %s", self.root)
            generate_dfew(self.root, self.synth_config)
