"""The numba backend: numpy arrays, BLAS/LAPACK for GEMM and factorisations, and parallel fused kernels.

Elementwise and reduction kernels are ``@njit(parallel=True)`` loops over rows that read each operand
once and allocate nothing of size d×N; the ReLU prox is the shared scalar formula inlined.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._base import Backend, BackendUnavailableError

try:
    import numba
    from numba import njit, prange
except ImportError as exc:  # pragma: no cover - numba is a hard dependency, kept for a clear message
    raise BackendUnavailableError("backend='numba' needs numba: pip install numba") from exc

from ..ops.relu_prox import relu_prox_constants, relu_prox_scalar

_prox = njit(inline="always", cache=False)(relu_prox_scalar)


@njit(parallel=True, fastmath=False, cache=True)
def _relu_prox_update(p, u, v, b, has_b, rho, alpha, inv, beta, c, inv_1pb):  # pragma: no cover
    n_rows, n_cols = u.shape
    for i in prange(n_rows):
        bi = b[i] if has_b else b[0] * 0
        for j in range(n_cols):
            a = (rho * (p[i, j] + bi) + alpha * u[i, j]) * inv
            u[i, j] = _prox(v[i, j], a, beta, c, inv_1pb)


@njit(parallel=True, fastmath=False, cache=True)
def _relu_gap_sq(v, u):  # pragma: no cover - compiled
    n_rows, n_cols = u.shape
    acc = np.zeros(n_rows)
    for i in prange(n_rows):
        s = 0.0
        for j in range(n_cols):
            d = v[i, j] - max(u[i, j], 0.0)
            s += d * d
        acc[i] = s
    return acc.sum()


@njit(parallel=True, fastmath=False, cache=True)
def _lin_gap_sq(u, p, b, has_b):  # pragma: no cover - compiled
    n_rows, n_cols = u.shape
    acc = np.zeros(n_rows)
    for i in prange(n_rows):
        bi = b[i] if has_b else 0.0
        s = 0.0
        for j in range(n_cols):
            d = u[i, j] - p[i, j] - bi
            s += d * d
        acc[i] = s
    return acc.sum()


@njit(parallel=True, fastmath=False, cache=True)
def _add_scaled_relu(y, x, c):  # pragma: no cover - compiled
    n_rows, n_cols = y.shape
    for i in prange(n_rows):
        for j in range(n_cols):
            xv = x[i, j]
            if xv > 0:
                y[i, j] += c * xv


@njit(parallel=True, fastmath=False, cache=True)
def _relu_inplace(x):  # pragma: no cover - compiled
    flat = x.reshape(-1)
    for i in prange(flat.size):
        if flat[i] < 0:
            flat[i] = 0


class NumbaBackend(Backend):
    """numpy arrays with numba-compiled parallel kernels (``numba.set_num_threads`` controls threads)."""

    name = "numba"

    def __init__(self) -> None:
        self.numba = numba

    def relu_prox_update(
        self, p: Any, u: Any, v: Any, b: Optional[Any], rho: float, alpha: float, gamma: float
    ) -> Any:
        has_b = b is not None
        bb = b if has_b else np.zeros(1, dtype=u.dtype)
        t = u.dtype.type  # scalars in the arrays' precision: float32 kernels never widen
        consts = relu_prox_constants((rho + alpha) / gamma)
        _relu_prox_update(p, u, v, bb, has_b, t(rho), t(alpha), t(1.0 / (rho + alpha)), *map(t, consts))
        return u

    def relu(self, x: Any, out: Optional[Any] = None) -> Any:
        if out is None:
            out = x.copy()
        elif out is not x:
            out[...] = x
        if out.flags.c_contiguous:
            _relu_inplace(out)
        else:
            np.maximum(out, 0, out=out)
        return out

    def add_scaled_relu(self, y: Any, x: Any, c: float) -> Any:
        if y.ndim == 2 and y.shape == x.shape:
            _add_scaled_relu(y, x, y.dtype.type(c))
            return y
        return super().add_scaled_relu(y, x, c)

    def relu_gap_sq(self, v: Any, u: Any) -> float:
        return float(_relu_gap_sq(v, u))

    def lin_gap_sq(self, u: Any, p: Any, b: Optional[Any]) -> float:
        has_b = b is not None
        return float(_lin_gap_sq(u, p, b if has_b else np.zeros(1, dtype=u.dtype), has_b))
