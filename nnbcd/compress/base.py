r"""The seam between the NN-BCD solver and a compression block.

A :class:`Compression` owns the projection :math:`\tilde W_i = \Pi(W_i)` onto its feasible set (TT rank
:math:`\le r`, at most :math:`k` non-zeros, ...) and, optionally, an exact W-block on the compressed form.
Its ``block`` says which W-block a layer gets:

* ``"projection"`` (the paper's algorithm): the solver owns the coupling
  :math:`\tfrac\tau2\|W_i - \tilde W_i\|^2`; after each :math:`W_i` update it calls
  :meth:`Compression.project` with the new :math:`W_i` and stores the returned :class:`Compressed`;
* an exact block (``Prune(block="masked")``, ``TT(block="cores")``, beyond the paper): :math:`W_i` *is* the
  compressed weight; the W-block minimises the layer's least-squares term plus the prox over the
  compressed parametrisation (:meth:`Compression.exact_update`), so there is no τ term and the
  deployed network is the trained one. On the sweeps where :meth:`Compression.reselects` is true the
  structure (support, TT ranks) is first re-chosen by the projection of the dense W-block's step.

Scheduled parameters (a rank cap or sparsity given as a :class:`~nnbcd.schedules.Schedule`) are resolved
per sweep by :meth:`Compression.at`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import copy
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional, Sequence

from ..backend import Backend
from ..schedules import Schedule


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
        What :meth:`Compression.export` needs (TT cores, the pruned weight, ...).
    support : array of bool, optional
        The kept entries of a pruned copy (exactly the kept count, also where a kept weight is 0).
    """

    dense: Any
    n_params: int
    info: Dict[str, Any] = field(default_factory=dict)
    factors: Any = None
    support: Any = None


class ExactStep(NamedTuple):
    r"""The result of :meth:`Compression.exact_update`.

    Attributes
    ----------
    compressed : Compressed
        The new compressed weight; its ``dense`` is the layer's new :math:`W_i`.
    b : array or None
        The new bias (``None`` for a layer without one).
    step_sq : float
        The squared step of the block's sub-blocks, summed: :math:`\|W^{k+1}-W^k\|^2` for one block,
        :math:`\sum_t\|W^{(t+1)}-W^{(t)}\|^2` over the cores of a TT sweep (each core step is a prox step of
        its own). The bias step is not included.
    """

    compressed: Compressed
    b: Optional[Any]
    step_sq: float


#: The W-block kinds: the paper's projection + τ coupling, and the exact blocks on the compressed form.
BLOCKS = ("projection", "masked", "cores")


