"""Compression specs a user writes per layer: :class:`TT`, :class:`Prune` (and low-rank in the torch bridge)."""
from .base import Compressed, Compression

__all__ = ["Compressed", "Compression"]
