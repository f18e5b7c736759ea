"""NN-BCD: state, block updates, the sweep, objective terms and the solver."""
from .solver import NNBCD, solve

__all__ = ["NNBCD", "solve"]
