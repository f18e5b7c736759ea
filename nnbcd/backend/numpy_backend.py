"""The numpy backend: numpy arrays, scipy's BLAS/LAPACK for all level-3 work, array-expression kernels.

It is the readable reference every other backend is tested against. All level-3 work (gemm, syrk,
potrf, trsm) goes through one BLAS library, scipy's: numpy and scipy ship separate OpenBLAS builds whose
thread pools otherwise fight for the cores after each call.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import scipy.linalg
from scipy.linalg.blas import get_blas_funcs
from scipy.linalg.lapack import get_lapack_funcs

from ._base import Backend, _generic_matmul


def _fortran_operand(x: Any) -> tuple:
    """``(F-contiguous array, trans flag)`` such that op(array) = :math:`X^T`, without copying when possible."""
    if x.T.flags.f_contiguous:
        return x.T, 0
    if x.flags.f_contiguous:
        return x, 1
    return np.asfortranarray(x.T), 0


def _same_buffer(a: Any, b: Any) -> bool:
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.strides == b.strides


#: side of the square tiles :func:`_mirror_lower` copies: a source and a destination tile (2 × 128 KiB in
#: float64) stay in the L2 cache while one is read transposed (measured at n = 5408, one thread: tiles of
#: 64-128 and 512 alike, 256 up to 1.7x slower in float64, the untiled ``c + c.T`` 3.5-5x slower)
_MIRROR_TILE = 128


def _mirror_lower(c: Any) -> Any:
    """Copy the lower triangle of the square C-ordered ``c`` onto its upper triangle, in place; returns ``c``.

    A transposed copy of the whole triangle reads one element per cache line (and per page, at large n);
    tile by tile, each transposed tile is read from cache.
    """
    n, t = c.shape[0], _MIRROR_TILE
    for i0 in range(0, n, t):
        i1 = min(i0 + t, n)
        diag = c[i0:i1, i0:i1]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
        for j0 in range(i1, n, t):  # the tiles right of the diagonal one, from those below it
            j1 = min(j0 + t, n)
            c[i0:i1, j0:j1] = c[j0:j1, i0:i1].T
    return c


class NumpyBackend(Backend):
    """numpy arrays; BLAS ``gemm``/``syrk``/``trsm`` and LAPACK ``potrf``/``gesdd``/``syevd`` from scipy."""

    name = "numpy"
    xp = np
    #: 2**18 entries (1 MB in float32): the ReLU prox's temporaries stay in cache and off the d×N budget
    #: (a 1024 × 50,000 U block allocated ~6 arrays of its size)
    expression_block = 1 << 18

    def asarray(self, x: Any, dtype: Any = None, name: str = "x") -> Any:
        if hasattr(x, "__cuda_array_interface__"):
            x = x.get()  # a device array comes to the host
        return super().asarray(x, dtype, name)

    # ---- linear algebra ----------------------------------------------------------------------
    def matmul(self, a: Any, b: Any, out: Optional[Any] = None, alpha: float = 1.0, beta: float = 0.0) -> Any:
        r""":math:`\text{out} \leftarrow \alpha AB + \beta\,\text{out}` by the BLAS ``gemm`` of scipy's
        library (``beta`` needs ``out``)."""
        if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype:
            return _generic_matmul(self.xp, a, b, out, alpha, beta)
        gemm = get_blas_funcs("gemm", (a, b))
        # C = AB is computed as C^T = B^T A^T on Fortran-ordered views: no layout copies
        pb, tb = _fortran_operand(b)
        pa, ta = _fortran_operand(a)
        if out is None:
            return gemm(alpha, pb, pa, trans_a=tb, trans_b=ta).T
        res = gemm(alpha, pb, pa, trans_a=tb, trans_b=ta, beta=beta, c=out.T, overwrite_c=1)
        if not _same_buffer(res.T, out):
            out[...] = res.T
        return out

    def gram(self, a: Any) -> Any:
        """:math:`A A^T` (full symmetric, C-contiguous) by BLAS ``syrk``: half the FLOPs of a GEMM.

        ``syrk`` fills one triangle; :func:`_mirror_lower` copies it onto the other in place, tile by tile
        (5408×6000 float32, one thread: syrk 0.92 s, the tiled mirror 0.03-0.06 s, ``c + c.T`` 0.41 s).
        """
        # the upper triangle of the Fortran-ordered result is the lower triangle of its C-ordered transpose
        return _mirror_lower(self._syrk_upper(a, 1.0).T)

    def cho_factor_gram(self, a: Any, scale: float, shift: float) -> Any:
        r"""Cholesky factor of :math:`\text{shift}\,I + \text{scale}\,AA^T` straight from ``syrk``'s
        upper triangle: no symmetric copy is ever formed."""
        c = self._syrk_upper(a, scale)
        idx = np.arange(c.shape[0])
        c[idx, idx] += shift
        return self.cho_factor(c.T, overwrite_a=True)

    def _syrk_upper(self, a: Any, scale: float) -> Any:
        syrk = get_blas_funcs("syrk", (a,))
        if a.flags.c_contiguous:
            return syrk(scale, a.T, trans=1, lower=0)
        return syrk(scale, np.asfortranarray(a), trans=0, lower=0)

    def cho_factor(self, a: Any, overwrite_a: bool = False) -> Any:
        """Upper Cholesky factor :math:`R` of an SPD matrix, :math:`A = R^T R`, by LAPACK ``potrf``.

        ``a`` is read as symmetric; its transpose (a Fortran-ordered view of the same matrix) goes to
        ``potrf`` so no layout copy is made.
        """
        potrf = get_lapack_funcs("potrf", (a,))
        r, info = potrf(a.T, lower=0, overwrite_a=overwrite_a, clean=1)
        if info > 0:
            raise np.linalg.LinAlgError(
                f"matrix is not positive definite (leading minor {info}); "
                "check for non-finite data or a zero alpha/gamma"
            )
        return r

    def cho_solve(self, factor: Any, b: Any, overwrite_b: bool = False) -> Any:
        r"""Solve :math:`A X = B` with :math:`A=R^TR`, by two triangular solves (in place if allowed).

        ``B`` is C-ordered, so :math:`B^T` is Fortran-ordered and the solve runs as
        :math:`X^T = B^T R^{-1} R^{-T}` (BLAS ``trsm`` from the right) with no layout copy.
        """
        if b.ndim == 1:
            return self.cho_solve(factor, b[:, None], overwrite_b)[:, 0]
        trsm = get_blas_funcs("trsm", (factor, b))
        y = b.T if overwrite_b else b.T.copy(order="F")
        y = trsm(1.0, factor, y, side=1, lower=0, trans_a=0, overwrite_b=1)
        y = trsm(1.0, factor, y, side=1, lower=0, trans_a=1, overwrite_b=1)
        return y.T

    def cho_solve_right(self, factor: Any, b: Any, overwrite_b: bool = False) -> Any:
        r"""Solve :math:`X A = B` with :math:`A=R^TR`: :math:`X^T = R^{-1} R^{-T} B^T` with :math:`B^T`
        Fortran-ordered, by BLAS ``trsm`` from the left."""
        trsm = get_blas_funcs("trsm", (factor, b))
        y = b.T if overwrite_b else b.T.copy(order="F")
        y = trsm(1.0, factor, y, side=0, lower=0, trans_a=1, overwrite_b=1)
        y = trsm(1.0, factor, y, side=0, lower=0, trans_a=0, overwrite_b=1)
        return y.T

    def solve_triangular_right(self, factor: Any, b: Any) -> Any:
        r""":math:`B R^{-1}` with the Cholesky factor :math:`R` of :meth:`cho_factor` (:math:`A = R^TR`)."""
        trsm = get_blas_funcs("trsm", (factor, b))
        y = b.T.copy(order="F")  # X^T = R^{-T} B^T: one triangular solve from the left
        return trsm(1.0, factor, y, side=0, lower=0, trans_a=1, overwrite_b=1).T

    def svd(self, a: Any) -> tuple:
        """Thin SVD ``(U, s, Vt)`` (LAPACK ``gesdd``)."""
        return scipy.linalg.svd(a, full_matrices=False, check_finite=False, lapack_driver="gesdd")

    def eigvalsh(self, a: Any) -> Any:
        """Eigenvalues of a symmetric matrix, ascending (LAPACK ``syevd``, no eigenvectors)."""
        return scipy.linalg.eigh(a, eigvals_only=True, driver="evd", check_finite=False)

    def qr_q(self, a: Any) -> Any:
        """Orthonormal factor :math:`Q` of the thin QR of a tall matrix (LAPACK ``geqrf``/``orgqr``)."""
        return scipy.linalg.qr(a, mode="economic", overwrite_a=True, check_finite=False)[0]

    def eigh_top(self, a: Any, k: int) -> tuple:
        """The ``k`` largest eigenpairs of a symmetric matrix, descending.

        Divide and conquer (``syevd``) on the whole matrix, then the top ``k``: at the sizes TT-SVD meets
        (n ≲ 300) it is 4-6x faster than ``syevr`` asked for the subset only (measured).
        """
        w, v = scipy.linalg.eigh(a, driver="evd", check_finite=False)
        return w[::-1][:k], v[:, ::-1][:, :k]
