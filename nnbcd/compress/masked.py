r"""The exact W-block of a pruned layer, restricted to a fixed support (beyond the paper).

The W-block of layer i minimises, over W (and the bias b when the layer has one),

.. math:: \tfrac\rho2\|U - WV - b1^T\|^2 + \tfrac\alpha2\|W - W^k\|^2 + \tfrac{\alpha_b}2\|b - b^k\|^2 .

Expanding the square, only the Grams enter: with :math:`R = UV^T` and :math:`G = VV^T` (the two
N-sized GEMMs, done by the caller),

.. math:: \tfrac\rho2\big(\mathrm{tr}(WGW^T) - 2\langle W, R\rangle\big) + \tfrac\alpha2\|W - W^k\|^2
          + \text{(bias terms)} + \text{const}.

Restricted to ``W[~mask] = 0`` the rows decouple (each row's residual involves only that row and its
own bias entry); row j with support S solves

.. math:: w_S = (\rho R_{j,S} + \alpha w^k_S)(\rho G_{S,S} + \alpha I)^{-1},

an SPD system of size :math:`|S|`. A bias is eliminated exactly first (:class:`BiasTerm`), which turns
:math:`(R, G)` into :math:`(R', G')` of the same shapes; the same reduction serves the TT-core block
(:mod:`nnbcd.compress.tt_cores`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from .._validation import check_positive
from ..backend import Backend, infer_backend

__all__ = ["BiasTerm", "WBlockUpdate", "masked_weight_update"]

#: Support sizes up to this are padded into size groups and solved as stacked systems (one gufunc call
#: per group: per-call overhead dominates small systems); larger ones are solved row by row through the
#: backend's Cholesky, where the O(|S|^3) work dominates and BLAS stays in the backend's library
#: (benchmarks/bench_exact_blocks.py measures both against the per-row loop).
_STACK_MAX = 64


class WBlockUpdate(NamedTuple):
    """The new weight and bias of an exact W-block (``b`` is ``None`` for a layer without bias)."""

    W: Any
    b: Optional[Any]


@dataclass(frozen=True)
class BiasTerm:
    r"""The bias part of a W-block, eliminated exactly by a Schur complement.

    With :math:`c = \rho N + \alpha_b` and :math:`\beta = \rho u + \alpha_b b^k`, the minimiser over b for
    a fixed W is :math:`b(W) = (\beta - \rho W s)/c`; substituting it leaves a quadratic in W alone,

    .. math:: \tfrac\rho2\,\mathrm{tr}(W G' W^T) - \rho\langle W, R'\rangle + \text{const},\qquad
              G' = G - \tfrac\rho c\, s s^T,\quad R' = R - \tfrac1c\, \beta s^T,

    (:math:`\rho G'` is the Schur complement of the bias entry in the augmented Gram
    :math:`\rho[V;1^T][V;1^T]^T + \mathrm{diag}(0, \alpha_b)`, so :math:`G' \succeq 0`). Minimising the
    reduced quadratic over any linear parametrisation of W (a support, TT cores) and then setting
    :math:`b = b(W)` is the exact joint minimiser over (W, b).

    Attributes
    ----------
    b : array, shape (d_out,)
        :math:`b^k`, the bias before the block.
    s : array, shape (d_in,)
        :math:`V 1`, the row sums of the layer's input.
    u : array, shape (d_out,)
        :math:`U 1`, the row sums of the pre-activations.
    n : int or float
        N, the number of samples (the squared norm of the ones vector).
    alpha_b : float
        The bias prox weight :math:`\alpha_b > 0`.
    """

    b: Any
    s: Any
    u: Any
    n: float
    alpha_b: float

    def _c(self, rho: float) -> float:
        return rho * float(self.n) + check_positive(self.alpha_b, "alpha_b")

    def reduce(self, R: Any, G: Any, rho: float) -> Tuple[Any, Any]:
        """``(R', G')`` of the reduced quadratic (new arrays; the inputs are not modified; elementwise
        work only, on the arrays' own module).

        Raises
        ------
        ValueError
            If the bias statistics do not match ``R`` (d_out × d_in) and ``G`` (d_in × d_in).
        """
        d_out, d_in = R.shape
        if tuple(self.b.shape) != (d_out,) or tuple(self.u.shape) != (d_out,) or tuple(self.s.shape) != (d_in,):
            raise ValueError(f"bias: b, u must have shape ({d_out},) and s shape ({d_in},), got "
                             f"{self.b.shape}, {self.u.shape}, {self.s.shape}")
        check_positive(self.n, "bias.n")
        c = self._c(rho)
        beta = rho * self.u + self.alpha_b * self.b
        return R - (beta / c)[:, None] * self.s[None, :], G - (rho / c) * (self.s[:, None] * self.s[None, :])

    def solve(self, W: Any, rho: float, *, backend: "str | Backend | None" = None) -> Any:
        r""":math:`b(W) = (\rho u + \alpha_b b^k - \rho W s)/(\rho N + \alpha_b)`.

        ``backend`` (default: inferred from ``W``) does the product :math:`Ws`.
        """
        be = infer_backend(W, backend=backend)
        ws = be.matmul(W, self.s.reshape(-1, 1)).reshape(-1)
        return (rho * self.u + self.alpha_b * self.b - rho * ws) / self._c(rho)


def _padded_size(k: np.ndarray) -> np.ndarray:
    """Group sizes: exact up to 16, then rounded up to a multiple of 2^(bit_length(k) - 4), so padding
    adds less than 1/8 of a row's size (< 1.42× its solve's flops) while there are at most 8 groups per
    doubling of the size."""
    bits = np.array([int(x).bit_length() for x in k], dtype=np.int64).reshape(np.shape(k))
    step = np.where(k <= 16, 1, 2 ** np.maximum(bits - 4, 0))
    return -(-k // step) * step


def _check_block(R: Any, G: Any, W: Any, rho: Any, alpha: Any) -> Tuple[float, float]:
    if R.ndim != 2 or tuple(W.shape) != tuple(R.shape) or tuple(G.shape) != (R.shape[1], R.shape[1]):
        raise ValueError(f"R and W must be d_out × d_in and G d_in × d_in, got R {R.shape}, W {W.shape}, "
                         f"G {G.shape}")
    if not (R.dtype == G.dtype == W.dtype):
        raise TypeError(f"R, G and W must share one dtype, got {R.dtype}, {G.dtype}, {W.dtype}")
    return check_positive(rho, "rho"), check_positive(alpha, "alpha")


def masked_weight_update(R: Any, G: Any, W: Any, mask: Any, rho: float, alpha: float, *,
                         bias: Optional[BiasTerm] = None,
                         backend: "str | Backend | None" = None) -> WBlockUpdate:
    r"""Exact minimiser of the W-block over weights with a fixed support.

    .. math:: \min_{W:\ W[\neg M]=0,\ b}\ \tfrac\rho2\|U - WV - b1^T\|^2 + \tfrac\alpha2\|W - W^k\|^2
              + \tfrac{\alpha_b}2\|b - b^k\|^2

    Row j with support :math:`S = \{l : M_{jl}\}`:
    :math:`w_S = (\rho R'_{j,S} + \alpha w^k_S)(\rho G'_{S,S} + \alpha I)^{-1}`, with
    :math:`(R', G') = (R, G)` without a bias and the Schur-reduced statistics of :class:`BiasTerm` with
    one; then :math:`b = b(W)`. Rows with an empty support are zero. Entries of :math:`W^k` outside the
    mask do not matter.

    Rows are grouped by support size (padded by less than 1/8, see :func:`_padded_size`); each group up
    to size 64 is one stacked solve (the padding is an identity block with a zero right-hand side, so
    the padded unknowns are exactly 0); larger supports are solved one row at a time by the backend's
    Cholesky. The cost is :math:`\sum_j |S_j|^3/3` (about :math:`d_{out}(q'd_{in})^3/3` at a kept
    fraction :math:`q'`): below the dense block's :math:`d_{in}^3/3 + d_{out}d_{in}^2` for strong
    pruning, above it for weak pruning.

    Parameters
    ----------
    R : array, shape (d_out, d_in), float32 or float64
        :math:`U V^T` (the caller's GEMM; scaled as the solver's ρ is, see spec §2).
    G : array, shape (d_in, d_in), same dtype
        :math:`V V^T`.
    W : array, shape (d_out, d_in), same dtype
        :math:`W^k`, the prox centre.
    mask : array of bool, shape (d_out, d_in)
        The support (True = kept).
    rho, alpha : float
        Coupling and prox weights, finite and > 0 (α > 0 makes every row system SPD).
    bias : BiasTerm, optional
        The layer's bias statistics; then the bias is updated jointly and exactly.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``R``, ``G``, ``W`` (:func:`nnbcd.backend.infer_backend`).

    Returns
    -------
    WBlockUpdate
        ``W`` (zero outside the mask) and ``b`` (``None`` without a bias), new arrays.

    Raises
    ------
    ValueError
        Shapes that do not match, ``rho``/``alpha`` not finite and > 0, a non-boolean mask.
    TypeError
        If ``R``, ``G``, ``W`` differ in dtype.
    numpy.linalg.LinAlgError
        If a row system is not positive definite (non-finite statistics).
    """
    be = infer_backend(R, G, W, backend=backend)
    xp = be.xp
    rho, alpha = _check_block(R, G, W, rho, alpha)
    if tuple(mask.shape) != tuple(W.shape) or mask.dtype != bool:
        raise ValueError(f"mask must be a boolean array of shape {tuple(W.shape)}, got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    if bias is not None:
        R, G = bias.reduce(R, G, rho)
    M = rho * G
    be.add_diag(M, alpha)
    F = rho * R + alpha * W
    counts = be.to_numpy(mask.sum(axis=1)).astype(np.int64)
    sizes = np.where(counts <= _STACK_MAX, _padded_size(counts), counts)
    out = xp.zeros_like(W)
    for k in np.unique(sizes[counts > 0]):
        rows = np.flatnonzero(sizes == k)
        if k > _STACK_MAX:
            for j in rows:
                cols = xp.flatnonzero(mask[j])
                factor = be.cho_factor(M[cols[:, None], cols[None, :]])
                out[j, cols] = be.cho_solve(factor, F[j, cols])
            continue
        rows_x = xp.asarray(rows)
        # kept columns first, in increasing order; the tail beyond each row's count is padding
        order = xp.argsort(~mask[rows_x], axis=1, kind="stable")[:, :k]
        valid = xp.arange(k)[None, :] < xp.asarray(counts[rows])[:, None]
        # one flat gather (faster than two broadcast fancy indices)
        A = xp.take(M.reshape(-1), order[:, :, None] * M.shape[1] + order[:, None, :])
        A = xp.where(valid[:, :, None] & valid[:, None, :], A, xp.eye(k, dtype=M.dtype))
        f = xp.where(valid, xp.take_along_axis(F[rows_x], order, axis=1), 0)
        # SPD stacks (alpha > 0). numpy has no stacked triangular solve, and its stacked Cholesky measured
        # slower than one LU per matrix in a single gufunc call; at these sizes (k² < 10⁴) LAPACK runs
        # single-threaded, so numpy's BLAS pool does not wake up beside the backend's
        x = xp.linalg.solve(A, f[:, :, None])[:, :, 0]
        out[rows_x[:, None], order] = xp.where(valid, x, 0)
    return WBlockUpdate(out, None if bias is None else bias.solve(out, rho, backend=be))
