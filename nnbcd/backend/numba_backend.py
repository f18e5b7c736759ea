"""The numba backend: the numpy backend (arrays, BLAS/LAPACK for GEMM and factorisations) with parallel
fused kernels.

Elementwise and reduction kernels are ``@njit`` loops over rows (threaded with ``prange`` above a size
threshold, serial below it) that read each operand
once and allocate nothing of size d×N; the ReLU prox is the shared scalar formula inlined.
"""
from __future__ import annotations

import types
from typing import Any, Optional

import numpy as np

from ._base import BackendUnavailableError
from .numpy_backend import NumpyBackend
from .relu_prox_kernel import relu_prox_constants, relu_prox_relaxed_scalar, relu_prox_scalar

try:
    from numba import njit, prange
except ImportError as exc:  # pragma: no cover - numba is a hard dependency, kept for a clear message
    raise BackendUnavailableError("backend='numba' needs numba: pip install numba") from exc

_prox = njit(inline="always", cache=False)(relu_prox_scalar)
_relaxed_prox = njit(inline="always", cache=False)(relu_prox_relaxed_scalar)


def _relu_prox_update(p, u, v, b, has_b, rho, alpha, inv, cp, cq, ck, relax, omega):  # pragma: no cover
    n_rows, n_cols = u.shape
    for i in prange(n_rows):
        bi = b[i] if has_b else b[0] * 0
        for j in range(n_cols):
            a = (rho * (p[i, j] + bi) + alpha * u[i, j]) * inv
            star = _prox(v[i, j], a, cp, cq, ck)
            u[i, j] = _relaxed_prox(v[i, j], a, u[i, j], star, omega, cp, cq) if relax else star


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


def _add_scaled_relu(y, x, c):  # pragma: no cover - compiled
    n_rows, n_cols = y.shape
    for i in prange(n_rows):
        for j in range(n_cols):
            xv = x[i, j]
            if xv > 0:
                y[i, j] += c * xv


def _relu_inplace(x):  # pragma: no cover - compiled
    flat = x.reshape(-1)
    for i in prange(flat.size):
        if flat[i] < 0:
            flat[i] = 0


def _compiled(fn):
    """The same loop compiled twice: threaded (``prange`` over rows) and serial (``prange`` = ``range``).

    The serial twin is a copy of the function under another name so the two on-disk caches differ.
    """
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial")
    twin.__qualname__ = twin.__name__
    return (njit(parallel=True, fastmath=False, cache=True)(fn),
            njit(parallel=False, fastmath=False, cache=True)(twin))


_KERNELS = {f.__name__: _compiled(f) for f in (_relu_prox_update, _relu_gap_sq, _lin_gap_sq, _add_scaled_relu,
                                              _relu_inplace)}


class NumbaBackend(NumpyBackend):
    """The numpy backend's arrays and BLAS/LAPACK, with numba-compiled fused kernels
    (``numba.set_num_threads`` controls their threads)."""

    name = "numba"

    #: arrays with fewer elements run the serial variant. The kernels run between BLAS calls, whose
    #: idle OpenBLAS workers keep spinning for a while: waking numba's threads then costs ~4-7 ms per
    #: call on 2 cores, more than the threads save. Measured (benchmarks/bench_iteration.py, HAR size,
    #: float32): all serial 0.713 s/sweep, threaded from 4M elements 0.769 s, always threaded 0.798 s;
    #: digits 64-256-256-10: 3.5x faster serial. Lower it on machines where threads pay.
    parallel_min_size = 1 << 26

    def _kernel(self, name: str, size: int) -> Any:
        threaded, serial = _KERNELS[name]
        return threaded if size >= self.parallel_min_size else serial

    # the public kernels (Backend) check their operands, then call these compiled implementations
    def _relu_prox_update(
        self, p: Any, u: Any, v: Any, b: Optional[Any], rho: float, alpha: float, gamma: float,
        relaxation: float = 1.0,
    ) -> Any:
        has_b = b is not None
        bb = b if has_b else np.zeros(1, dtype=u.dtype)
        t = u.dtype.type  # scalars in the arrays' precision: float32 kernels never widen
        consts = relu_prox_constants((rho + alpha) / gamma)
        kernel = self._kernel("_relu_prox_update", u.size)
        kernel(p, u, v, bb, has_b, t(rho), t(alpha), t(1.0 / (rho + alpha)), *map(t, consts), relaxation != 1.0,
               t(relaxation))
        return u

    def _relu(self, x: Any, out: Optional[Any]) -> Any:
        if out is None:
            out = x.copy()
        elif out is not x:
            out[...] = x
        if out.flags.c_contiguous:  # the flat kernel reads the buffer in order
            self._kernel("_relu_inplace", out.size)(out)
        else:
            np.maximum(out, 0, out=out)
        return out

    def _add_scaled_relu(self, y: Any, x: Any, c: float) -> Any:
        self._kernel("_add_scaled_relu", y.size)(y, x, y.dtype.type(c))
        return y

    def _relu_gap_sq(self, v: Any, u: Any) -> float:
        return float(self._kernel("_relu_gap_sq", u.size)(v, u))

    def _lin_gap_sq(self, u: Any, p: Any, b: Optional[Any]) -> float:
        has_b = b is not None
        kernel = self._kernel("_lin_gap_sq", u.size)
        return float(kernel(u, p, b if has_b else np.zeros(1, dtype=u.dtype), has_b))
