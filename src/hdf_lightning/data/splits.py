"""How each dataset's splits are read: one small reader per dataset.

A reader turns a dataset's files into :class:`~hdf_lightning.data.datasets.ClipRecord` lists;
:class:`~hdf_lightning.data.datamodules.ClipDataModule` does everything else (protocols, sampling,
augmentation, loaders). Supporting a new dataset means writing a reader, not a DataModule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from hdf_lightning.data.classes import CLASS_NAMES
from hdf_lightning.data.datasets import (
    ClipRecord,
    check_dfew_fold,
    read_csv_split,
    read_dfew_split,
    read_ferv39k_split,
)
from hdf_lightning.data.errors import DatasetError

Split = Literal["train", "val", "test"]
DFEWVariant = Literal["clip_224x224", "clip_224x224_16f", "video"]


class SplitReader(Protocol):
    """Reads the splits of one dataset.

    Attributes:
        class_names: class names, index = label.
        has_val_split: the dataset has a validation split of its own; otherwise the
            DataModule's ``protocol`` derives one.
    """

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def has_val_split(self) -> bool: ...

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        """Records of ``split``. With ``errors`` given, unusable rows are appended there and
        skipped instead of raised."""
        ...


def _no_val(reader: object) -> ValueError:
    return ValueError(f"{type(reader).__name__} has no validation split of its own")


@dataclass(frozen=True)
class DFEWSplits:
    """DFEW's fold ``fold`` (1..5), see :func:`~hdf_lightning.data.datasets.read_dfew_split`."""

    root: Path
    fold: int = 1
    variant: DFEWVariant = "clip_224x224"
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)
    has_val_split: bool = False

    def __post_init__(self) -> None:
        check_dfew_fold(self.fold)

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        if split == "val":
            raise _no_val(self)
        return read_dfew_split(self.root, self.fold, split, self.variant, errors=errors)


@dataclass(frozen=True)
class FERV39kSplits:
    """FERV39k's train/test split, see :func:`~hdf_lightning.data.datasets.read_ferv39k_split`."""

    root: Path
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)
    has_val_split: bool = False

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        if split == "val":
            raise _no_val(self)
        return read_ferv39k_split(self.root, split, errors=errors)


@dataclass(frozen=True)
class CSVSplits:
    """``path,label`` CSV files, see :func:`~hdf_lightning.data.datasets.read_csv_split`.

    ``csvs`` maps ``"train"``, ``"test"`` and optionally ``"val"`` to their files.
    """

    csvs: dict[str, Path]
    class_names: tuple[str, ...]
    base_dir: Path | None = None

    @property
    def has_val_split(self) -> bool:
        return "val" in self.csvs

    def read(self, split: Split, errors: list[DatasetError] | None) -> list[ClipRecord]:
        path = self.csvs.get(split)
        if path is None:
            raise _no_val(self)
        return read_csv_split(path, list(self.class_names), self.base_dir, errors=errors)
