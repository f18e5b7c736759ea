r"""The output layer refit by least squares on the deployed network's features (``NNBCD(refit_output=True)``).

NN-BCD fits the output layer :math:`(W_L, b_L)` to the *auxiliary* last hidden layer :math:`V_{L-1}`, which
the coupling terms let drift from what the deployed network computes, :math:`H = \sigma(W_{L-1}\cdots)`
(the forward pass of the training inputs through the deployed hidden layers). After the sweeps, the deployed
network's own training loss over the output layer alone,

.. math::

    \min_{W_L,\,b_L}\ \tfrac12\|W_L H + b_L 1^T - Y\|_F^2,

is a linear least-squares problem; its minimum-norm solution is :math:`[W_L\ b_L] = Y\bar H^{+}`,
:math:`\bar H = [H; 1^T]` (minimum norm where :math:`\bar H` is rank deficient, e.g. a ReLU unit that is 0 on
every sample). It is the minimiser over the output layer, so the deployed training loss cannot rise. The hidden
layers, their compressed forms included, are untouched.

It is solved as ``numpy.linalg.lstsq`` solves it, from an orthogonal factorisation, not from the normal
equations (which square the condition number): the R factor of the N × (w + K) matrix :math:`[\bar H^T\ Y^T]`
(w = d or d + 1 with the bias row), accumulated over blocks of samples as a tall-skinny QR (TSQR: the R of
stacked R factors is the R of the stacked rows), which is also how the R factors of disjoint sample shards
combine (``nnbcd.dask``). With :math:`R = \begin{bmatrix} R_{11} & R_{12}\\ 0 & R_{22}\end{bmatrix}`,
the loss of any :math:`C = [W_L\ b_L]` is :math:`\tfrac12\|R_{:,:w}C^T - R_{:,w:}\|_F^2` and the
minimum-norm minimiser is :math:`C^T = R_{11}^{+}R_{12}` (an SVD of the w × w :math:`R_{11}`, singular values
below ``eps · sqrt(max(N, w)) · σ_max`` of the column-scaled :math:`R_{11}` dropped, eps the features' machine
epsilon, float32's for a float32 run, whose features carry no more digits: :func:`solve_readout`). Cost: about
:math:`2N(w+K)^2` flops of QR and one w × w SVD, all in float64.

This is beyond the paper (arXiv 2303.06815): an exact block of the deployed objective, not of Φ.
"""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from ..backend import Backend
from .objective import forward

#: Samples per block of the QR (bounds its float64 work array at 8·(w + K)·(BLOCK + w + K) bytes).
BLOCK = 8192


class ReadoutFactor(NamedTuple):
    """The output layer's least-squares problem on some samples, reduced to an R factor (float64, host).

    Attributes
    ----------
    R : ndarray, shape (m, width + K), m ≤ width + K
        Upper-triangular (trapezoidal when m < width + K) R factor of :math:`[\\bar H^T\\ Y^T]`.
    width : int
        Columns of :math:`\\bar H^T`: the output layer's input width, plus 1 with a bias.
    n : int
        Samples reduced.
    finite : bool
        Whether every feature was finite (a diverged run's are not; ``R`` is then meaningless).
    eps : float
        Machine epsilon of the features' dtype (float32 features are known to about 1e-7 only): the scale of
        :func:`solve_readout`'s cut-off.
    """

    R: np.ndarray
    width: int
    n: int
    finite: bool
    eps: float = float(np.finfo(np.float64).eps)


def combine_readout(a: ReadoutFactor, b: ReadoutFactor) -> ReadoutFactor:
    """The factor of the union of two disjoint sets of samples (the R of the stacked R factors)."""
    return ReadoutFactor(_r_factor(np.vstack([a.R, b.R])), a.width, a.n + b.n, a.finite and b.finite,
                         max(a.eps, b.eps))


def _r_factor(a: np.ndarray) -> np.ndarray:
    return np.linalg.qr(a, mode="r")


def features(weights: List[Any], biases: List[Optional[Any]], x: Any, be: Backend, conv: Any = None,
             patches: Any = None) -> Any:
    """The deployed network's input to its output layer: :math:`\\sigma(\\ldots)` after layer ``L-2``.

    Parameters
    ----------
    weights, biases, x, be, conv, patches
        As :func:`~nnbcd.bcd.objective.forward` (every layer's deployed weight).

    Returns
    -------
    array, shape (d_{L-1}, N)
        ``x`` itself for a network of one layer.
    """
    if len(weights) == 1:
        return x
    h = forward(weights[:-1], biases[:-1], x, be, conv, patches)
    return be.relu(h, out=h)


