"""Sample-sharded NN-BCD on Dask (``pip install nnbcd[dask]``): :class:`DaskNNBCD` (docs/dask.md)."""
from .estimator import DaskNNBCD

__all__ = ["DaskNNBCD"]
