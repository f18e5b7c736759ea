r"""The output layer refit by least squares on the deployed network's features (``NNBCD(refit_output=True)``).

NN-BCD fits the output layer :math:`(W_L, b_L)` to the *auxiliary* last hidden layer :math:`V_{L-1}`, which
the coupling terms let drift from what the deployed network computes, :math:`H = \sigma(W_{L-1}\cdots)`
(the forward pass of the training inputs through the deployed hidden layers). After the sweeps, the deployed
network's own training loss over the output layer alone,

.. math::

    \min_{W_L,\,b_L}\ \tfrac12\|W_L H + b_L 1^T - Y\|_F^2,

is a linear least-squares problem with the closed form :math:`[W_L\ b_L] = Y\bar H^T(\bar H\bar H^T)^+`,
:math:`\bar H = [H; 1^T]` (the minimum-norm solution where :math:`\bar H` is rank deficient, e.g. a ReLU unit
that is 0 on every sample). It is the global minimiser, so the deployed training loss cannot rise. The
hidden layers, their compressed forms included, are untouched.

Only the sums :math:`G = \bar H\bar H^T` and :math:`R = Y\bar H^T` over samples are needed: they are formed in
float64 in blocks of samples, and those of disjoint sample shards add up (``nnbcd.dask``).

This is beyond the paper (arXiv 2303.06815): an exact block of the deployed objective, not of Φ.
"""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from ..backend import Backend
from .objective import forward

#: Samples per block of the float64 Gram products (bounds their memory at 8·d·BLOCK bytes per array).
BLOCK = 8192


class ReadoutSums(NamedTuple):
    """Sums over samples of the output layer's least-squares problem (float64, on the host).

    Attributes
    ----------
    G : ndarray, shape (d + 1, d + 1) or (d, d)
        :math:`\\bar H\\bar H^T` (``d`` the output layer's input width; the last row/column is the bias's,
        absent without bias).
    R : ndarray, shape (K, d + 1) or (K, d)
        :math:`Y\\bar H^T`.
    yy : float
        :math:`\\|Y\\|_F^2`.
    """

    G: np.ndarray
    R: np.ndarray
    yy: float


def add_readout_sums(a: ReadoutSums, b: ReadoutSums) -> ReadoutSums:
    """The sums of two disjoint sets of samples as those of their union."""
    return ReadoutSums(a.G + b.G, a.R + b.R, a.yy + b.yy)


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


def readout_sums(H: Any, Y: Any, bias: bool, be: Backend) -> ReadoutSums:
    """:class:`ReadoutSums` of features ``H`` (d × N) and targets ``Y`` (K × N), in float64.

    Parameters
    ----------
    H : array, shape (d, N)
    Y : array, shape (K, N)
    bias : bool
        Append the row of ones (the output layer has a bias).
    be : Backend

    Returns
    -------
    ReadoutSums
    """
    d, n = H.shape
    width = d + 1 if bias else d
    G = np.zeros((width, width))
    R = np.zeros((Y.shape[0], width))
    yy = 0.0
    for start in range(0, n, BLOCK):
        h = be.asarray(H[:, start:start + BLOCK], np.float64)
        y = be.asarray(Y[:, start:start + BLOCK], np.float64)
        if bias:
            h = be.xp.concatenate([h, be.xp.ones((1, h.shape[1]), dtype=np.float64)], axis=0)
        G += be.to_numpy(be.matmul(h, h.T))
        R += be.to_numpy(be.matmul(y, h.T))
        yy += float(be.to_numpy((y * y).sum()))
    return ReadoutSums(G, R, yy)


def solve_readout(sums: ReadoutSums) -> np.ndarray:
    """The minimum-norm least-squares output layer :math:`[W_L\\ b_L] = R\\,G^+` (float64).

    The Gram matrix is scaled to unit diagonal first (features of very different scales, e.g. a bias row of
    ones next to activations of size 1e-3, would otherwise lose their small eigenvalues to the cut-off) and
    inverted on its eigenvectors; eigenvalues of the scaled Gram below ``width · eps · λ_max`` count as 0,
    i.e. singular values of the scaled features below about :math:`\\sqrt{width\\cdot eps}` (≈ 1e-7) of the
    largest: forming the Gram squares the condition number, so nearly collinear features are resolved
    about as well as ``numpy.linalg.lstsq`` would in single precision. The component of the solution in
    the null space of :math:`G` is then removed, which gives the minimum-norm solution in the original
    coordinates; rows of :math:`\\bar H` that are 0 on every sample get weight 0.

    Parameters
    ----------
    sums : ReadoutSums

    Returns
    -------
    ndarray, shape (K, width)
        ``[W_L, b_L]`` with the bias as the last column when the sums have one; all NaN when the sums are
        not finite (a diverged run's features).
    """
    G, R = sums.G, sums.R
    coef = np.zeros(R.shape)
    if not (np.isfinite(G).all() and np.isfinite(R).all()):  # eigh would raise on them
        return np.full(R.shape, np.nan)
    live = np.flatnonzero(np.diag(G) > 0)
    if live.size == 0:
        return coef
    scale = 1.0 / np.sqrt(np.diag(G)[live])
    w, Q = np.linalg.eigh(G[np.ix_(live, live)] * scale[:, None] * scale[None, :])
    keep = w > live.size * np.finfo(np.float64).eps * max(w[-1], 0.0)
    c = ((R[:, live] * scale) @ Q[:, keep] / w[keep]) @ Q[:, keep].T * scale
    if not keep.all():  # null(G) = S·null(scaled G): take its component out, leaving the minimum-norm solution
        basis = np.linalg.qr(Q[:, ~keep] * scale[:, None])[0]
        c -= (c @ basis) @ basis.T
    coef[:, live] = c
    return coef


def readout_loss(sums: ReadoutSums, coef: np.ndarray) -> float:
    """:math:`\\tfrac12\\|[W_L\\ b_L]\\bar H - Y\\|_F^2` from the sums (no pass over the samples).

    Parameters
    ----------
    sums : ReadoutSums
    coef : ndarray, shape (K, width)
        ``[W_L, b_L]`` (as :func:`solve_readout` returns it).

    Returns
    -------
    float
    """
    quad = float(np.einsum("ij,jk,ik->", coef, sums.G, coef))
    return 0.5 * max(quad - 2.0 * float(np.sum(coef * sums.R)) + sums.yy, 0.0)


def split(coef: np.ndarray, bias: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``[W_L, b_L]`` as ``(W_L, b_L)`` (``b_L`` ``None`` without bias)."""
    return (coef[:, :-1], coef[:, -1]) if bias else (coef, None)


def join(weight: Any, bias: Optional[Any], be: Backend) -> np.ndarray:
    """``(W_L, b_L)`` on any backend as the float64 host matrix ``[W_L, b_L]``."""
    w = be.to_numpy(weight).astype(np.float64)
    return w if bias is None else np.concatenate([w, be.to_numpy(bias).astype(np.float64)[:, None]], axis=1)