def readout_factor(H: Any, Y: Any, bias: bool, be: Backend) -> ReadoutFactor:
    """:class:`ReadoutFactor` of features ``H`` (d × N) and targets ``Y`` (K × N), in float64.

    Parameters
    ----------
    H : array, shape (d, N)
    Y : array, shape (K, N)
    bias : bool
        Append the row of ones (the output layer has a bias).
    be : Backend
        Where ``H``, ``Y`` are; each block is factored on the host.

    Returns
    -------
    ReadoutFactor
    """
    d, n = H.shape
    width = d + 1 if bias else d
    R = np.zeros((0, width + Y.shape[0]))
    finite = True
    for start in range(0, n, BLOCK):
        rows = [be.to_numpy(H[:, start:start + BLOCK]).astype(np.float64)]
        if bias:
            rows.append(np.ones((1, rows[0].shape[1])))
        block = np.concatenate(rows + [be.to_numpy(Y[:, start:start + BLOCK]).astype(np.float64)], axis=0)
        if not np.isfinite(block).all():  # QR of NaN / Inf would raise or return garbage
            finite = False
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
        R = _r_factor(np.vstack([R, block.T]))
    eps = np.finfo(H.dtype if np.issubdtype(H.dtype, np.floating) else np.float64).eps
    return ReadoutFactor(R, width, n, finite, float(eps))


def training_factor(st: Any, deployed: List[Any], be: Backend) -> ReadoutFactor:
    """:func:`readout_factor` of a solver state's training samples (``st.X``, ``st.Y``: the whole data, or one
    Dask shard's) with the deployed weights ``deployed`` (every layer's, on ``be``)."""
    H = features(deployed, st.b, st.X, be, st.conv, st.patches)
    return readout_factor(H, st.Y, st.b[-1] is not None, be)


def solve_readout(factor: ReadoutFactor) -> np.ndarray:
    """The minimum-norm least-squares output layer :math:`[W_L\\ b_L] = (R_{11}^+R_{12})^T` (float64).

    The pseudo-inverse is taken on :math:`R_{11}D`, its columns scaled to unit norm (D diagonal: features of
    size 1e-3 next to the bias's row of ones keep their directions), by an SVD whose singular values below
    ``eps · sqrt(max(N, w)) · σ_max`` count as 0, eps the features' machine epsilon: below the size of their
    rounding errors, which for float32 features is where a direction stops being information (fitting it
    gives weights that amplify every feature's rounding). ``numpy.linalg.lstsq``'s default cut-off,
    ``eps · max(N, w)`` on the unscaled matrix, is a worst-case bound that at float32 and N = 20,000 drops
    real directions (docs/nnbcd.md). The component of :math:`D R_{11,D}^+ R_{12}` in the null space of
    :math:`R_{11}` is then removed: the minimum-norm solution in the original coordinates. Features that are
    0 on every sample (dead units: a zero column of :math:`R_{11}`) get weight exactly 0.

    Parameters
    ----------
    factor : ReadoutFactor

    Returns
    -------
    ndarray, shape (K, width)
        ``[W_L, b_L]`` with the bias as the last column when the factor has one; all NaN when the features
        were not finite.
    """
    w = factor.width
    R11, R12 = factor.R[:, :w], factor.R[:, w:]
    if not factor.finite:
        return np.full((R12.shape[1], w), np.nan)
    coef = np.zeros((R12.shape[1], w))
    norms = np.sqrt(np.sum(np.square(R11), axis=0))
    live = np.flatnonzero(norms > 0)
    if live.size == 0:
        return coef
    scale = 1.0 / norms[live]
    U, s, Vt = np.linalg.svd(R11[:, live] * scale, full_matrices=False)
    keep = s > factor.eps * np.sqrt(max(factor.n, w)) * s[0]
    c = scale[:, None] * ((Vt[keep].T / s[keep]) @ (U[:, keep].T @ R12))
    null = np.vstack([Vt[~keep]] + ([_complement(Vt)] if Vt.shape[0] < live.size else []))  # with a wide R11's
    if null.shape[0]:  # null(R11) = D·null(R11 D): take that component out
        basis = np.linalg.qr(null.T * scale[:, None])[0]
        c -= basis @ (basis.T @ c)
    coef[:, live] = c.T
    return coef


def _complement(Vt: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning the orthogonal complement of ``Vt``'s rows (an SVD of a wide matrix returns
    fewer right singular vectors than columns)."""
    q = np.linalg.qr(Vt.T, mode="complete")[0]
    return q[:, Vt.shape[0]:].T


def readout_loss(factor: ReadoutFactor, coef: np.ndarray) -> float:
    """:math:`\\tfrac12\\|[W_L\\ b_L]\\bar H - Y\\|_F^2` from the factor (no pass over the samples, no
    cancellation).

    Parameters
    ----------
    factor : ReadoutFactor
    coef : ndarray, shape (K, width)
        ``[W_L, b_L]`` (as :func:`solve_readout` returns it).

    Returns
    -------
    float
        NaN when the features were not finite.
    """
    if not factor.finite:
        return float("nan")
    w = factor.width
    return 0.5 * float(np.sum(np.square(factor.R[:, :w] @ coef.T - factor.R[:, w:])))


def split(coef: np.ndarray, bias: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``[W_L, b_L]`` as ``(W_L, b_L)`` (``b_L`` ``None`` without bias)."""
    return (coef[:, :-1], coef[:, -1]) if bias else (coef, None)


def join(weight: Any, bias: Optional[Any], be: Backend) -> np.ndarray:
    """``(W_L, b_L)`` on any backend as the float64 host matrix ``[W_L, b_L]``."""
    w = be.to_numpy(weight).astype(np.float64)
    return w if bias is None else np.concatenate([w, be.to_numpy(bias).astype(np.float64)[:, None]], axis=1)
