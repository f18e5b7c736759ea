"""NN-BCD state and hyperparameters.

Layers are numbered ``0..L-1`` (Python list indices); layer ``i`` is the paper's layer ``i+1``, with weight
:math:`W_{i+1}`. Samples are columns: ``U[i]``, ``V[i]`` are ``d_{i+1} × N``; ``V[L-1]`` is the linear
output variable.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ..compress.base import Compressed, Compression
from ..schedules import Schedule
from .conv import InputConv2d

#: A hyperparameter as the solver holds it: a plain number, or a schedule of values per sweep.
Scheduled = Union[float, Schedule]


def value_at(value: Scheduled, sweep: int) -> float:
    """The value of a number or schedule in sweep ``sweep`` (1-based)."""
    return value.value(sweep) if isinstance(value, Schedule) else value


def last_change(froms: Iterable[Optional[int]]) -> Optional[int]:
    """The first sweep from which all of several settle (``max``), ``None`` if one never does."""
    froms = list(froms)
    return None if any(f is None for f in froms) else max(froms, default=1)


@dataclass(frozen=True)
class Hyper:
    r"""Scalar weights of the objective, already resolved for ``loss_scale``.

    Parameters
    ----------
    gamma, rho, alpha : float
        γ (activation coupling), ρ (linear coupling), α (prox weight of the V_L and U_i blocks).
    alpha_w, alpha_b : float
        Prox weights of the W and bias blocks.
    kappa : float
        :math:`\kappa`: 1 for ``loss_scale="sum"``, :math:`1/N` for ``"mean"``; in every W/b update
        :math:`\rho` is replaced by :attr:`rho_w` :math:`=\kappa\rho` (spec §2).
    relaxation : float
        Over-relaxation factor ω ∈ [1, 2) of the blocks whose sub-problem is a convex quadratic
        (see :mod:`nnbcd.bcd.blocks`); 1: the exact minimisers (the paper).
    """

    gamma: float
    rho: float
    alpha: float
    alpha_w: float
    alpha_b: float
    kappa: float
    relaxation: float = 1.0

    @property
    def rho_w(self) -> float:
        r""":math:`\kappa\rho`, the linear coupling as the W/b blocks see it."""
        return self.kappa * self.rho


@dataclass(frozen=True)
class Schedules:
    """The hyperparameters that may change from sweep to sweep (numbers or :class:`~nnbcd.schedules.Schedule`).

    Parameters
    ----------
    gamma, rho : float or Schedule
    tau : dict of int to (float or Schedule)
        τ of each layer with the projection block (0 for no coupling).
    alpha, alpha_w, alpha_b : float or Schedule, optional
        The prox weights α (V_L and U blocks), α_W and α_b; ``None`` keeps the base :class:`Hyper`'s value
        (``alpha_w``, ``alpha_b`` are the same object as ``alpha`` when they default to it).
    relaxation : float
        The over-relaxation factor ω of every sweep (a number: it takes no schedule).
    """

    gamma: Scheduled
    rho: Scheduled
    tau: Dict[int, Scheduled]
    alpha: Optional[Scheduled] = None
    alpha_w: Optional[Scheduled] = None
    alpha_b: Optional[Scheduled] = None
    relaxation: float = 1.0

    def hyper(self, base: Hyper, sweep: int) -> Hyper:
        """``base`` with γ, ρ (and the α's that are given) of sweep ``sweep``, and ω."""
        alphas = {name: value_at(v, sweep) for name, v in
                  (("alpha", self.alpha), ("alpha_w", self.alpha_w), ("alpha_b", self.alpha_b)) if v is not None}
        return replace(base, gamma=value_at(self.gamma, sweep), rho=value_at(self.rho, sweep),
                       relaxation=self.relaxation, **alphas)

    def tau_at(self, sweep: int) -> Dict[int, float]:
        """τ of each projection-block layer in sweep ``sweep``."""
        return {i: value_at(t, sweep) for i, t in self.tau.items()}

    def record(self, sweep: int) -> Dict[str, float]:
        """``gamma``, ``rho``, ``alpha`` (when given; ``alpha_w``, ``alpha_b`` when given apart from it),
        ``relaxation`` (when not 1) and ``tau_i``: the values of sweep ``sweep``, for the history."""
        rec = {"gamma": value_at(self.gamma, sweep), "rho": value_at(self.rho, sweep)}
        if self.relaxation != 1.0:
            rec["relaxation"] = self.relaxation
        if self.alpha is not None:
            rec["alpha"] = value_at(self.alpha, sweep)
        for name, v in (("alpha_w", self.alpha_w), ("alpha_b", self.alpha_b)):
            if v is not None and v is not self.alpha:
                rec[name] = value_at(v, sweep)
        rec.update({f"tau_{i}": t for i, t in self.tau_at(sweep).items()})
        return rec

    @property
    def constant_from(self) -> Optional[int]:
        """The first sweep from which none of these values changes (``None`` if one never settles)."""
        values = (self.gamma, self.rho, self.alpha, self.alpha_w, self.alpha_b, *self.tau.values())
        return last_change(v.constant_from if isinstance(v, Schedule) else 1 for v in values)


@dataclass
class BCDState:
    """All blocks of one NN-BCD iterate (arrays live on the solver's backend, one dtype).

    Parameters
    ----------
    W : list of arrays, shape (d_{i+1}, d_i)
        Weights of layers ``0..L-1`` (for a conv first layer, ``W[0]`` is the kernel :math:`Z^T`, F × P).
    b : list of (array of shape (d_{i+1},) or None)
        Biases (per filter for a conv first layer); ``None`` when trained without.
    U, V : list of arrays, shape (d_{i+1}, N)
        Pre-activations and activations; ``V[L-1]`` is the linear output variable.
    X : array, shape (d_0, N)
        Inputs as columns.
    Y : array, shape (d_L, N)
        One-hot targets.
    compress : dict of int to Compression
        The compression spec of each compressed layer.
    tau : dict of int to float
        τ of each layer with the projection block, in the sweep in progress.
    Wt : dict of int to Compressed
        The compressed copy :math:`\\tilde W_i` of each compressed layer.
    conv : InputConv2d, optional
        The convolutional first layer.
    patches : array, shape (P, N·H'W'), optional
        The conv layer's constant patch matrix :math:`\\hat X^T`.
    sweep : int
        The sweep in progress (1-based; 0 before the first): scheduled values and structure
        re-selections of the compression specs depend on it.
    """

    W: List[Any]
    b: List[Optional[Any]]
    U: List[Any]
    V: List[Any]
    X: Any
    Y: Any
    compress: Dict[int, Compression] = field(default_factory=dict)
    tau: Dict[int, float] = field(default_factory=dict)
    Wt: Dict[int, Compressed] = field(default_factory=dict)
    conv: Optional[InputConv2d] = None
    patches: Any = None
    sweep: int = 0

    @property
    def n_layers(self) -> int:
        """L, the number of weight layers."""
        return len(self.W)

    @property
    def n_samples(self) -> int:
        """N, the number of training samples."""
        return self.X.shape[1]

    @property
    def exact_layers(self) -> Tuple[int, ...]:
        """The compressed layers whose W-block is an exact block on the compressed form in the sweep in
        progress (in the initial state: those exact from the first sweep)."""
        return tuple(i for i, spec in self.compress.items() if spec.exact_at(max(self.sweep, 1)))

    def v_in(self, i: int) -> Any:
        """Input of layer ``i``: :math:`V_{i-1}` in the paper's numbering of layer ``i+1``; ``X`` for layer 0."""
        return self.X if i == 0 else self.V[i - 1]

    def linear(self, i: int, be: Any, out: Any = None) -> Any:
        """The product of layer ``i``'s weight and input, without the bias.

        Parameters
        ----------
        i : int
            Layer ``0..L-1``.
        be : Backend
        out : array, shape (d_{i+1}, N), optional
            Written in place when given.

        Returns
        -------
        array, shape (d_{i+1}, N)
            :math:`W_{i+1}V_i` (paper numbering) in the layer's feature layout.
        """
        if i == 0 and self.conv is not None:
            return self.conv.to_features(be.matmul(self.W[0], self.patches), out)
        return be.matmul(self.W[i], self.v_in(i), out=out)

    def bias_rows(self, i: int, be: Any) -> Optional[Any]:
        """The bias of each feature row of layer ``i`` (a conv layer's per-filter bias repeated over patches).

        Returns
        -------
        array of shape (d_{i+1},) or None
        """
        b = self.b[i]
        if b is None or i != 0 or self.conv is None:
            return b
        return self.conv.bias_rows(b, be.xp)

    def weight_data(self, i: int) -> Tuple[Any, Any]:
        r"""``(U, V)`` of layer ``i``'s W-block least-squares problem :math:`\min \|U - WV - b1^T\|`.

        Returns
        -------
        (array, array)
            ``(U[i], v_in(i))``, or for a conv layer 0 the pre-activations in patch layout and
            :math:`\hat X^T`.
        """
        if i == 0 and self.conv is not None:
            return self.conv.to_patch_layout(self.U[0]), self.patches
        return self.U[i], self.v_in(i)

    def weight_input(self, i: int) -> Any:
        """The ``V`` of :meth:`weight_data` alone (no copy): ``v_in(i)``, or :math:`\\hat X^T` for a conv layer 0."""
        return self.patches if i == 0 and self.conv is not None else self.v_in(i)

    def deployed(self, i: int) -> Any:
        """The weight of layer ``i`` the deployed network uses: the compressed copy for compressed layers."""
        return self.Wt[i].dense if i in self.Wt else self.W[i]

    def group(self, i: int) -> Optional[List[Any]]:
        """The current weights of every layer that shares layer ``i``'s compression spec.

        One spec object given to several layers is one group (e.g. a global pruning budget); its
        projection sees all of them.

        Returns
        -------
        list of arrays or None
            ``None`` when layer ``i``'s spec compresses layer ``i`` alone.
        """
        spec = self.compress[i]
        shared = [w for j, w in enumerate(self.W) if self.compress.get(j) is spec]
        return shared if len(shared) > 1 else None
