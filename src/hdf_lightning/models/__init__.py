"""Video networks with the ``forward(x) -> (logits, feature)`` contract; local weight loading."""

from hdf_lightning.models.hdfnet import HDFNet
from hdf_lightning.models.m3dfel import DMIN, M3DFEL, load_r3d18_weights
from hdf_lightning.models.weights import LoadReport, load_checked, read_state_dict
from hdf_lightning.models.x3d import (
    X3D,
    X3D_PRESETS,
    WeightsSkip,
    X3DPreset,
    load_x3d_weights,
    x3d_key_from_pytorchvideo,
    x3d_preset,
)

__all__ = [
    "DMIN",
    "M3DFEL",
    "X3D",
    "X3D_PRESETS",
    "HDFNet",
    "LoadReport",
    "WeightsSkip",
    "X3DPreset",
    "load_checked",
    "load_r3d18_weights",
    "load_x3d_weights",
    "read_state_dict",
    "x3d_key_from_pytorchvideo",
    "x3d_preset",
]
