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

from ..backend import Backend


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
    """A compression spec: a projection onto a feasible set and its accounting.

    Subclasses implement :meth:`project`; the solver calls ``spec.project(W, backend=be, weights=...)``
    after each W-block of a compressed layer, and :meth:`initial` once before the first sweep.
    """

    #: ``True`` when the solver must overwrite :math:`W_i` by :math:`\tilde W_i` after the block
    #: (the reference's projected pruning, ``Prune(mode="projected")``); the τ term is then 0.
    replaces_weight: bool = False

    @abstractmethod
    def project(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        r"""The projection :math:`\tilde W = \Pi(W)` onto this spec's feasible set.

        Parameters
        ----------
        W : array, shape (d_out, d_in), float32 or float64
            The weight matrix, on the backend.
        backend : {"numpy", "numba", "cupy"} or Backend, optional
            Default: the backend of ``W`` (:func:`nnbcd.backend.infer_backend`).
        weights : sequence of arrays, optional
            The current weights of all layers sharing this spec object (``W`` among them, by identity),
            for specs with a global scope; ``None`` for a per-layer spec.

        Returns
        -------
        Compressed
            ``dense`` has ``W``'s shape, dtype and backend.
        """

    def initial(self, W: Any, *, backend: "str | Backend | None" = None,
                weights: Optional[Sequence[Any]] = None) -> Compressed:
        r"""The initial compressed copy :math:`\tilde W^0` (by default :meth:`project`); same arguments."""
        return self.project(W, backend=backend, weights=weights)

    def validate(self, shape: tuple, name: str) -> None:
        """Check that this spec can compress a matrix of ``shape`` (d_out, d_in).

        Raises
        ------
        ValueError
            If it cannot; the message starts with ``name`` (e.g. ``"compress[0]"``).
        """

    def export(self, compressed: Compressed) -> Any:
        """The compressed layer in its storage form (TT cores, ``scipy.sparse`` matrix, ...), on the host."""
        return compressed.factors
