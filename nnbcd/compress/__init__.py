"""Compression specs a user writes per layer: :class:`TT` (tensor train), :class:`Prune` (top-k).

A spec is a :class:`Compression`: ``project(W, *, backend=None, weights=None)`` returns the
:class:`Compressed` copy :math:`\\tilde W = \\Pi(W)`; :func:`compression_ratios` does the accounting.
"""
from .accounting import compression_ratios
from .base import Compressed, Compression
from .prune import Prune
from .tt import TT

__all__ = ["Compressed", "Compression", "Prune", "TT", "compression_ratios"]
