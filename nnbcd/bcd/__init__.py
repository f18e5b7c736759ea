"""NN-BCD: state, block updates, the sweep, objective terms and the solver."""
from .conv import Conv2d
from .solver import NNBCD, solve

__all__ = ["Conv2d", "NNBCD", "solve"]
