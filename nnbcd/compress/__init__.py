"""Compression specs a user writes per layer: :class:`TT` (tensor train), :class:`Prune` (top-k)."""
from .accounting import compression_ratios
from .base import Compressed, Compression
from .prune import Prune
from .tt import TT

__all__ = ["Compressed", "Compression", "Prune", "TT", "compression_ratios"]
