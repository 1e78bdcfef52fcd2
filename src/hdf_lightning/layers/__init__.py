"""Plain ``nn.Module`` layers: DAM, its DCT basis and a helper to insert DAM into any backbone."""

from hdf_lightning.layers.dam import DAM, DAMMaps, channel_bins, dam_maps
from hdf_lightning.layers.dct import dct_basis_7x7
from hdf_lightning.layers.plug import DAMAfter, insert_dam

__all__ = ["DAM", "DAMAfter", "DAMMaps", "channel_bins", "dam_maps", "dct_basis_7x7", "insert_dam"]
