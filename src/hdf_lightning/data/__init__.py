"""Data: DFEW / FERV39k / CSV readers, clip datasets, DataModules, verification and extraction."""

from hdf_lightning.data.classes import CLASS_NAMES, FERV39K_CLASS_MAP
from hdf_lightning.data.datamodules import (
    ClipDataModule,
    DFEWDataModule,
    DistributedWeightedSampler,
    EpochSampler,
    FERV39kDataModule,
    SyntheticDFEWDataModule,
    VideoCSVDataModule,
)
from hdf_lightning.data.datasets import (
    ClipDataset,
    ClipRecord,
    read_csv_split,
    read_dfew_split,
    read_ferv39k_split,
)
from hdf_lightning.data.errors import (
    CorruptClipError,
    DatasetError,
    DatasetNotFoundError,
    EmptyClipError,
    MissingClipError,
    SplitFileError,
)

__all__ = [
    "CLASS_NAMES",
    "FERV39K_CLASS_MAP",
    "ClipDataModule",
    "ClipDataset",
    "ClipRecord",
    "CorruptClipError",
    "DFEWDataModule",
    "DatasetError",
    "DatasetNotFoundError",
    "DistributedWeightedSampler",
    "EmptyClipError",
    "EpochSampler",
    "FERV39kDataModule",
    "MissingClipError",
    "SplitFileError",
    "SyntheticDFEWDataModule",
    "VideoCSVDataModule",
    "read_csv_split",
    "read_dfew_split",
    "read_ferv39k_split",
]
