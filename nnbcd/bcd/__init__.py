"""NN-BCD: state, the block table and sweep, objective terms, the run loop and the estimator.

Layers are numbered ``0..L-1``; layer ``i`` is the paper's :math:`W_{i+1}`.
"""
from .conv import InputConv2d
from .estimator import NNBCD, solve

__all__ = ["InputConv2d", "NNBCD", "solve"]
