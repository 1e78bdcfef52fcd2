"""Optimisation: SAM/ASAM with BatchNorm freezing and the LR schedule; no Lightning imports."""

from hdf_lightning.optim.sam import SAM, frozen_bn_stats
from hdf_lightning.optim.schedulers import warmup_cosine_schedule

__all__ = ["SAM", "frozen_bn_stats", "warmup_cosine_schedule"]
