"""Lightning orchestration: the LightningModule that wires network, loss and SAM."""

from hdf_lightning.lit.module import HDFClassifier

__all__ = ["HDFClassifier"]
