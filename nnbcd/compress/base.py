r"""The seam between the NN-BCD solver and a compression block.

The solver owns the coupling :math:`\tfrac\tau2\|W_i - \tilde W_i\|^2`; a :class:`Compression` owns the
projection :math:`\tilde W_i = \Pi(W_i)` onto its feasible set (TT rank :math:`\le r`, at most
:math:`k` non-zeros, ...). After each :math:`W_i` update of a compressed layer the solver calls
:meth:`Compression.project` with the new :math:`W_i` and stores the returned :class:`Compressed`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence


@dataclass
class Compressed:
    """One compressed copy of a weight matrix.

    Attributes
    ----------
    dense : array
        :math:`\\tilde W` as a dense array on the solver's backend, same shape and dtype as ``W``.
    n_params : int
        Numbers stored for this layer in compressed form (e.g. :math:`\\sum_t r_{t-1} n_t r_t`, or nnz).
    info : dict
        Realised ranks, sparsity, ... (recorded in the solver's history).
    factors : Any
        What :meth:`Compression.export` needs (TT cores, the sparse mask, ...).
    """

    dense: Any
    n_params: int
    info: Dict[str, Any] = field(default_factory=dict)
    factors: Any = None


class Compression(ABC):
    """A compression spec: a projection onto a feasible set and its accounting."""

    #: ``True`` when the solver must overwrite :math:`W_i` by :math:`\tilde W_i` after the block
    #: (the reference's projected pruning, ``Prune(mode="projected")``); the τ term is then 0.
    replaces_weight: bool = False

    @abstractmethod
    def project(self, W: Any, backend: Any, weights: Optional[Sequence[Any]] = None) -> Compressed:
        """Return :math:`\\Pi(W)`. ``weights``: current weights of all layers sharing this spec
        (for global scopes); ``None`` for per-layer specs."""

    def initial(self, W: Any, backend: Any, weights: Optional[Sequence[Any]] = None) -> Compressed:
        """The initial compressed copy :math:`\\tilde W^0` (defaults to :meth:`project`)."""
        return self.project(W, backend, weights)

    def validate(self, shape: tuple, name: str) -> None:
        """Raise ``ValueError`` naming ``name`` if this spec cannot compress a matrix of ``shape``."""

    def export(self, compressed: Compressed) -> Any:
        """The compressed layer in its storage form (TT cores, ``scipy.sparse`` matrix, ...)."""
        return compressed.factors
