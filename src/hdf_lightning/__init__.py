"""hdf-lightning: HDF (ACM MM 2025) for dynamic facial expression recognition.

Plug-in parts work in any PyTorch or Lightning model::

    from hdf_lightning import DAM, DSM, SAM

Names are imported lazily, so ``from hdf_lightning import DAM`` imports neither Lightning nor the
data code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "DAM": "hdf_lightning.layers",
    "insert_dam": "hdf_lightning.layers",
    "dam_maps": "hdf_lightning.layers",
    "dct_basis_7x7": "hdf_lightning.layers",
    "DSM": "hdf_lightning.losses",
    "ClassificationLoss": "hdf_lightning.losses",
    "LossOutput": "hdf_lightning.losses",
    "SAM": "hdf_lightning.optim",
    "ClosureSAM": "hdf_lightning.optim",
    "frozen_bn_stats": "hdf_lightning.optim",
    "warmup_cosine_schedule": "hdf_lightning.optim",
    "X3D": "hdf_lightning.models",
    "HDFNet": "hdf_lightning.models",
    "M3DFEL": "hdf_lightning.models",
    "CLASS_NAMES": "hdf_lightning.data",
    "DFEWDataModule": "hdf_lightning.data",
    "FERV39kDataModule": "hdf_lightning.data",
    "MAFWDataModule": "hdf_lightning.data",
    "RAVDESSDataModule": "hdf_lightning.data",
    "CREMADDataModule": "hdf_lightning.data",
    "VideoCSVDataModule": "hdf_lightning.data",
    "SyntheticDFEWDataModule": "hdf_lightning.data",
    "HDFClassifier": "hdf_lightning.lit",
}

__all__ = [
    "CLASS_NAMES",
    "DAM",
    "DSM",
    "M3DFEL",
    "SAM",
    "X3D",
    "CREMADDataModule",
    "ClassificationLoss",
    "ClosureSAM",
    "DFEWDataModule",
    "FERV39kDataModule",
    "HDFClassifier",
    "HDFNet",
    "LossOutput",
    "MAFWDataModule",
    "RAVDESSDataModule",
    "SyntheticDFEWDataModule",
    "VideoCSVDataModule",
    "__version__",
    "dam_maps",
    "dct_basis_7x7",
    "frozen_bn_stats",
    "insert_dam",
    "warmup_cosine_schedule",
]
# __all__ and the TYPE_CHECKING imports below repeat _EXPORTS (for linters, type checkers and
# IDEs); tests/test_package.py checks that the three lists agree.

if TYPE_CHECKING:
    from hdf_lightning.data import (
        CLASS_NAMES,
        CREMADDataModule,
        DFEWDataModule,
        FERV39kDataModule,
        MAFWDataModule,
        RAVDESSDataModule,
        SyntheticDFEWDataModule,
        VideoCSVDataModule,
    )
    from hdf_lightning.layers import DAM, dam_maps, dct_basis_7x7, insert_dam
    from hdf_lightning.lit import HDFClassifier
    from hdf_lightning.losses import DSM, ClassificationLoss, LossOutput
    from hdf_lightning.models import M3DFEL, X3D, HDFNet
    from hdf_lightning.optim import SAM, ClosureSAM, frozen_bn_stats, warmup_cosine_schedule


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hdf_lightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
