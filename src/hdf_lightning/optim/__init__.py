"""Optimisation: SAM/ASAM with BatchNorm freezing and the LR schedule; no Lightning imports."""

from hdf_lightning.optim.sam import SAM, ClosureSAM, frozen_bn_stats, gradient_norm
from hdf_lightning.optim.schedulers import warmup_cosine_schedule

__all__ = ["SAM", "ClosureSAM", "frozen_bn_stats", "gradient_norm", "warmup_cosine_schedule"]