def check_reselection(reselect_every: Any, freeze_after: Any, exact_from: Any, block: str) -> None:
    """Check ``reselect_every`` / ``freeze_after`` (positive ints or ``None``) and ``exact_from`` (a positive
    int, > 1 only for an exact ``block``), naming the argument.

    Raises
    ------
    ValueError
        For a value that is not a positive int, ``freeze_after`` without ``reselect_every``, or
        ``exact_from`` > 1 with ``block="projection"``.
    """
    for name, value in (("reselect_every", reselect_every), ("freeze_after", freeze_after),
                        ("exact_from", exact_from)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise ValueError(f"{name} must be a positive int{'' if name == 'exact_from' else ' or None'}, "
                             f"got {value!r}")
    if exact_from is None:
        raise ValueError("exact_from must be a positive int, got None")
    if freeze_after is not None and reselect_every is None:
        raise ValueError("freeze_after needs reselect_every (the structure is only re-chosen on that schedule)")
    if exact_from > 1 and block == "projection":
        raise ValueError("exact_from belongs to an exact block (block='cores' / 'masked'): the sweep from which "
                         "it replaces the projection block")


class Compression(ABC):
    """A compression spec: a projection onto a feasible set and its accounting.

    Subclasses implement :meth:`project`; the solver calls ``spec.project(W, backend=be, weights=...)``
    after each W-block of a compressed layer, and :meth:`initial` once before the first sweep.
    """

    #: ``True`` when the solver must overwrite :math:`W_i` by :math:`\tilde W_i` after the block
    #: (the reference's projected pruning, ``Prune(mode="projected")``); the τ term is then 0.
    replaces_weight: bool = False

    #: The layer's W-block, one of :data:`BLOCKS`.
    block: str = "projection"

    #: Re-choose the structure every this many sweeps (sweeps ``e, 2e, ...``), up to ``freeze_after``.
    reselect_every: Optional[int] = None

    #: The last sweep at which the structure may be re-chosen by ``reselect_every``.
    freeze_after: Optional[int] = None

    #: The sweep from which an exact block replaces the projection block (before it: the paper's W-block,
    #: τ coupling and projection, e.g. a warm-up with a rank cap or τ on a schedule).
    exact_from: int = 1

    @property
    def exact(self) -> bool:
        """Whether the layer's W-block is (eventually) an exact block on the compressed form (no τ term)."""
        return self.block != "projection"

    def exact_at(self, sweep: int) -> bool:
        """Whether the exact block is the layer's W-block in sweep ``sweep`` (``sweep ≥ exact_from``)."""
        return self.exact and sweep >= self.exact_from

    def scheduled(self) -> Dict[str, Any]:
        """The parameters given as schedules, by name (``{"rank": Geometric(...)}``); ``{}`` by default.

        Subclasses list theirs; :meth:`at`, :meth:`reselects` and :attr:`constant_from` derive from it.
        """
        return {}

    def at(self, sweep: int, previous: Optional[Compressed] = None) -> "Compression":
        """This spec as it is in sweep ``sweep`` (1-based): every schedule replaced by its value.

        Parameters
        ----------
        sweep : int
            The sweep, ≥ 1.
        previous : Compressed, optional
            The layer's current compressed weight, for structure that is kept between re-selections
            (e.g. ranks chosen from the data).

        Returns
        -------
        Compression
            ``self`` when nothing is scheduled, else a shallow copy with plain values.
        """
        values = {name: s.value(sweep) for name, s in self.scheduled().items()}
        if not values:
            return self
        spec = copy.copy(self)
        spec.__dict__.update(values)
        return spec

    def reselects(self, sweep: int) -> bool:
        """Whether an exact block re-chooses the structure in sweep ``sweep``: the sweep it takes over from
        the projection block (``exact_from`` > 1), a scheduled value changes from the previous sweep, or
        ``sweep`` is a multiple of ``reselect_every`` not after ``freeze_after``."""
        if sweep == self.exact_from > 1:
            return True
        if sweep > 1 and any(s.value(sweep) != s.value(sweep - 1) for s in self.scheduled().values()):
            return True
        every, last = self.reselect_every, self.freeze_after
        return every is not None and sweep % every == 0 and (last is None or sweep <= last)

    @property
    def constant_from(self) -> Optional[int]:
        """The first sweep from which neither a scheduled value nor the structure nor the block changes any
        more (``None`` if that never happens): the objective is the same function from that sweep's record
        on."""
        froms = [s.constant_from for s in self.scheduled().values()] + [self.exact_from]
        if self.reselect_every is not None:
            froms.append(None if self.freeze_after is None
                         else max(1, self.freeze_after - self.freeze_after % self.reselect_every))
        if any(f is None for f in froms):
            return None
        return max(froms, default=1)

    def record(self, compressed: Compressed) -> Dict[str, float]:
        """Values of this (resolved, :meth:`at`) spec to record in the history each sweep, by name
        (e.g. ``{"rank": 10}``); ``compressed`` is the layer's copy after the sweep. ``{}`` by default."""
        return {}

    def exact_update(self, current: Compressed, R: Any, G: Any, rho: float, alpha: float, *,
                     bias: Any = None, relaxation: float = 1.0,
                     backend: "str | Backend | None" = None) -> ExactStep:
        r"""The exact W-block on the compressed form (only for specs with an exact ``block``).

        Minimises :math:`\tfrac\rho2(\mathrm{tr}(WGW^T) - 2\langle W, R\rangle) + \tfrac\alpha2\|W-W^k\|^2`
        (the layer's :math:`\tfrac\rho2\|U - WV - b1^T\|^2` up to a constant, with the prox) over the
        compressed parametrisation, with the bias eliminated exactly when given.

        Parameters
        ----------
        current : Compressed
            The layer's compressed weight :math:`W^k` (the prox centre).
        R : array, shape (d_out, d_in)
            :math:`UV^T`.
        G : array, shape (d_in, d_in)
            :math:`VV^T`.
        rho, alpha : float
            Coupling (already :math:`\kappa\rho`) and prox weights, > 0.
        bias : BiasTerm, optional
            The layer's bias statistics (:class:`nnbcd.compress.masked.BiasTerm`).
        relaxation : float
            Over-relaxation factor ω ∈ [1, 2): each exact sub-block step (a TT core, the pruned weight
            with its bias) becomes :math:`X^k + \omega(X^* - X^k)`
            (:meth:`~nnbcd.backend.Backend.over_relax`), which still lowers the objective by at least
            :math:`\tfrac\alpha\omega\|X^{k+1} - X^k\|^2`. 1: the exact minimiser.
        backend : {"numpy", "numba", "cupy"} or Backend, optional
            Default: the backend of ``R``.

        Returns
        -------
        ExactStep

        Raises
        ------
        NotImplementedError
            For a spec whose block is ``"projection"``.
        ValueError
            ``relaxation`` not in [1, 2).
        """
        raise NotImplementedError(f"{type(self).__name__} with block={self.block!r} has no exact W-block")

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
