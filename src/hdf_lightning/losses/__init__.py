"""Losses: DSM (distribution-aware scaling) and the cross-entropy baseline; no Lightning imports."""

from hdf_lightning.losses.ce import ClassificationLoss
from hdf_lightning.losses.distributed import gather_tensor, gather_with_grad
from hdf_lightning.losses.dsm import (
    DSM,
    dro_supcon_loss,
    dro_weights,
    dsm_lambdas,
    information_bottleneck,
)
from hdf_lightning.losses.output import LossOutput

__all__ = [
    "DSM",
    "ClassificationLoss",
    "LossOutput",
    "dro_supcon_loss",
    "dro_weights",
    "dsm_lambdas",
    "gather_tensor",
    "gather_with_grad",
    "information_bottleneck",
]
