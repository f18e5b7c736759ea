"""EVBMF: ours against the straightforward implementation of the same formulas.

"Straightforward" is what the widely copied public code does: a full SVD with singular vectors
(``numpy.linalg.svd(full_matrices=True)``) and ``scipy.optimize.minimize_scalar(method="bounded")`` on the
free energy directly in σ² (absolute ``xatol`` 1e-5). Ours (:func:`nnbcd.ops.evbmf`): singular values
only (Gram eigenvalues for wide matrices) and a scale-free search in log σ². The matrices follow the
spec's recipes A, B, C (seed 0).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..backend import get_backend
from ..ops.vbmf import evbmf
from .timing import matrix_thread_limit, median_time

#: (recipe, L, M): bench_vbmf.py's default cases, and the --large ones
SPEC_CASES: List[Tuple[str, int, int]] = [("A", 512, 4608), ("B", 512, 4608), ("C", 512, 4608)]
LARGE_CASES: List[Tuple[str, int, int]] = [("A", 4096, 4096), ("B", 4096, 4096)]
#: ``nnbcd bench --size small``: recipe A at a quarter of the spec's size, and the conv-sized recipe C
SMALL_CASES: List[Tuple[str, int, int]] = [("A", 128, 1152), ("C", 64, 576)]
SCALES = (1.0, 1e-3)


def recipe(kind: str, L: int, M: int, scale: float = 1.0, seed: int = 0, R: int = 32) -> np.ndarray:
    r"""A spec test matrix (L × M, float64): signal plus unit Gaussian noise.

    * ``A``: :math:`G_1G_2/\sqrt R` + noise, :math:`G_1` L×R, :math:`G_2` R×M Gaussian (R = 32);
    * ``B``: 64 orthonormal directions with singular values :math:`(\sqrt L+\sqrt M)(0.5 + 2.5k/63)` + noise;
    * ``C``: a power-law spectrum :math:`3(\sqrt L+\sqrt M)(k+1)^{-0.7}` over all L directions + noise.

    Parameters
    ----------
    kind : {"A", "B", "C"}
    L, M : int
    scale : float
        Multiplies the whole matrix (σ² scales by ``scale**2``).
    seed : int
    R : int
        Recipe A's rank.

    Returns
    -------
    numpy.ndarray, shape (L, M)
    """
    rng = np.random.default_rng(seed)
    if kind == "A":
        g1, g2, n = rng.standard_normal((L, R)), rng.standard_normal((R, M)), rng.standard_normal((L, M))
        return scale * ((g1 @ g2) / np.sqrt(R) + n)
    if kind == "B":
        R = 64
        u = np.linalg.qr(rng.standard_normal((L, R)))[0]
        v = np.linalg.qr(rng.standard_normal((M, R)))[0]
        n = rng.standard_normal((L, M))
        d = (np.sqrt(L) + np.sqrt(M)) * (0.5 + 2.5 * np.arange(R) / (R - 1))
        return scale * ((u * d) @ v.T + n)
    u = np.linalg.qr(rng.standard_normal((L, L)))[0]
    v = np.linalg.qr(rng.standard_normal((M, L)))[0]
    n = rng.standard_normal((L, M))
    d = 3 * (np.sqrt(L) + np.sqrt(M)) * (np.arange(L) + 1.0) ** -0.7
    return scale * ((u * d) @ v.T + n)


def straightforward(y: np.ndarray) -> Tuple[int, float]:
    """EVBMF as commonly implemented: full SVD with vectors, bounded search in σ² (absolute xatol 1e-5).

    Returns
    -------
    (int, float)
        The rank and σ².
    """
    from scipy.optimize import minimize_scalar

    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    _, s, _ = np.linalg.svd(y, full_matrices=True)
    alpha = L / M
    tl = 2.5129 * math.sqrt(alpha)
    xbar = (1 + tl) * (1 + alpha / tl)
    hbar = min(math.ceil(L / (1 + alpha)) - 1, L)
    upper = (s ** 2).sum() / (L * M)
    lower = max(s[hbar] ** 2 / (M * xbar), (s[hbar:] ** 2).mean() / M)

    def cost(sig2: float) -> float:
        x = s ** 2 / (M * sig2)
        z = x[x > xbar]
        tau = 0.5 * (z - (1 + alpha) + np.sqrt((z - (1 + alpha)) ** 2 - 4 * alpha))
        psi1 = np.log(tau + 1) + alpha * np.log(tau / alpha + 1) - tau
        return float((x - np.log(x)).sum() + psi1.sum())

    sig2 = minimize_scalar(cost, bounds=(lower, upper), method="bounded").x
    return int((s > math.sqrt(M * sig2 * xbar)).sum()), float(sig2)


@functools.lru_cache(maxsize=None)
def _straightforward_timed(kind: str, L: int, M: int, scale: float, repeats: int) -> Tuple[float, int, float]:
    # the reference runs on the CPU whatever our backend: time it once per matrix and share it
    with matrix_thread_limit((L, M)):  # the data too: a QR with idle BLAS threads can be 100x slower when busy
        y = recipe(kind, L, M, scale)
        t, (rank, sigma2) = median_time(lambda: straightforward(y), repeats, warmup=False)
    return t, rank, sigma2


def time_evbmf(backend: str, cases: Sequence[Tuple[str, int, int]], repeats: int,
               scales: Sequence[float] = SCALES, dtype: str = "float64") -> List[Dict[str, Any]]:
    """Median times, ranks and σ² of the straightforward EVBMF and ours.

    Parameters
    ----------
    backend : {"numpy", "numba", "cupy"}
        Where ours runs (the straightforward one runs on the CPU, timed once per matrix in a process).
    cases : sequence of (str, int, int)
        (recipe, L, M).
    repeats : int
    scales : sequence of float
        Each matrix is also run at these scales (at 1e-3 the straightforward search goes wrong).
    dtype : {"float64", "float32"}
        Our input's dtype.

    Returns
    -------
    list of dict
        ``case``, ``scale``, ``straightforward_s``, ``ours_s``, ``speedup``, ``rank_straightforward``,
        ``rank_ours``, ``sigma2_straightforward`` and ``sigma2_ours`` (both divided by ``scale**2``),
        ``blas_threads`` (both ran under the thread policy for the matrix, :func:`~.timing.matrix_thread_limit`).
    """
    be = get_backend(backend)
    rows = []
    for kind, L, M in cases:
        for scale in scales:
            t_sf, r_sf, s2_sf = _straightforward_timed(kind, L, M, scale, repeats)
            with matrix_thread_limit((L, M)) as threads:
                yb = be.asarray(recipe(kind, L, M, scale), dtype)
                t_us, res = median_time(lambda: evbmf(yb, backend=be), repeats, sync=be.synchronize)
            rows.append(dict(name=f"{kind} {L}x{M} scale {scale:g} {backend} {dtype}", case=f"{kind} {L}x{M}",
                             scale=scale, backend=backend, dtype=dtype, straightforward_s=t_sf, ours_s=t_us,
                             seconds=t_us, speedup=t_sf / t_us, rank_straightforward=r_sf, rank_ours=res.rank,
                             sigma2_straightforward=s2_sf / scale ** 2, sigma2_ours=res.sigma2 / scale ** 2,
                             blas_threads=threads))
    return rows
