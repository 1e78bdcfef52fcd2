"""Plain ``nn.Module`` layers: DAM, its DCT basis and a helper to insert DAM into any backbone."""

from hdf_lightning.layers.dam import DAM, channel_bins
from hdf_lightning.layers.dct import dct_basis_7x7
from hdf_lightning.layers.plug import DAMAfter, insert_dam

__all__ = ["DAM", "DAMAfter", "channel_bins", "dct_basis_7x7", "insert_dam"]
