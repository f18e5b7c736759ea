"""The CuPy backend: everything stays on the GPU (cuBLAS, cuSOLVER, numba-cuda kernels)."""
from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

from ._base import Backend, BackendUnavailableError, _generic_matmul

try:
    import cupy
    import cupyx
    import cupyx.scipy.linalg as cpx_linalg
except ImportError as exc:
    raise BackendUnavailableError(
        "backend='cupy' needs CuPy and a CUDA GPU: pip install 'nnbcd[gpu]'"
    ) from exc

try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise BackendUnavailableError("backend='cupy': CuPy is installed but no CUDA device was found")
except cupy.cuda.runtime.CUDARuntimeError as exc:
    raise BackendUnavailableError(f"backend='cupy': no usable CUDA device ({exc})") from exc


class CupyBackend(Backend):
    """CuPy arrays; Cholesky by cuSOLVER, triangular solves by cuBLAS, fused kernels by numba-cuda."""

    name = "cupy"
    xp = cupy

    def to_numpy(self, x: Any) -> np.ndarray:
        return cupy.asnumpy(x)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def cho_factor(self, a: Any, overwrite_a: bool = False) -> Any:
        # cuSOLVER potrf; the lower factor L (A = L L^T) plays the role of R^T on the CPU. CuPy
        # returns NaNs for an indefinite matrix unless asked to check potrf's info (one sync).
        try:
            with cupyx.errstate(linalg="raise"):
                return cupy.linalg.cholesky(a)
        except np.linalg.LinAlgError as exc:
            raise np.linalg.LinAlgError(
                f"matrix is not positive definite ({exc}); check for non-finite data or a zero alpha/gamma"
            ) from None

    def cho_solve(self, factor: Any, b: Any, overwrite_b: bool = False) -> Any:
        y = cpx_linalg.solve_triangular(factor, b, lower=True, overwrite_b=overwrite_b)
        return cpx_linalg.solve_triangular(factor, y, lower=True, trans="T", overwrite_b=True)

    def cho_solve_right(self, factor: Any, b: Any, overwrite_b: bool = False) -> Any:
        return self.cho_solve(factor, b.T).T

    def matmul(self, a: Any, b: Any, out: Optional[Any] = None, alpha: float = 1.0, beta: float = 0.0) -> Any:
        return _generic_matmul(cupy, a, b, out, alpha, beta)

    def gram(self, a: Any) -> Any:
        return a @ a.T

    def cho_factor_gram(self, a: Any, scale: float, shift: float) -> Any:
        g = self.gram(a)
        g *= scale
        return self.cho_factor(self.add_diag(g, shift))

    def solve_triangular_right(self, factor: Any, b: Any) -> Any:
        # factor is L with A = L L^T, so R = L^T and B R^{-1} = (L^{-1} B^T)^T
        return cpx_linalg.solve_triangular(factor, b.T, lower=True).T

    def svd(self, a: Any) -> tuple:
        return cupy.linalg.svd(a, full_matrices=False)

    def eigvalsh(self, a: Any) -> Any:
        return cupy.linalg.eigvalsh(a)

    def qr_q(self, a: Any) -> Any:
        return cupy.linalg.qr(a, mode="reduced")[0]

    def eigh_top(self, a: Any, k: int) -> tuple:
        w, v = cupy.linalg.eigh(a)  # cuSOLVER syevd has no subset: slice the top k
        return w[::-1][:k], v[:, ::-1][:, :k]

    def _relu_prox_update(
        self, p: Any, u: Any, v: Any, b: Optional[Any], rho: float, alpha: float, gamma: float,
        relaxation: float = 1.0,
    ) -> Any:
        global _KERNEL_FAILURE
        if _KERNEL_FAILURE is None:
            try:
                from . import cuda_kernels

                return cuda_kernels.relu_prox_update(p, u, v, b, rho, alpha, gamma, cupy.zeros(1, dtype=u.dtype),
                                                     relaxation)
            except Exception as exc:  # numba-cuda absent, or unable to compile on this CUDA/numpy stack
                _KERNEL_FAILURE = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"nnbcd cupy backend: the numba-cuda ReLU-prox kernel is unusable "
                              f"({_KERNEL_FAILURE}); using CuPy array expressions of the same formula "
                              "(correct, with more memory traffic)", RuntimeWarning, stacklevel=2)
        return super()._relu_prox_update(p, u, v, b, rho, alpha, gamma, relaxation)


# why the fused kernel was given up on in this process (None: not tried or working)
_KERNEL_FAILURE: Optional[str] = None
