"""The backend interface: what every array backend provides to the layers above.

A backend bundles an array module (``xp``), the dense linear algebra the solver needs (GEMM, Gram,
Cholesky factor and solves, SVD, symmetric eigensolvers, QR) and the fused elementwise kernels of an
NN-BCD sweep. The linear algebra is abstract: each backend binds it to its own library
(:class:`~nnbcd.backend.numpy_backend.NumpyBackend`: scipy's BLAS/LAPACK; ``CupyBackend``: cuBLAS and
cuSOLVER). The array helpers and kernels have defaults written as ``xp`` array expressions, which a
backend overrides where it has something faster (numba loops, CUDA kernels).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional

import numpy as np

from .relu_prox_kernel import relu_prox_vectorized


class BackendUnavailableError(ImportError):
    """A backend's library or device is missing on this machine."""


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """The numpy dtype of a supported floating-point type.

    Parameters
    ----------
    dtype : str, type or numpy.dtype
        Anything ``numpy.dtype`` accepts.
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    numpy.dtype
        ``float32`` or ``float64``.

    Raises
    ------
    ValueError
        If ``dtype`` is not float32 or float64; the message names ``name``.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.type not in (np.float32, np.float64):
        raise ValueError(f"{name}={dtype!r} is not supported; use 'float32' or 'float64'")
    return dt


def _generic_matmul(xp: Any, a: Any, b: Any, out: Optional[Any], alpha: float, beta: float) -> Any:
    """``out <- alpha a @ b + beta out`` with ``xp.matmul`` (any shapes, any library)."""
    prod = xp.matmul(a, b)
    if alpha != 1.0:
        prod *= alpha
    if out is None:
        return prod
    if beta == 0.0:
        out[...] = prod
    else:
        out *= beta
        out += prod
    return out


class Backend(ABC):
    """Array module, SPD linear algebra and fused kernels for one kind of array.

    Subclasses set :attr:`name` and :attr:`xp` and implement the abstract linear-algebra methods. All
    arrays are 2-D and C-ordered unless stated; every method keeps its inputs' dtype (float32 stays
    float32). A Cholesky factor is opaque: whatever :meth:`cho_factor` returns is only passed back to
    this backend's solves.

    Attributes
    ----------
    name : str
        Registered name (``get_backend(name)`` returns this object).
    xp : module
        The array module (numpy or cupy).
    """

    name: str
    xp: Any

    # ---- arrays -------------------------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None, name: str = "x") -> Any:
        """``x`` as a C-contiguous array of this backend (a cast happens only when asked for).

        Parameters
        ----------
        x : array_like
            Any array or nested sequence.
        dtype : {"float32", "float64"}, optional
            Cast to this dtype; default keep ``x``'s.
        name : str
            The argument's name, used in error messages.

        Returns
        -------
        array
            ``x`` itself when it already is a contiguous array of the right kind and dtype.

        Raises
        ------
        ValueError
            If ``dtype`` is not float32/float64.
        TypeError
            If ``x`` is not floating point and no ``dtype`` is given.
        """
        if dtype is not None:
            dtype = check_dtype(dtype)
        arr = self.xp.asarray(x, dtype=dtype)
        if arr.dtype.type not in (np.float32, np.float64):
            raise TypeError(f"{name} has dtype {arr.dtype}; pass dtype='float32' or 'float64'")
        return self.xp.ascontiguousarray(arr)

    def to_numpy(self, x: Any) -> np.ndarray:
        """``x`` as a numpy array on the host (no copy when it already is one)."""
        if hasattr(x, "get") and not isinstance(x, np.ndarray):
            return x.get()
        return np.asarray(x)

    def empty(self, shape: Any, dtype: Any) -> Any:
        """Uninitialised array of ``shape`` and ``dtype``."""
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape: Any, dtype: Any) -> Any:
        """Zero array of ``shape`` and ``dtype``."""
        return self.xp.zeros(shape, dtype=dtype)

    def isfinite_all(self, x: Any) -> bool:
        """Whether every entry of ``x`` is finite (one host sync on a device)."""
        return bool(self.xp.isfinite(x).all())

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU); used only around timers."""

    # ---- linear algebra ----------------------------------------------------------------------
    @abstractmethod
    def matmul(self, a: Any, b: Any, out: Optional[Any] = None, alpha: float = 1.0, beta: float = 0.0) -> Any:
        r""":math:`\text{out} \leftarrow \alpha AB + \beta\,\text{out}`.

        Parameters
        ----------
        a : array, shape (m, k)
        b : array, shape (k, n)
            Same dtype as ``a``. Other ranks fall back to ``xp.matmul`` broadcasting.
        out : array, shape (m, n), optional
            Written in place and returned; required when ``beta != 0``.
        alpha, beta : float

        Returns
        -------
        array, shape (m, n)
        """

    @abstractmethod
    def gram(self, a: Any) -> Any:
        """:math:`A A^T` for ``a`` of shape (m, k): the full symmetric (m, m) matrix."""

    @abstractmethod
    def cho_factor_gram(self, a: Any, scale: float, shift: float) -> Any:
        r"""Cholesky factor of :math:`\text{shift}\,I + \text{scale}\,AA^T` for ``a`` of shape (m, k).

        Raises
        ------
        numpy.linalg.LinAlgError
            If the matrix is not positive definite.
        """

    @abstractmethod
    def cho_factor(self, a: Any, overwrite_a: bool = False) -> Any:
        """Cholesky factor of the SPD (m, m) matrix ``a`` (read as symmetric); never forms an inverse.

        Raises
        ------
        numpy.linalg.LinAlgError
            If ``a`` is not positive definite; the message says so.
        """

    @abstractmethod
    def cho_solve(self, factor: Any, b: Any, overwrite_b: bool = False) -> Any:
        """Solve :math:`A X = B` for ``b`` of shape (m, n) or (m,), with ``factor`` from :meth:`cho_factor`."""

    @abstractmethod
    def cho_solve_right(self, factor: Any, b: Any, overwrite_b: bool = False) -> Any:
        """Solve :math:`X A = B` (:math:`X = BA^{-1}`) for ``b`` of shape (n, m)."""

    @abstractmethod
    def solve_triangular_right(self, factor: Any, b: Any) -> Any:
        r""":math:`B R^{-1}` for ``b`` of shape (n, m), where :math:`A = R^TR` is the factored matrix
        (the Q of a Cholesky QR when :math:`A = B^TB`)."""

    @abstractmethod
    def svd(self, a: Any) -> tuple:
        """Thin SVD ``(U, s, Vt)`` of ``a`` (m, n): shapes (m, k), (k,), (k, n) with k = min(m, n), s descending."""

    @abstractmethod
    def eigvalsh(self, a: Any) -> Any:
        """Eigenvalues of a symmetric (m, m) matrix, ascending, without eigenvectors."""

    @abstractmethod
    def qr_q(self, a: Any) -> Any:
        """Orthonormal factor :math:`Q` (m, n) of the thin QR of a tall (m, n) matrix (may overwrite ``a``)."""

    @abstractmethod
    def eigh_top(self, a: Any, k: int) -> tuple:
        """The ``k`` largest eigenpairs ``(w, V)`` of a symmetric (m, m) matrix, descending: shapes (k,), (m, k)."""

    def add_diag(self, a: Any, value: float) -> Any:
        """``a += value * I`` in place (square ``a``); returns ``a``."""
        idx = self.xp.arange(a.shape[0])
        a[idx, idx] += value  # fancy indexing also works on non-contiguous sub-blocks
        return a

    # ---- fused kernels -----------------------------------------------------------------------
    def relu(self, x: Any, out: Optional[Any] = None) -> Any:
        r""":math:`\max(X, 0)`, into ``out`` when given."""
        return self.xp.maximum(x, 0, out=out)

    def relu_prox_update(
        self, p: Any, u: Any, v: Any, b: Optional[Any], rho: float, alpha: float, gamma: float
    ) -> Any:
        r"""Exact U-block update, in place on ``u`` (d, N).

        With :math:`a = (\rho(P + b1^T) + \alpha U^k)/(\rho+\alpha)` and :math:`\beta=(\rho+\alpha)/\gamma`,
        every entry becomes the ReLU prox of :func:`~nnbcd.backend.relu_prox_kernel.relu_prox_scalar`.
        ``p`` (d, N) is :math:`W_i V_{i-1}` and may be overwritten; ``v`` (d, N) is the new :math:`V_i`;
        ``b`` (d,) is the bias or ``None``.
        """
        if b is not None:
            p += b[:, None]
        a = (rho * p + alpha * u) / (rho + alpha)
        u[...] = relu_prox_vectorized(v, a, (rho + alpha) / gamma, self.xp)
        return u

    def add_scaled_relu(self, y: Any, x: Any, c: float) -> Any:
        r""":math:`Y \leftarrow Y + c\,\max(X, 0)` in place; returns ``y``."""
        y += c * self.xp.maximum(x, 0)
        return y

    def relu_gap_sq(self, v: Any, u: Any) -> float:
        r""":math:`\|V - \max(U, 0)\|_F^2`."""
        d = v - self.xp.maximum(u, 0)
        return float((d * d).sum())

    def lin_gap_sq(self, u: Any, p: Any, b: Optional[Any]) -> float:
        r""":math:`\|U - P - b1^T\|_F^2` with ``p`` :math:`= WV` (d, N) and ``b`` (d,) or ``None``."""
        d = u - p
        if b is not None:
            d -= b[:, None]
        return float((d * d).sum())

    def sq_dist(self, x: Any, y: Any) -> float:
        r""":math:`\|X - Y\|_F^2`."""
        d = x - y
        return float((d * d).sum())

    def __repr__(self) -> str:
        return f"<nnbcd backend {self.name!r}>"
