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
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np

from .._validation import NonFiniteError, check_ndim, check_relaxation, float_dtype
from .relu_prox_kernel import relu_prox_relaxed_vectorized, relu_prox_vectorized


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
        # numpy reads None as float64: a missing value must not pass as a choice
        dt = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):  # not a dtype at all ("floaty", 5, a list)
        dt = None
    if dt is None or dt.type not in (np.float32, np.float64):
        raise ValueError(f"{name}={dtype!r} is not supported; use 'float32' or 'float64'")
    return dt


def check_kernel_operands(arrays: Sequence[Tuple[str, Any]], bias: Optional[Tuple[str, Any]] = None,
                          out: Optional[str] = None) -> None:
    """The fused kernels' preconditions, checked before a compiled loop reads or writes anything.

    A compiled loop trusts its operands: given a (2, 3) ``p`` and a (4, 5) ``u`` it would read past ``p``'s
    end, and an int64 ``u`` would receive truncated results. So every operand must be a 2-D array of the
    first one's shape and of its float dtype (float32/float64); ``bias`` 1-D with one entry per row, same
    dtype; the operand named ``out`` (written in place) writeable. Any memory layout is fine: the 2-D
    kernels index rows and columns through the strides (the flat ReLU kernel runs only on C-contiguous
    arrays and falls back to array expressions otherwise).

    Parameters
    ----------
    arrays : sequence of (name, array)
        The operands, the first one setting the shape and dtype.
    bias : (name, array or None), optional
    out : str, optional
        Name of the operand written in place.

    Raises
    ------
    TypeError
        An operand that is not an array or has another dtype; the message names it.
    ValueError
        A shape that differs, or a read-only ``out``; the message names it.
    """
    name0, first = arrays[0]
    for name, a in arrays:
        _check_float_operand(name, a)
        check_ndim(a.shape, name, ndim=2)
        if a.shape != first.shape:
            raise ValueError(f"{name} has shape {tuple(a.shape)} but {name0} has {tuple(first.shape)}")
        if a.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but {name0} has {first.dtype}")
    if bias is not None and bias[1] is not None:
        name, b = bias
        _check_float_operand(name, b)
        if tuple(b.shape) != (first.shape[0],):
            raise ValueError(f"{name} must have shape ({first.shape[0]},) (one entry per row of {name0}), "
                             f"got {tuple(b.shape)}")
        if b.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {b.dtype} but {name0} has {first.dtype}")
    if out is not None:
        _check_writeable(out, dict(arrays)[out])


def _check_float_operand(name: str, a: Any) -> None:
    """``a`` is an array of float32 or float64 (a kernel's operand), else ``TypeError`` naming ``name``."""
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        raise TypeError(f"{name} must be an array of the backend, got {type(a).__name__}")
    if a.dtype.type not in (np.float32, np.float64):
        raise TypeError(f"{name} has dtype {a.dtype}; the kernels compute in float32 or float64 "
                        "(convert with Backend.asarray(x, dtype=...))")


def _check_writeable(name: str, a: Any) -> None:
    if not getattr(a.flags, "writeable", True):  # CuPy arrays have no such flag: always writeable
        raise ValueError(f"{name} is read-only; the kernel writes its result into it")


