"""Video networks with the ``forward(x) -> (logits, feature)`` contract; weights by name or path."""

from hdf_lightning.models.hdfnet import HDFNet
from hdf_lightning.models.m3dfel import DMIN, M3DFEL, R3D18_WEIGHTS, load_r3d18_weights
from hdf_lightning.models.weights import (
    MIRROR_ENV,
    LoadReport,
    PublishedWeights,
    WeightsNotFoundError,
    fetch_weights,
    load_checked,
    read_state_dict,
    read_weights,
    resolve_weights,
)
from hdf_lightning.models.x3d import (
    X3D,
    X3D_PRESETS,
    X3D_WEIGHTS,
    WeightsSkip,
    X3DPreset,
    load_x3d_weights,
    x3d_key_from_pytorchvideo,
    x3d_preset,
)

__all__ = [
    "DMIN",
    "M3DFEL",
    "MIRROR_ENV",
    "R3D18_WEIGHTS",
    "X3D",
    "X3D_PRESETS",
    "X3D_WEIGHTS",
    "HDFNet",
    "LoadReport",
    "PublishedWeights",
    "WeightsNotFoundError",
    "WeightsSkip",
    "X3DPreset",
    "fetch_weights",
    "load_checked",
    "load_r3d18_weights",
    "load_x3d_weights",
    "read_state_dict",
    "read_weights",
    "resolve_weights",
    "x3d_key_from_pytorchvideo",
    "x3d_preset",
]
