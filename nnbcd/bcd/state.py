"""NN-BCD state and hyperparameters.

Layers are indexed ``0..L-1`` in code; code layer ``i`` is the paper's layer ``i+1`` (``W_{i+1}``).
Samples are columns: ``U[i]``, ``V[i]`` are ``d_{i+1} × N``; ``V[L-1]`` is the linear output variable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..compress.base import Compressed, Compression
from .conv import Conv2d


@dataclass(frozen=True)
class Hyper:
    r"""Scalar weights of the objective, already resolved for ``loss_scale``.

    ``kappa`` is :math:`\kappa` (1 for ``'sum'``, :math:`1/N` for ``'mean'``); in every W/b update
    :math:`\rho` is replaced by ``rho_w`` :math:`=\kappa\rho` (spec §2).
    """

    gamma: float
    rho: float
    alpha: float
    alpha_w: float
    alpha_b: float
    kappa: float

    @property
    def rho_w(self) -> float:
        return self.kappa * self.rho


@dataclass
class BCDState:
    """All blocks of one NN-BCD iterate (arrays live on the solver's backend)."""

    W: List[Any]
    b: List[Optional[Any]]
    U: List[Any]
    V: List[Any]
    X: Any
    Y: Any
    compress: Dict[int, Compression] = field(default_factory=dict)
    tau: Dict[int, float] = field(default_factory=dict)
    Wt: Dict[int, Compressed] = field(default_factory=dict)
    conv: Optional[Conv2d] = None
    patches: Any = None  # the conv layer's constant patch matrix X^T (P × N H'W')

    @property
    def n_layers(self) -> int:
        return len(self.W)

    @property
    def n_samples(self) -> int:
        return self.X.shape[1]

    def v_in(self, i: int) -> Any:
        """Input of code layer ``i``: :math:`V_{i-1}` in the paper (``X`` for the first layer)."""
        return self.X if i == 0 else self.V[i - 1]

    def linear(self, i: int, be: Any, out: Any = None) -> Any:
        """:math:`W_i V_{i-1}` in the layer's feature layout (d_i × N), without the bias."""
        if i == 0 and self.conv is not None:
            return self.conv.to_features(be.matmul(self.W[0], self.patches), out)
        return be.matmul(self.W[i], self.v_in(i), out=out)

    def bias_rows(self, i: int, be: Any) -> Optional[Any]:
        """The bias of each feature row of layer ``i`` (per-filter biases repeated for the conv layer)."""
        b = self.b[i]
        if b is None or i != 0 or self.conv is None:
            return b
        return self.conv.bias_rows(b, be.xp)

    def weight_data(self, i: int) -> tuple:
        r"""``(U, V)`` of the W-block's least-squares problem :math:`\min \|U - WV - b1^T\|`."""
        if i == 0 and self.conv is not None:
            return self.conv.to_patch_layout(self.U[0]), self.patches
        return self.U[i], self.v_in(i)

    def deployed(self, i: int) -> Any:
        """The weight the deployed network uses: the compressed copy for compressed layers."""
        return self.Wt[i].dense if i in self.Wt else self.W[i]
