"""Data: DFEW / FERV39k / MAFW / RAVDESS / CREMA-D / CSV readers, clip datasets, DataModules,
verification and extraction."""

from hdf_lightning.data import opencv as _opencv  # noqa: F401  (registers the at-fork hook)
from hdf_lightning.data.classes import CLASS_NAMES, FERV39K_CLASS_MAP
from hdf_lightning.data.clip_samplers import (
    DistributedWeightedSampler,
    EpochSampler,
    stratified_split,
)
from hdf_lightning.data.corpora import (
    ClassMap,
    CREMADDataModule,
    CREMADSplits,
    MAFWDataModule,
    MAFWSplits,
    RAVDESSDataModule,
    RAVDESSSplits,
)
from hdf_lightning.data.datamodules import (
    ClipDataModule,
    DFEWDataModule,
    FERV39kDataModule,
    SyntheticDFEWDataModule,
    VideoCSVDataModule,
)
from hdf_lightning.data.datasets import ClipDataset, ClipRecord
from hdf_lightning.data.errors import (
    CorruptClipError,
    DatasetError,
    DatasetNotFoundError,
    EmptyClipError,
    FileNameError,
    MissingClassError,
    MissingClipError,
    SplitFileError,
)
from hdf_lightning.data.splits import (
    CSVSplits,
    DFEWSplits,
    FERV39kSplits,
    SplitReader,
    read_csv_split,
    read_dfew_split,
    read_ferv39k_split,
)

__all__ = [
    "CLASS_NAMES",
    "FERV39K_CLASS_MAP",
    "CREMADDataModule",
    "CREMADSplits",
    "CSVSplits",
    "ClassMap",
    "ClipDataModule",
    "ClipDataset",
    "ClipRecord",
    "CorruptClipError",
    "DFEWDataModule",
    "DFEWSplits",
    "DatasetError",
    "DatasetNotFoundError",
    "DistributedWeightedSampler",
    "EmptyClipError",
    "EpochSampler",
    "FERV39kDataModule",
    "FERV39kSplits",
    "FileNameError",
    "MAFWDataModule",
    "MAFWSplits",
    "MissingClassError",
    "MissingClipError",
    "RAVDESSDataModule",
    "RAVDESSSplits",
    "SplitFileError",
    "SplitReader",
    "SyntheticDFEWDataModule",
    "VideoCSVDataModule",
    "read_csv_split",
    "read_dfew_split",
    "read_ferv39k_split",
    "stratified_split",
]
