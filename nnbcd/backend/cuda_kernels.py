"""CUDA kernels (numba-cuda), written once and testable without a GPU.

The kernels accept any array with ``__cuda_array_interface__`` (CuPy arrays on a real GPU) and numpy
arrays under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how the test suite checks them
on machines without a GPU. The ReLU prox is the shared scalar formula compiled as a device function.
"""
from __future__ import annotations

from typing import Any, Optional

from numba import cuda

from ._base import check_kernel_operands
from .relu_prox_kernel import relu_prox_constants, relu_prox_relaxed_scalar, relu_prox_scalar

_prox = cuda.jit(device=True)(relu_prox_scalar)
_relaxed_prox = cuda.jit(device=True)(relu_prox_relaxed_scalar)

_THREADS = 256


@cuda.jit
def _relu_prox_update_kernel(p, u, v, b, has_b, rho, alpha, inv, cp, cq, ck, relax, omega):  # pragma: no cover
    i, j = cuda.grid(2)
    if i < u.shape[0] and j < u.shape[1]:
        bi = b[i] if has_b else b[0] * 0
        a = (rho * (p[i, j] + bi) + alpha * u[i, j]) * inv
        star = _prox(v[i, j], a, cp, cq, ck)
        u[i, j] = _relaxed_prox(v[i, j], a, u[i, j], star, omega, cp, cq) if relax else star


def relu_prox_update(
    p: Any, u: Any, v: Any, b: Optional[Any], rho: float, alpha: float, gamma: float, zeros1: Any,
    relaxation: float = 1.0,
) -> Any:
    """Launch the fused U-block kernel in place on ``u`` (see ``Backend.relu_prox_update``); ``zeros1`` is a
    length-1 zero array of ``u``'s dtype standing in for a missing bias.

    Raises
    ------
    TypeError, ValueError
        As :func:`~nnbcd.backend._base.check_kernel_operands`, before the launch (a kernel given a
        smaller ``p`` would read out of bounds).
    """
    check_kernel_operands((("u", u), ("p", p), ("v", v)), bias=("b", b), out="u")
    rows, cols = u.shape
    block = (1, _THREADS)
    grid = (rows, (cols + _THREADS - 1) // _THREADS)
    has_b = b is not None
    t = u.dtype.type
    consts = relu_prox_constants((rho + alpha) / gamma)
    _relu_prox_update_kernel[grid, block](
        p, u, v, b if has_b else zeros1, has_b, t(rho), t(alpha), t(1.0 / (rho + alpha)), *map(t, consts),
        relaxation != 1.0, t(relaxation)
    )
    return u