def _check_elementwise(x: Any, out: Optional[Any]) -> None:
    """:meth:`Backend.relu`'s operands: a float array ``x`` of any shape, ``out`` like it and writeable."""
    _check_float_operand("x", x)
    if out is not None:
        _check_float_operand("out", out)
        if tuple(out.shape) != tuple(x.shape) or out.dtype != x.dtype:
            raise ValueError(f"out must have x's shape {tuple(x.shape)} and dtype {x.dtype}, got "
                             f"{tuple(out.shape)} {out.dtype}")
        _check_writeable("out", out)


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
        """``x`` as a C-contiguous floating array of this backend.

        Parameters
        ----------
        x : array_like
            Any array or nested sequence of real numbers.
        dtype : {"float32", "float64"}, optional
            Cast to this dtype; default: the package's dtype rule
            (:func:`nnbcd._validation.float_dtype`: float32/float64 kept, integers promoted to float64).
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
            If ``x`` is not an array of real numbers (bool, float16, complex, object, strings, a ragged
            nested list), whatever ``dtype`` says: a cast would drop imaginary parts or invent values.
        """
        target = None if dtype is None else check_dtype(dtype)
        try:
            arr = self.xp.asarray(x)
        except (ValueError, TypeError) as exc:  # ragged nested lists, unconvertible objects
            raise TypeError(f"{name} must be an array or a nested sequence of real numbers ({exc})") from None
        rule = float_dtype(arr.dtype, name)
        # asarray(order="C") rather than ascontiguousarray, which turns a 0-d array into shape (1,)
        return self.xp.asarray(arr, dtype=target if target is not None else rule, order="C")

    def as_real_array(self, x: Any, name: str, *, ndim: Optional[int] = None, min_ndim: int = 0,
                      allow_empty: bool = True, finite: bool = False, allow_nan: bool = True) -> Any:
        """An array argument of a public function, converted and checked (the validation every op uses).

        Parameters
        ----------
        x : array_like
            The argument (numpy or this backend's array, or a nested sequence of numbers).
        name : str
            Its name, for the messages.
        ndim : int, optional
            Required number of axes.
        min_ndim : int
            Least number of axes.
        allow_empty : bool
            Accept an array with no entries.
        finite : bool
            Refuse NaN and ±Inf (where the result would be silently wrong: an SVD, a rank estimate).
        allow_nan : bool
            ``False``: refuse NaN only (±Inf have a meaning there, e.g. as the largest magnitude).

        Returns
        -------
        array
            As :meth:`asarray` with no ``dtype``: float32/float64 kept, integers promoted to float64.

        Raises
        ------
        TypeError
            For a non-real dtype (see :meth:`asarray`); the message names ``name``.
        ValueError
            For the wrong number of axes or an empty array; :class:`~nnbcd._validation.NonFiniteError`
            (a ``ValueError``) for NaN/Inf; the message names ``name``.
        """
        arr = self.asarray(x, name=name)
        check_ndim(arr.shape, name, ndim=ndim, min_ndim=min_ndim, allow_empty=allow_empty)
        if finite and not self.isfinite_all(arr):
            raise NonFiniteError(f"{name} contains NaN or Inf")
        if not allow_nan and bool(self.xp.isnan(arr).any()):
            raise NonFiniteError(f"{name} contains NaN")
        return arr

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
    # Each public kernel checks its operands (check_kernel_operands) and calls the underscored
    # implementation, which a backend overrides with its compiled loop; the defaults below are xp
    # array expressions.
    def relu(self, x: Any, out: Optional[Any] = None) -> Any:
        r""":math:`\max(X, 0)`, into ``out`` (same shape and dtype as ``x``) when given.

        Raises
        ------
        TypeError, ValueError
            As :func:`check_kernel_operands`, naming ``x`` or ``out``.
        """
        _check_elementwise(x, out)
        return self._relu(x, out)

    def _relu(self, x: Any, out: Optional[Any]) -> Any:
        return self.xp.maximum(x, 0, out=out)

    def relu_prox_update(
        self, p: Any, u: Any, v: Any, b: Optional[Any], rho: float, alpha: float, gamma: float,
        relaxation: float = 1.0,
    ) -> Any:
        r"""Exact U-block update, in place on ``u`` (d, N).

        With :math:`a = (\rho(P + b1^T) + \alpha U^k)/(\rho+\alpha)` and :math:`\beta=(\rho+\alpha)/\gamma`,
        every entry becomes the ReLU prox of :func:`~nnbcd.backend.relu_prox_kernel.relu_prox_scalar`
        (``relaxation`` = ω ≠ 1: the safeguarded over-relaxed step of
        :func:`~nnbcd.backend.relu_prox_kernel.relu_prox_relaxed_scalar` from :math:`U^k`).
        ``p`` (d, N) is :math:`W_i V_{i-1}` and may be overwritten; ``v`` (d, N) is the new :math:`V_i`;
        ``b`` (d,) is the bias or ``None``; all of one float dtype.

        Raises
        ------
        TypeError, ValueError
            As :func:`check_kernel_operands` (shapes, dtypes, a read-only ``u``), before any entry is read;
            ``relaxation`` not a number in [1, 2).
        """
        check_kernel_operands((("u", u), ("p", p), ("v", v)), bias=("b", b), out="u")
        relaxation = check_relaxation(relaxation)
        return self._relu_prox_update(p, u, v, b, rho, alpha, gamma, relaxation)

    #: entries per row block of the array-expression kernels below, whose temporaries (several per
    #: expression) are then that small instead of d×N each; ``None``: whole arrays (a GPU wants few large
    #: launches)
    expression_block: Optional[int] = None

    def _row_blocks(self, shape: Tuple[int, ...]) -> Iterator[slice]:
        rows = shape[0] if self.expression_block is None else max(1, self.expression_block // max(1, shape[1]))
        return (slice(lo, lo + rows) for lo in range(0, shape[0], rows))

    def _relu_prox_update(self, p: Any, u: Any, v: Any, b: Optional[Any], rho: float, alpha: float,
                          gamma: float, relaxation: float = 1.0) -> Any:
        beta = (rho + alpha) / gamma
        for rows in self._row_blocks(u.shape):
            pr = p[rows]
            if b is not None:
                pr += b[rows, None]
            a = (rho * pr + alpha * u[rows]) / (rho + alpha)
            if relaxation == 1.0:
                u[rows] = relu_prox_vectorized(v[rows], a, beta, self.xp)
            else:
                u[rows] = relu_prox_relaxed_vectorized(v[rows], a, u[rows], relaxation, beta, self.xp)
        return u

    def add_scaled_relu(self, y: Any, x: Any, c: float) -> Any:
        r""":math:`Y \leftarrow Y + c\,\max(X, 0)` in place on ``y``; returns ``y`` (``x`` of ``y``'s shape).

        Raises
        ------
        TypeError, ValueError
            As :func:`check_kernel_operands`, naming ``y`` or ``x``.
        """
        check_kernel_operands((("y", y), ("x", x)), out="y")
        return self._add_scaled_relu(y, x, c)

    def _add_scaled_relu(self, y: Any, x: Any, c: float) -> Any:
        y += c * self.xp.maximum(x, 0)
        return y

    def relu_gap_sq(self, v: Any, u: Any) -> float:
        r""":math:`\|V - \max(U, 0)\|_F^2` for ``v``, ``u`` of one shape.

        Raises
        ------
        TypeError, ValueError
            As :func:`check_kernel_operands`, naming ``v`` or ``u``.
        """
        check_kernel_operands((("v", v), ("u", u)))
        return self._relu_gap_sq(v, u)

    def _relu_gap_sq(self, v: Any, u: Any) -> float:
        total = 0.0
        for rows in self._row_blocks(u.shape):
            d = v[rows] - self.xp.maximum(u[rows], 0)
            total += float((d * d).sum())
        return total

    def lin_gap_sq(self, u: Any, p: Any, b: Optional[Any]) -> float:
        r""":math:`\|U - P - b1^T\|_F^2` with ``p`` :math:`= WV` (d, N) and ``b`` (d,) or ``None``.

        Raises
        ------
        TypeError, ValueError
            As :func:`check_kernel_operands`, naming ``u``, ``p`` or ``b``.
        """
        check_kernel_operands((("u", u), ("p", p)), bias=("b", b))
        return self._lin_gap_sq(u, p, b)

    def _lin_gap_sq(self, u: Any, p: Any, b: Optional[Any]) -> float:
        total = 0.0
        for rows in self._row_blocks(u.shape):
            d = u[rows] - p[rows]
            if b is not None:
                d -= b[rows, None]
            total += float((d * d).sum())
        return total

    def over_relax(self, new: Any, old: Any, omega: float) -> Any:
        r""":math:`X \leftarrow X^k + \omega(X - X^k)` in place on ``new`` (:math:`X`), ``old`` (:math:`X^k`)
        of its shape; returns ``new``. ω = 1 leaves ``new`` as it is.

        The over-relaxed step of successive over-relaxation (D. M. Young, *Iterative methods for solving
        partial difference equations of elliptic type*, PhD thesis, Harvard, 1950): for a convex quadratic
        q minimised exactly at :math:`X`, :math:`q(X^k + \omega D) = q(X^k) - \omega(1 - \omega/2)\,D^THD`
        with :math:`D = X - X^k`, a decrease for every ω ∈ (0, 2); NN-BCD uses ω ∈ [1, 2).

        Raises
        ------
        ValueError, TypeError
            ``omega`` not a number in [1, 2).
        """
        omega = check_relaxation(omega, "omega")
        if omega != 1.0:
            new -= old
            new *= omega
            new += old
        return new

    def sq_dist(self, x: Any, y: Any) -> float:
        r""":math:`\|X - Y\|_F^2` for ``x``, ``y`` of one shape (no broadcasting: a mismatch is an error).

        Raises
        ------
        ValueError
            If the shapes differ (the message names ``x`` and ``y``).
        """
        if tuple(x.shape) != tuple(y.shape):
            raise ValueError(f"y has shape {tuple(y.shape)} but x has {tuple(x.shape)}")
        if x.ndim == 2 and x.dtype == y.dtype:  # the d×N blocks' steps: a fused kernel where the backend has one
            return self._lin_gap_sq(x, y, None)
        d = x - y
        return float((d * d).sum())

    def __repr__(self) -> str:
        return f"<nnbcd backend {self.name!r}>"
