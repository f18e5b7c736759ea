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
from typing import Any, Tuple

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from .._validation import check_array_sequence, check_bool, check_choice, check_int, check_positive, check_real
from ..backend import Backend, infer_backend
from ._scaling import prescaled

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
        If ``alpha`` is not in (0, 1] or ``mode`` is unknown (the message names ``tau_mode``).
    """
    alpha = check_real(alpha, "alpha", 0.0, 1.0, low_open=True)
    check_choice(mode, TAU_MODES, "tau_mode")
    if mode == "approx":
        return 2.5129 * math.sqrt(alpha)
    xi = lambda t: math.log1p(t) / t + alpha * math.log1p(t / alpha) / t - 1.0  # noqa: E731
    return brentq(xi, math.sqrt(alpha) * (1 + 1e-12), 2.5129 + 1e-9, xtol=1e-14)


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


def _as_float_matrix(y: Any, be: Backend, name: str) -> Any:
    """``y`` on the backend as a finite, non-empty 2-D float matrix (integers computed in float64)."""
    return be.as_real_array(y, name, ndim=2, allow_empty=False, finite=True)


def _spectrum(y: Any, be: Backend, name: str) -> Tuple[np.ndarray, float]:
    r"""Singular values (descending, host float64) and :math:`\|Y\|_F^2` of ``y``, computed on its
    power-of-two rescaling (:func:`~nnbcd.ops._scaling.prescaled`) and scaled back in float64."""
    # in float64 whatever y's dtype: a float32 Gram loses the small singular values (absolute error
    # ε32·γ1², 0.3% of a noise-level γ² in a 2×3 example), and with them the noise estimate
    ys, scale = prescaled(y, be)
    ys = ys.astype(be.xp.float64, copy=False)
    s = _singular_values(ys, be) * scale
    fro2 = float(be.to_numpy((ys ** 2).sum())) * scale * scale
    if not math.isfinite(fro2):
        raise ValueError(f"{name} is too large: its squared Frobenius norm overflows float64")
    return s, fro2


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
        If ``shape`` is not two positive ints, ``s`` is not 1-D non-negative finite, ``fro2`` is not a
        finite number ≥ 0, ``H`` is not an int in 1..L (2.5 is refused, never truncated), ``sigma2`` or
        ``eps`` is not positive, or ``tau_mode`` is unknown; the message names the argument.
    TypeError
        If a number argument is not a real number.
    """
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise ValueError(f"shape must be a pair (rows, columns), got {shape!r}")
    L, M = sorted(int(check_int(d, f"shape[{k}]")) for k, d in enumerate(shape))  # type: ignore[arg-type]
    transposed = shape[0] > shape[1]
    s = np.asarray(s)
    if s.dtype.kind not in "iuf" or s.ndim != 1 or not np.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"s must be a 1-D array of finite non-negative singular values, got {s!r}")
    s = np.sort(s.astype(np.float64))[::-1][:L]
    if s.size < L:
        s = np.concatenate([s, np.zeros(L - s.size)])
    fro2 = check_positive(fro2, "fro2", allow_zero=True)
    H = L if H is None else int(check_int(H, "H", maximum=L))  # type: ignore[arg-type]
    check_choice(tau_mode, TAU_MODES, "tau_mode")
    if sigma2 is not None:
        sigma2 = check_positive(sigma2, "sigma2")
    eps = check_positive(eps, "eps")
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
        Real matrix, any orientation (a tall one is analysed transposed), finite, non-empty; float32
        and float64 are kept, integers promoted to float64 (bool, float16, complex, object refused).
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
        If ``y`` is not a non-empty 2-D matrix, has NaN/Inf, or ``H`` (an int in 1..min(L, M)),
        ``sigma2`` or ``tau_mode`` is invalid; the message names the argument.
    TypeError
        If ``y`` is not real numbers (complex, bool, float16, object), or ``factors`` is not a bool.
    """
    factors = check_bool(factors, "factors")
    be = infer_backend(y, backend=backend)
    y = _as_float_matrix(y, be, "y")
    s, fro2 = _spectrum(y, be, "y")
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
    matrices : list or tuple of array_like, or a 3-D array (a stack)
        Finite non-empty 2-D real matrices, any shapes (numpy or the backend's arrays, or nested lists);
        float32/float64 kept, integers promoted to float64.
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
        If a matrix is not a non-empty 2-D matrix or has NaN/Inf (the message names ``matrices[k]``), or
        ``tau_mode`` is unknown.
    TypeError
        If ``matrices`` is not a list, tuple or 3-D array, or a matrix is not real numbers (complex, bool,
        float16, object; the message names ``matrices[k]``).
    """
    check_choice(tau_mode, TAU_MODES, "tau_mode")
    if getattr(matrices, "ndim", None) == 3:
        matrices = list(matrices)
    matrices = check_array_sequence(matrices, "matrices", allow_empty=True)
    be = infer_backend(*matrices, backend=backend)
    mats = [_as_float_matrix(y, be, f"matrices[{k}]") for k, y in enumerate(matrices)]
    out: list[VBMFResult | None] = [None] * len(mats)
    groups: dict = {}
    for k, y in enumerate(mats):
        groups.setdefault(tuple(y.shape), []).append(k)
    for shape, idx in groups.items():
        scaled = [prescaled(mats[k], be) for k in idx]
        scales = np.array([sc for _, sc in scaled])
        stack = be.xp.stack([m for m, _ in scaled])
        eps = float(np.finfo(stack.dtype).eps)
        stack = stack.astype(be.xp.float64, copy=False)  # as _spectrum: singular values in float64
        svals = _batched_singular_values(stack, be) * scales[:, None]
        fro2 = be.to_numpy((stack ** 2).sum(axis=(1, 2))) * scales ** 2
        for j, k in enumerate(idx):
            if not math.isfinite(fro2[j]):
                raise ValueError(f"matrices[{k}] is too large: its squared Frobenius norm overflows float64")
            out[k] = evbmf_from_singular_values(svals[j], float(fro2[j]), shape, None, tau_mode, eps=eps)
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
        If ``y`` is not real numbers, or ``sigma2``/``c`` not a real number.
    """
    sigma2, c = check_positive(sigma2, "sigma2"), check_positive(c, "c")
    be = infer_backend(y, backend=backend)
    y = _as_float_matrix(y, be, "y")
    L, M = sorted(y.shape)
    s, _ = _spectrum(y, be, "y")
    a = (L + M) / 2 + sigma2 / (2 * c * c)
    thr = math.sqrt(sigma2) * math.sqrt(a + math.sqrt(max(a * a - L * M, 0.0)))
    rank = int((s > thr).sum())
    g = s[:rank]
    shrunk = g * (1 - sigma2 / (2 * g ** 2) * (L + M + np.sqrt((M - L) ** 2 + 4 * g ** 2 / c ** 2)))
    return VBMFResult(rank=rank, sigma2=float(sigma2), threshold=thr, shrunk=shrunk, singular_values=s,
                      shape=(L, M), transposed=y.shape[0] > y.shape[1])
