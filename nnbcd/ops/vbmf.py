r"""Empirical variational Bayesian matrix factorisation (EVBMF): rank and noise variance of a matrix.

Model ([N13] Nakajima, Sugiyama, Babacan, Tomioka, JMLR 14, 2013; [N15] Nakajima, Tomioka, Sugiyama,
Babacan, JMLR 16, 2015): :math:`Y = BA^T + E`, :math:`E_{ij}\sim N(0,\sigma^2)`,
:math:`Y\in\mathbb R^{L\times M}` with :math:`L\le M` (a tall input is transposed; every result is
invariant), :math:`\alpha = L/M`, singular values :math:`\gamma_1\ge\dots\ge\gamma_L`.

* Threshold on :math:`x = \gamma^2/(M\sigma^2)`: :math:`\underline x = (1+\underline\tau)(1+\alpha/\underline\tau)`,
  with :math:`\underline\tau = 2.5129\sqrt\alpha` (``tau_mode="approx"``, the authors' code) or the root of
  :math:`\log(1+\tau)/\tau + \alpha\log(1+\tau/\alpha)/\tau = 1` (``"exact"``).
* Noise variance: :math:`\hat\sigma^2 = \arg\min\ \Omega(\sigma^2) = \|Y\|_F^2/(M\sigma^2) + L\log\sigma^2
  + \sum_{x_h > \underline x} \psi_1(x_h)`, :math:`\psi_1(x) = \log(\tau(x)+1) + \alpha\log(\tau(x)/\alpha+1) - \tau(x)`,
  :math:`\tau(x) = \frac12\big(x-(1+\alpha)+\sqrt{(x-(1+\alpha))^2-4\alpha}\big)`; searched in
  :math:`t=\log\sigma^2` (a 64-point grid, then bounded Brent to 1e-10), so the result does not depend on the
  matrix's scale. The widely copied public code searches σ² itself with an absolute tolerance of 1e-5 and
  returns wrong ranks for small-scale weights; it also needs full SVDs with vectors.
* Rank :math:`\hat H = \#\{\gamma_h > \sqrt{M\hat\sigma^2\underline x}\}`; shrunk values
  :math:`\hat\gamma_h = \frac{\gamma_h}2\big(q_h + \sqrt{q_h^2 - 4LM\hat\sigma^4/\gamma_h^4}\big)`,
  :math:`q_h = 1 - (L+M)\hat\sigma^2/\gamma_h^2`.

Only singular values (and :math:`\|Y\|_F^2`, computed directly) are needed: they come from the backend
without singular vectors (eigenvalues of the :math:`L\times L` Gram).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from ..backend import Backend, infer_backend

TAU_MODES = ("approx", "exact")
_GRID = 64


@dataclass
class VBMFResult:
    """Outcome of :func:`evbmf` / :func:`vbmf`.

    Attributes
    ----------
    rank : int
        Estimated rank :math:`\\hat H`.
    sigma2 : float
        Noise variance :math:`\\hat\\sigma^2` (estimated, or the one given).
    threshold : float
        Singular-value threshold :math:`\\gamma_{EVB}` (or :math:`\\gamma_{VB}`).
    shrunk : ndarray
        The ``rank`` retained, shrunk singular values :math:`\\hat\\gamma_h`.
    singular_values : ndarray
        The singular values used (descending).
    shape : (L, M)
        The analysed orientation (:math:`L \\le M`); ``transposed`` tells whether the input was tall.
    free_energy : float
        :math:`2F` (EVBMF only; NaN otherwise).
    factors : tuple or None
        ``(U_r, V_r)`` with :math:`\\hat Y = U_r\\,\\mathrm{diag}(\\hat\\gamma)V_r^T` in the input's
        orientation, when asked for; the largest-magnitude entry of each column of ``U_r`` is positive.
    """

    rank: int
    sigma2: float
    threshold: float
    shrunk: np.ndarray
    singular_values: np.ndarray
    shape: tuple
    transposed: bool
    free_energy: float = math.nan
    factors: tuple | None = field(default=None, repr=False)


def tau_lower(alpha: float, mode: str = "approx") -> float:
    r""":math:`\underline\tau` for the aspect ratio :math:`\alpha = L/M \in (0, 1]` ([N15]).

    Parameters
    ----------
    alpha : float in (0, 1]
    mode : {"approx", "exact"}
        ``"approx"``: :math:`2.5129\sqrt\alpha` (the authors' code); ``"exact"``: the root of
        :math:`\log(1+\tau)/\tau + \alpha\log(1+\tau/\alpha)/\tau = 1`.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``mode`` is unknown (the message names ``tau_mode``).
    """
    if mode == "approx":
        return 2.5129 * math.sqrt(alpha)
    if mode == "exact":
        xi = lambda t: math.log1p(t) / t + alpha * math.log1p(t / alpha) / t - 1.0
        return brentq(xi, math.sqrt(alpha) * (1 + 1e-12), 2.5129 + 1e-9, xtol=1e-14)
    raise ValueError(f"tau_mode={mode!r} is not one of {TAU_MODES}")


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    d = x - (1.0 + alpha)
    return 0.5 * (d + np.sqrt(np.maximum(d * d - 4.0 * alpha, 0.0)))


def _psi1(x: np.ndarray, alpha: float) -> np.ndarray:
    t = _tau(x, alpha)
    return np.log1p(t) + alpha * np.log1p(t / alpha) - t


def omega(t: np.ndarray, s2: np.ndarray, fro2: float, L: int, M: int, xbar: float) -> np.ndarray:
    r"""The EVBMF noise objective :math:`\Omega` at :math:`t = \log\sigma^2` (the module docstring's formula).

    Parameters
    ----------
    t : float or array, shape (k,)
        Points :math:`\log\sigma^2`.
    s2 : numpy.ndarray, shape (H,)
        Squared singular values :math:`\gamma_h^2` analysed.
    fro2 : float
        :math:`\|Y\|_F^2`.
    L, M : int
        The matrix's sizes, :math:`L \le M`.
    xbar : float
        The threshold :math:`\underline x`.

    Returns
    -------
    numpy.ndarray, shape (k,), float64
    """
    t = np.atleast_1d(np.asarray(t, dtype=float))
    alpha = L / M
    sig2 = np.exp(t)[:, None]
    x = s2[None, :] / (M * sig2)
    psi = np.where(x > xbar, _psi1(np.maximum(x, xbar), alpha), 0.0)
    return fro2 / (M * sig2[:, 0]) + L * t + psi.sum(axis=1)


def _validate(y: Any, name: str) -> None:
    if getattr(y, "ndim", None) != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {getattr(y, 'shape', None)}")
    if min(y.shape) < 1:
        raise ValueError(f"{name} is empty (shape {y.shape})")


def _as_float_matrix(y: Any, be: Backend, name: str) -> Any:
    """``y`` on the backend as a 2-D float matrix; integer/bool/list input becomes float64."""
    if not hasattr(y, "dtype"):
        y = np.asarray(y)
    if y.dtype.kind in "biu":
        y = be.asarray(y, dtype="float64", name=name)
    elif y.dtype.kind == "f":
        y = be.xp.asarray(y)
    else:
        raise TypeError(f"{name} must be a real numeric matrix, got dtype {y.dtype}")
    _validate(y, name)
    return y


def _singular_values(y: Any, be: Backend) -> np.ndarray:
    r"""Singular values of ``y`` (descending, host float64) without singular vectors.

    The eigenvalues of the :math:`L\times L` Gram (after orienting :math:`L\le M`): one ``syrk`` and a
    divide-and-conquer eigensolve, several times faster than an SVD without vectors even for square
    matrices (``benchmarks/bench_vbmf.py``). Squaring loses accuracy (absolute :math:`\epsilon\gamma_1^2`
    in :math:`\gamma_h^2`) only in the small singular values, which enter the objective through
    :math:`\|Y\|_F^2`, computed directly.
    """
    g = be.gram(y if y.shape[0] <= y.shape[1] else y.T)
    lam = be.to_numpy(be.eigvalsh(g)).astype(np.float64)
    return np.sqrt(np.maximum(lam[::-1], 0.0))


def _batched_singular_values(stack: Any, be: Backend) -> np.ndarray:
    """:func:`_singular_values` for a (B, rows, cols) stack in one batched call."""
    xp = be.xp
    if stack.shape[1] > stack.shape[2]:
        stack = stack.transpose(0, 2, 1)
    lam = be.to_numpy(xp.linalg.eigvalsh(xp.matmul(stack, stack.transpose(0, 2, 1)))).astype(np.float64)
    return np.sqrt(np.maximum(lam[:, ::-1], 0.0))


def evbmf_from_singular_values(s: np.ndarray, fro2: float, shape: tuple, H: int | None = None,
                               tau_mode: str = "approx", sigma2: float | None = None,
                               eps: float = np.finfo(np.float64).eps) -> VBMFResult:
    r"""EVBMF from the singular values and :math:`\|Y\|_F^2` of a matrix (host, no array needed).

    The search, threshold and shrinkage of the module docstring ([N13], [N15]); :func:`evbmf` calls it
    after computing ``s`` on its backend.

    Parameters
    ----------
    s : array_like, shape (k,)
        Singular values (any order; padded with zeros to L, truncated to L).
    fro2 : float
        :math:`\|Y\|_F^2`, computed directly (it carries the components not in ``s``).
    shape : (int, int)
        The matrix's shape, either orientation.
    H : int, optional
        Number of leading components analysed, 1..L (default L); the rest enters through ``fro2``.
    tau_mode : {"approx", "exact"}
        See :func:`tau_lower`.
    sigma2 : float, optional
        Known noise variance: no search.
    eps : float
        Machine epsilon of the data (the noise-free test's tolerance).

    Returns
    -------
    VBMFResult

    Raises
    ------
    ValueError
        If ``H`` is out of range, the values are not finite, ``sigma2`` is not positive, or ``tau_mode``
        is unknown.
    """
    L, M = sorted(int(d) for d in shape)
    transposed = shape[0] > shape[1]
    s = np.sort(np.asarray(s, dtype=np.float64))[::-1][:L]
    if s.size < L:
        s = np.concatenate([s, np.zeros(L - s.size)])
    H = L if H is None else int(H)
    if not 1 <= H <= L:
        raise ValueError(f"H must be in 1..{L}, got {H}")
    if not math.isfinite(fro2) or not np.isfinite(s).all():
        raise ValueError("the matrix has non-finite entries")
    alpha = L / M
    tl = tau_lower(alpha, tau_mode)
    xbar = (1 + tl) * (1 + alpha / tl)

    def done(sig2: float, rank: int, shrunk: np.ndarray, thr: float, f2: float = math.nan) -> VBMFResult:
        return VBMFResult(rank=rank, sigma2=sig2, threshold=thr, shrunk=shrunk, singular_values=s,
                          shape=(L, M), transposed=transposed, free_energy=f2)

    if fro2 == 0.0:
        return done(0.0, 0, np.zeros(0), 0.0)
    if sigma2 is None:
        hbar = min(math.ceil(L / (1 + alpha)) - 1, H)
        tail = fro2 - float((s[:hbar] ** 2).sum())
        if tail <= 4 * max(L, M) * eps * fro2:
            # noise-free (exactly low-rank up to rounding): the numerical rank, at the accuracy of
            # singular values from a Gram matrix (√ε relative)
            rank = int((s > math.sqrt(max(L, M) * eps) * s[0]).sum())
            return done(0.0, rank, s[:rank].copy(), 0.0)
        upper = fro2 / (L * M)
        lower = max(s[hbar] ** 2 / (M * xbar), tail / (M * (L - hbar)))
        if lower >= upper:
            sigma2 = upper
        else:
            s2 = s[:H] ** 2
            grid = np.linspace(math.log(lower), math.log(upper), _GRID)
            vals = omega(grid, s2, fro2, L, M, xbar)
            i = int(np.argmin(vals))
            lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, _GRID - 1)]
            res = minimize_scalar(lambda t: float(omega(t, s2, fro2, L, M, xbar)[0]), bounds=(lo, hi),
                                  method="bounded", options={"xatol": 1e-10})
            t_best = res.x if res.fun <= vals[i] else grid[i]
            sigma2 = math.exp(t_best)
    elif not (isinstance(sigma2, (int, float)) and sigma2 > 0 and math.isfinite(sigma2)):
        raise ValueError(f"sigma2 must be a positive number, got {sigma2!r}")
    thr = math.sqrt(M * sigma2 * xbar)
    rank = int((s[:H] > thr).sum())
    g = s[:rank]
    q = 1.0 - (L + M) * sigma2 / g ** 2
    shrunk = 0.5 * g * (q + np.sqrt(np.maximum(q * q - 4.0 * L * M * sigma2 ** 2 / g ** 4, 0.0)))
    tau_h = shrunk * g / (M * sigma2)
    f2 = (L * M * math.log(2 * math.pi * sigma2) + fro2 / sigma2
          + float((M * np.log1p(tau_h) + L * np.log1p(tau_h / alpha) - M * tau_h).sum()))
    return done(float(sigma2), rank, shrunk, thr, f2)


def evbmf(y: Any, *, H: int | None = None, tau_mode: str = "approx", sigma2: float | None = None,
          factors: bool = False, backend: "str | Backend | None" = None) -> VBMFResult:
    r"""Empirical VBMF of a matrix: its rank :math:`\hat H` and noise variance :math:`\hat\sigma^2`.

    Model :math:`Y = BA^T + E`, :math:`E_{ij} \sim N(0, \sigma^2)` (Nakajima et al., JMLR 2013 [N13] and
    2015 [N15]): :math:`\hat\sigma^2` minimises :math:`\Omega` (:func:`omega`), searched in
    :math:`\log\sigma^2`; :math:`\hat H = \#\{\gamma_h > \sqrt{M\hat\sigma^2\underline x}\}`; the
    retained values are shrunk (module docstring). Needs only singular values, from the Gram matrix's
    eigenvalues on the backend.

    Parameters
    ----------
    y : array_like, shape (L, M)
        Real matrix, any orientation (a tall one is analysed transposed); integers and bools are
        promoted to float64, floats keep their dtype.
    H : int, optional
        Leading components analysed, 1..min(L, M) (default all).
    tau_mode : {"approx", "exact"}
        See :func:`tau_lower`.
    sigma2 : float, optional
        Known noise variance: skip the search.
    factors : bool
        Also return ``(U_r, V_r)`` in ``factors`` (one SVD, for the retained rank only).
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``y``.

    Returns
    -------
    VBMFResult
        Host values (numpy float64).

    Raises
    ------
    ValueError
        If ``y`` is not a non-empty 2-D matrix, has NaN/Inf, or ``H``/``sigma2``/``tau_mode`` is invalid.
    TypeError
        If ``y`` is not real numeric (complex, object).
    """
    be = infer_backend(y, backend=backend)
    y = _as_float_matrix(y, be, "y")
    if not be.isfinite_all(y):
        raise ValueError("y contains NaN/Inf")
    s = _singular_values(y, be)
    fro2 = float(be.to_numpy((y.astype(be.xp.float64) ** 2).sum()))
    res = evbmf_from_singular_values(s, fro2, tuple(y.shape), H, tau_mode, sigma2,
                                     eps=float(np.finfo(y.dtype).eps))
    if factors and res.rank:
        u, _, vt = be.svd(y)
        u, v = be.to_numpy(u[:, :res.rank]), be.to_numpy(vt[:res.rank].T)
        # sign convention: the largest-magnitude entry of each column of U is positive, so factors are
        # reproducible across backends and LAPACK drivers
        sign = np.sign(u[np.abs(u).argmax(axis=0), np.arange(res.rank)])
        res.factors = (u * sign, v * sign)
    return res


def evbmf_batch(matrices: Sequence[Any], *, tau_mode: str = "approx",
                backend: "str | Backend | None" = None) -> list[VBMFResult]:
    """:func:`evbmf` of many matrices; those of equal shape share one batched eigenvalue call.

    Parameters
    ----------
    matrices : sequence of arrays
        2-D float matrices, any shapes (numpy or the backend's).
    tau_mode : {"approx", "exact"}
        See :func:`tau_lower`.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``matrices``.

    Returns
    -------
    list of VBMFResult
        In the order of ``matrices``; equal to :func:`evbmf` of each up to rounding.

    Raises
    ------
    ValueError
        If a matrix is not a non-empty 2-D matrix (the message names ``matrices[k]``) or has NaN/Inf.
    """
    be = infer_backend(*matrices, backend=backend)
    out: list[VBMFResult | None] = [None] * len(matrices)
    groups: dict = {}
    for k, y in enumerate(matrices):
        _validate(y, f"matrices[{k}]")
        groups.setdefault(tuple(y.shape), []).append(k)
    for shape, idx in groups.items():
        stack = be.xp.stack([be.xp.asarray(matrices[k]) for k in idx])
        if not be.isfinite_all(stack):
            raise ValueError(f"a matrix of shape {shape} contains NaN/Inf")
        svals = _batched_singular_values(stack, be)
        fro2 = be.to_numpy((stack.astype(be.xp.float64) ** 2).sum(axis=(1, 2)))
        for j, k in enumerate(idx):
            out[k] = evbmf_from_singular_values(svals[j], float(fro2[j]), shape, None, tau_mode,
                                                eps=float(np.finfo(stack.dtype).eps))
    return out  # type: ignore[return-value]


def vbmf(y: Any, sigma2: float, c: float, *, backend: "str | Backend | None" = None) -> VBMFResult:
    r"""VBMF with known noise variance :math:`\sigma^2` and prior product :math:`c = c_a c_b` ([N13]).

    :math:`\gamma_{VB} = \sigma\sqrt{(L+M)/2 + \sigma^2/(2c^2) + \sqrt{((L+M)/2 + \sigma^2/(2c^2))^2 - LM}}`;
    the components with :math:`\gamma_h > \gamma_{VB}` are kept and shrunk to
    :math:`\hat\gamma_h = \gamma_h\big(1 - \frac{\sigma^2}{2\gamma_h^2}(L + M + \sqrt{(M-L)^2 + 4\gamma_h^2/c^2})\big)`.

    Parameters
    ----------
    y : array_like, shape (L, M)
        Real matrix, as for :func:`evbmf`.
    sigma2 : float
        Noise variance :math:`\sigma^2 > 0`.
    c : float
        Prior product :math:`c_a c_b > 0`.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``y``.

    Returns
    -------
    VBMFResult
        ``free_energy`` is NaN.

    Raises
    ------
    ValueError
        If ``sigma2`` or ``c`` is not a positive finite number, or ``y`` is not a finite non-empty 2-D matrix.
    TypeError
        If ``y`` is not real numeric.
    """
    for name, v in (("sigma2", sigma2), ("c", c)):
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    be = infer_backend(y, backend=backend)
    y = _as_float_matrix(y, be, "y")
    if not be.isfinite_all(y):
        raise ValueError("y contains NaN/Inf")
    L, M = sorted(y.shape)
    s = _singular_values(y, be)
    a = (L + M) / 2 + sigma2 / (2 * c * c)
    thr = math.sqrt(sigma2) * math.sqrt(a + math.sqrt(max(a * a - L * M, 0.0)))
    rank = int((s > thr).sum())
    g = s[:rank]
    shrunk = g * (1 - sigma2 / (2 * g ** 2) * (L + M + np.sqrt((M - L) ** 2 + 4 * g ** 2 / c ** 2)))
    return VBMFResult(rank=rank, sigma2=float(sigma2), threshold=thr, shrunk=shrunk, singular_values=s,
                      shape=(L, M), transposed=y.shape[0] > y.shape[1])
