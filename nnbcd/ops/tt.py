r"""Tensor-train operators on any backend: TT-SVD with a rank cap, reconstruction, contraction.

TT-SVD (I. Oseledets, "Tensor-train decomposition", SIAM J. Sci. Comput. 33(5), 2011) of a tensor with
modes :math:`(n_1,\dots,n_m)`: left to right, the unfolding
:math:`M_t \in \mathbb R^{r_{t-1}n_t \times \prod_{j>t} n_j}` is truncated to rank

.. math:: r_t = \min(r_{t-1} n_t,\ \textstyle\prod_{j>t} n_j,\ r^{\max}_t),

its left singular vectors become core :math:`G_t` (shape :math:`r_{t-1}\times n_t\times r_t`), and
:math:`\Sigma_t P_t^T` (equivalently :math:`G_t^T M_t`) is carried on. The error obeys
:math:`\|W-\tilde W\|^2 \le \sum_t \varepsilon_t^2` with :math:`\varepsilon_t` the rank-:math:`r_t`
truncation error of the t-th unfolding of the original tensor.

``svd`` picks how each truncation is computed; both methods give the same subspaces up to rounding:

* ``"gram"`` (the default everywhere): eigenvectors of the smaller Gram matrix (:math:`M M^T` for wide
  :math:`M`, else :math:`M^TM` followed by an orthonormalisation of :math:`M V_r`, so the core is
  orthonormal by construction), then one GEMM :math:`G^T M`. Only the top :math:`r_t` eigenpairs are
  computed. Squaring :math:`M` squares its condition number: in a Gram formed in the input precision,
  singular values below :math:`\sqrt{\epsilon}\,\sigma_1` are lost (:math:`3.5\cdot10^{-4}\sigma_1` in
  float32, inside the range of retained values). So the Gram, its eigenvectors and the orthonormal
  basis are computed in float64 for float32 input (error :math:`\sqrt{\epsilon_{64}}\sigma_1 \approx
  10^{-8}\sigma_1`, below float32's own resolution); only :math:`G^T M` runs in float32. The result then
  meets the Oseledets bound to float32 rounding, as ``"full"`` does, at a fraction of its cost. For float64
  input the Gram is in the input precision: where a kept eigenvalue is below :math:`\sqrt{\epsilon}` of the
  largest (a singular value below :math:`\epsilon^{1/4}\sigma_1`, near the Gram's resolution), that
  unfolding is cut by the SVD instead.
* ``"full"``: thin SVD (LAPACK ``gesdd``) of :math:`M_t` in the input precision, as the reference and
  tensorly do.
"""
from __future__ import annotations

import math
from typing import Any, List, Sequence, Tuple

import numpy as np

from .._validation import check_array_sequence, check_choice, check_int, check_int_sequence, check_ndim
from ..backend import Backend, infer_backend
from ._scaling import prescaled

#: values of the ``svd=`` argument of :func:`tt_svd` and :class:`nnbcd.compress.TT`
SVD_METHODS = ("gram", "full")


def check_svd(svd: Any) -> str:
    """``svd`` if it is one of :data:`SVD_METHODS`, else ``ValueError`` naming ``svd``."""
    return check_choice(svd, SVD_METHODS, "svd")


def check_rank(rank: Any, name: str = "rank") -> "int | Tuple[int, ...]":
    """A TT rank cap: a positive int, or a sequence of positive ints (its length is checked against the
    modes by :func:`tt_ranks`).

    Raises
    ------
    TypeError
        If ``rank`` is neither (2.5, NaN, a string, None); the message names ``name``.
    ValueError
        If the int or an entry of the sequence is not a positive int (2.5 in a list is never truncated).
    """
    if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool):
        return int(check_int(rank, name))  # type: ignore[arg-type]
    if isinstance(rank, (str, bytes)) or not hasattr(rank, "__len__"):
        raise TypeError(f"{name} must be a positive int or a rank list (1, r_1, ..., 1), got {rank!r}")
    return check_int_sequence(rank, name)


def tt_ranks(modes: Sequence[int], rank: "int | Sequence[int]") -> List[int]:
    r"""Realised TT ranks :math:`(1, r_1, \dots, r_{m-1}, 1)` for ``modes`` under the cap ``rank``.

    :math:`r_t = \min(r_{t-1} n_t,\ \prod_{j>t} n_j,\ r^{\max}_t)` (spec §3.3, the reference's rule).

    Parameters
    ----------
    modes : sequence of int
        :math:`(n_1, \dots, n_m)`.
    rank : int or sequence of int
        The same cap everywhere, or a full cap list ``(1, r_1, ..., r_{m-1}, 1)``.

    Returns
    -------
    list of int, length m + 1

    Raises
    ------
    TypeError
        If ``modes`` is not a sequence, or ``rank`` is neither an int nor a sequence (2.5, NaN, a string).
    ValueError
        If a mode is not a positive int, an int ``rank`` is below 1, or a list is not
        ``(1, positive ints..., 1)`` of length m + 1 (2.5 in a list is refused, never truncated).
    """
    modes = check_int_sequence(modes, "modes")
    m = len(modes)
    cap = check_rank(rank)
    if isinstance(cap, int):
        caps = [1] + [cap] * (m - 1) + [1]
    else:
        caps = list(cap)
        if len(caps) != m + 1 or caps[0] != 1 or caps[-1] != 1:
            raise ValueError(f"rank list must be (1, r_1, ..., r_{m - 1}, 1) with {m + 1} positive entries, "
                             f"got {list(rank)}")
    ranks = [1]
    for t in range(1, m):
        ranks.append(min(ranks[-1] * modes[t - 1], math.prod(modes[t:]), caps[t]))
    return ranks + [1]


def tt_n_params(modes: Sequence[int], ranks: Sequence[int]) -> int:
    r"""Numbers stored by a TT: :math:`P_{TT} = \sum_t r_{t-1} n_t r_t`.

    Parameters
    ----------
    modes : sequence of int, length m
    ranks : sequence of int, length m + 1
        As :func:`tt_ranks` returns.

    Returns
    -------
    int

    Raises
    ------
    TypeError, ValueError
        If ``modes`` or ``ranks`` is not a sequence of positive ints, or ``ranks`` has not m + 1 entries.
    """
    modes = check_int_sequence(modes, "modes")
    ranks = check_int_sequence(ranks, "ranks", length=len(modes) + 1)
    return int(sum(ranks[t] * modes[t] * ranks[t + 1] for t in range(len(modes))))


def _truncate(m: Any, r: int, be: Any, method: str) -> Tuple[Any, Any]:
    """``(Q, C)`` with ``Q`` (a×r) orthonormal spanning the top-r left singular space of ``m`` and
    ``C = Q^T m`` (r×b), both in ``m``'s dtype."""
    a, b = m.shape
    if method == "gram":
        # the Gram squares the condition number: below float64, form it and its eigenvectors in float64
        wide = m if m.dtype == np.float64 else m.astype(np.float64)
        w, q = be.eigh_top(be.gram(wide) if a <= b else be.gram(wide.T), r)
        # float64 input: a kept eigenvalue below √ε of the largest is a singular value below ε^{1/4}σ_1, which
        # the float64 Gram cannot resolve from its rounding (√ε σ_1): that cut is made by the SVD instead
        if m.dtype != np.float64 or float(w[-1]) >= math.sqrt(float(np.finfo(np.float64).eps)) * float(w[0]):
            if a > b:
                q = _orthonormal_basis(be.matmul(wide, q), be)
            q = be.xp.ascontiguousarray(q, dtype=m.dtype)
            return q, be.matmul(q.T, m)
    u, s, vt = be.svd(m)
    return be.xp.ascontiguousarray(u[:, :r]), s[:r, None] * vt[:r]


def _orthonormal_basis(y: Any, be: Any) -> Any:
    """Q of a tall ``y`` by CholeskyQR2 (twice: Gram, Cholesky :math:`R`, :math:`Y R^{-1}`; BLAS-3 only),
    checked: if the Gram is not positive definite or :math:`Q^TQ` misses the identity by more than
    :math:`\\sqrt{\\epsilon}`, a Householder QR is used instead."""
    q = y
    try:
        for _ in range(2):
            q = be.solve_triangular_right(be.cho_factor_gram(q.T, 1.0, 0.0), q)
    except np.linalg.LinAlgError:
        return be.qr_q(y)
    off = be.gram(q.T)
    be.add_diag(off, -1.0)
    if float(be.xp.abs(off).max()) > math.sqrt(float(np.finfo(y.dtype).eps)):
        return be.qr_q(y)
    return q


def tt_svd(tensor: Any, rank: "int | Sequence[int]", *, svd: str = "gram",
           backend: "str | Backend | None" = None) -> List[Any]:
    r"""TT-SVD (Oseledets 2011) of a tensor with a rank cap: left-to-right truncated SVDs of the unfoldings.

    For :math:`t = 1..m-1`, the unfolding :math:`M_t` of shape :math:`(r_{t-1} n_t, \prod_{j>t} n_j)` is
    truncated to rank :math:`r_t` (:func:`tt_ranks`), its top left singular vectors become the core
    :math:`G_t`, and :math:`G_t^T M_t` is carried on; the last carry is :math:`G_m`. The error obeys
    :math:`\|T - \tilde T\|_F^2 \le \sum_t \varepsilon_t^2` (:func:`tt_truncation_bound`), and equals
    tensorly's ``tensor_train`` with the same rank list.

    Parameters
    ----------
    tensor : array_like, shape (n_1, ..., n_m), float32, float64 or integer
        Any number of modes m ≥ 1, at least one entry, finite. Integers are computed in float64.
    rank : int or sequence of int
        Rank cap, as for :func:`tt_ranks`.
    svd : {"gram", "full"}
        How each unfolding is truncated (see the module docstring); both meet the Oseledets bound in
        float32 and float64.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``tensor``.

    Returns
    -------
    list of m arrays
        The cores :math:`G_t` of shapes :math:`(r_{t-1}, n_t, r_t)`, on the backend, in ``tensor``'s
        floating dtype; :math:`G_1..G_{m-1}` have orthonormal columns as (r_{t-1} n_t, r_t) matrices.

    Raises
    ------
    ValueError
        If ``svd`` is not one of :data:`SVD_METHODS`, ``rank`` is invalid, ``tensor`` has no modes or no
        entries, or holds NaN/Inf (:class:`~nnbcd._validation.NonFiniteError`; an SVD of it would be NaN
        or a LAPACK error).
    TypeError
        If ``tensor`` is not real numbers (complex, bool, float16, object): the message names ``tensor``;
        or ``rank`` is neither an int nor a sequence of ints (2.5, NaN).
    """
    method = check_svd(svd)
    be = infer_backend(tensor, backend=backend)
    tensor = be.as_real_array(tensor, "tensor", min_ndim=1, allow_empty=False, finite=True)
    modes = tuple(tensor.shape)
    ranks = tt_ranks(modes, rank)
    # the Gram of "gram" squares the entries: work on an exact power-of-two rescaling, which keeps it in
    # range (float64 beyond ~1e±154 overflows or underflows), and put the factor into the last core
    tensor, scale = prescaled(tensor, be)
    cores = []
    m = tensor.reshape(modes[0], -1)
    for t in range(len(modes) - 1):
        m = m.reshape(ranks[t] * modes[t], -1)
        q, m = _truncate(m, ranks[t + 1], be, method)
        cores.append(q.reshape(ranks[t], modes[t], ranks[t + 1]))
    cores.append(m.reshape(ranks[-2], modes[-1], 1) * m.dtype.type(scale))
    return cores


def _checked_cores(cores: Any, ndim: int, name: str, be: Backend) -> List[Any]:
    """``cores`` as arrays of the backend (the dtype rule of :meth:`Backend.as_real_array`), checked to be
    a non-empty list of ``ndim``-D cores whose ranks chain and end with 1; the messages name ``name[k]``."""
    cores = [be.as_real_array(c, f"{name}[{k}]", ndim=ndim)
             for k, c in enumerate(check_array_sequence(cores, name))]
    for k, c in enumerate(cores):
        if k and c.shape[0] != cores[k - 1].shape[-1]:
            raise ValueError(f"{name}[{k}] has left rank {c.shape[0]} but {name}[{k - 1}] has right rank "
                             f"{cores[k - 1].shape[-1]}")
    if cores[0].shape[0] != 1 or cores[-1].shape[-1] != 1:
        raise ValueError(f"{name} must start and end with rank 1, got {cores[0].shape[0]} and "
                         f"{cores[-1].shape[-1]}")
    return cores


def tt_to_tensor(cores: Sequence[Any], *, backend: "str | Backend | None" = None) -> Any:
    r"""The full tensor of a TT: :math:`T[i_1..i_m] = G_1[:, i_1, :] \cdots G_m[:, i_m, :]`.

    Contracted left to right, one GEMM per core.

    Parameters
    ----------
    cores : list or tuple of arrays
        :math:`G_t` of shapes :math:`(r_{t-1}, n_t, r_t)` with :math:`r_0 = r_m = 1` (float32, float64, or
        integers, computed in float64; mixed dtypes give the wider).
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``cores``.

    Returns
    -------
    array, shape (n_1, ..., n_m)

    Raises
    ------
    ValueError
        If the cores are not 3-D or their ranks do not chain (the message names ``cores[k]``).
    TypeError
        If ``cores`` is not a list or tuple, or a core is not real numbers.
    """
    be = infer_backend(*(cores if isinstance(cores, (list, tuple)) else ()), backend=backend)
    cores = _checked_cores(cores, 3, "cores", be)
    modes = [c.shape[1] for c in cores]
    acc = cores[0].reshape(modes[0], -1)
    for core in cores[1:]:
        r0, n, r1 = core.shape
        acc = be.matmul(acc, core.reshape(r0, n * r1)).reshape(-1, r1)
    return acc.reshape(modes)


def tt_truncation_bound(tensor: np.ndarray, ranks: Sequence[int]) -> float:
    r"""Oseledets' bound on the TT-SVD error: :math:`\sqrt{\sum_t \varepsilon_t^2}`.

    :math:`\varepsilon_t` is the rank-:math:`r_t` truncation error of the t-th unfolding
    (:math:`\prod_{j\le t} n_j \times \prod_{j>t} n_j`) of the original tensor (Oseledets 2011).

    Parameters
    ----------
    tensor : numpy.ndarray, shape (n_1, ..., n_m)
        On the host: this is a check, computed with ``numpy.linalg.svd``.
    ranks : sequence of int, length m + 1

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        If ``tensor`` is not a finite real array with at least one mode, or ``ranks`` is not m + 1
        positive ints.
    """
    tensor = np.asarray(tensor)
    if tensor.dtype.kind not in "iuf":
        raise TypeError(f"tensor has dtype {tensor.dtype}; expected real numbers")
    check_ndim(tensor.shape, "tensor", min_ndim=1)
    if not np.isfinite(tensor).all():
        raise ValueError("tensor contains NaN or Inf")
    modes = tensor.shape
    ranks = check_int_sequence(ranks, "ranks", length=len(modes) + 1)
    total = 0.0
    for t in range(1, len(modes)):
        s = np.linalg.svd(tensor.reshape(math.prod(modes[:t]), -1), compute_uv=False)
        total += float((s[ranks[t]:] ** 2).sum())
    return math.sqrt(total)


# ---- weight-matrix layouts ------------------------------------------------------------------------
def matrix_to_tt_tensor(w: Any, row_modes: Sequence[int], col_modes: Sequence[int]) -> Any:
    r"""The TT-matrix layout of a matrix: modes :math:`(o_1 c_1, \dots, o_m c_m)`.

    ``w`` is reshaped to :math:`(o_1..o_m, c_1..c_m)`, the axes are interleaved to
    :math:`(o_1, c_1, \dots, o_m, c_m)` and each pair is merged: a TT of this tensor is a TT-matrix
    (Oseledets 2011). Only reshapes and a transpose, so any array library works.

    Parameters
    ----------
    w : array, shape (∏ o, ∏ c)
    row_modes, col_modes : sequence of int, equal lengths m
        :math:`(o_1..o_m)` and :math:`(c_1..c_m)` (modes of 1 allowed).

    Returns
    -------
    array, shape (o_1 c_1, ..., o_m c_m)

    Raises
    ------
    ValueError
        If the modes do not multiply to ``w``'s shape or have different lengths.
    TypeError
        If ``w`` is not an array or the modes are not sequences of ints.
    """
    if not hasattr(w, "shape"):
        raise TypeError(f"w must be an array, got {type(w).__name__}")
    if tuple(w.shape) != _matrix_shape(row_modes, col_modes):
        raise ValueError(f"w has shape {tuple(w.shape)} but row_modes/col_modes multiply to "
                         f"{_matrix_shape(row_modes, col_modes)}")
    m = len(row_modes)
    t = w.reshape(tuple(row_modes) + tuple(col_modes))
    order = [k for t_ in range(m) for k in (t_, m + t_)]
    merged = tuple(o * c for o, c in zip(row_modes, col_modes))
    return t.transpose(order).reshape(merged)


def _matrix_shape(row_modes: Sequence[int], col_modes: Sequence[int]) -> Tuple[int, int]:
    """``(∏ o, ∏ c)``, after checking that the TT-matrix modes are positive ints and pair up."""
    row_modes, col_modes = check_int_sequence(row_modes, "row_modes"), check_int_sequence(col_modes, "col_modes")
    if len(row_modes) != len(col_modes):
        raise ValueError(f"row_modes {tuple(row_modes)} and col_modes {tuple(col_modes)} must have equal lengths")
    return math.prod(row_modes), math.prod(col_modes)


def tt_tensor_to_matrix(t: Any, row_modes: Sequence[int], col_modes: Sequence[int], *,
                        backend: "str | Backend | None" = None) -> Any:
    """Inverse of :func:`matrix_to_tt_tensor`.

    Parameters
    ----------
    t : array, shape (o_1 c_1, ..., o_m c_m) or any shape with that many entries
    row_modes, col_modes : sequence of int, equal lengths m
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``t``.

    Returns
    -------
    array, shape (∏ o, ∏ c), C-contiguous

    Raises
    ------
    ValueError
        If the modes have different lengths or ``t`` has the wrong number of entries.
    """
    shape = _matrix_shape(row_modes, col_modes)
    if not hasattr(t, "size"):
        raise TypeError(f"t must be an array, got {type(t).__name__}")
    if t.size != shape[0] * shape[1]:
        raise ValueError(f"t has {t.size} entries but row_modes/col_modes multiply to {shape}")
    xp = infer_backend(t, backend=backend).xp
    m = len(row_modes)
    inter = t.reshape(tuple(k for pair in zip(row_modes, col_modes) for k in pair))
    order = [2 * k for k in range(m)] + [2 * k + 1 for k in range(m)]
    return xp.ascontiguousarray(inter.transpose(order)).reshape(shape)


def tt_matrix_cores(cores: Sequence[Any], row_modes: Sequence[int], col_modes: Sequence[int]) -> List[Any]:
    """The cores of a TT of :func:`matrix_to_tt_tensor`'s layout viewed as TT-matrix cores (reshapes only).

    Parameters
    ----------
    cores : sequence of arrays
        Shapes :math:`(r_{t-1}, o_t c_t, r_t)`.
    row_modes, col_modes : sequence of int, equal lengths m

    Returns
    -------
    list of arrays
        Views of shapes :math:`(r_{t-1}, o_t, c_t, r_t)`.

    Raises
    ------
    ValueError
        If the numbers of cores and modes differ or core ``k`` has not :math:`o_k c_k` as middle mode.
    """
    cores = check_array_sequence(cores, "cores")
    _matrix_shape(row_modes, col_modes)
    if len(cores) != len(row_modes):
        raise ValueError(f"cores has {len(cores)} cores but row_modes has {len(row_modes)} modes")
    for k, (c, o, n) in enumerate(zip(cores, row_modes, col_modes)):
        if getattr(c, "ndim", None) != 3 or c.shape[1] != o * n:
            raise ValueError(f"cores[{k}] must have shape (r, {o * n}, r'), got {getattr(c, 'shape', None)}")
    return [c.reshape(c.shape[0], o, k, c.shape[2]) for c, o, k in zip(cores, row_modes, col_modes)]


def tt_matrix_apply(cores4: Sequence[Any], x: Any, *, backend: "str | Backend | None" = None) -> Any:
    r""":math:`\tilde W X` for a TT-matrix :math:`\tilde W`, without forming :math:`\tilde W`.

    One column mode is contracted per core. The running state has shape
    (∏ done o, r_t, ∏ remaining c, N); each step is one GEMM of (done·rest·N) × (r_{t-1} c_t) by
    (r_{t-1} c_t) × (o_t r_t).

    Parameters
    ----------
    cores4 : sequence of arrays
        TT-matrix cores :math:`(r_{t-1}, o_t, c_t, r_t)` (:func:`tt_matrix_cores`), :math:`r_0 = r_m = 1`.
    x : array, shape (∏ c, N)
        Same dtype as the cores.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``x`` and ``cores4``.

    Returns
    -------
    array, shape (∏ o, N)

    Raises
    ------
    ValueError
        If the cores are not 4-D with chained ranks, or ``x`` is not a (∏ c, N) matrix.
    """
    be = infer_backend(x, *(cores4 if isinstance(cores4, (list, tuple)) else ()), backend=backend)
    cores4 = _checked_cores(cores4, 4, "cores4", be)
    n_cols = math.prod(c.shape[2] for c in cores4)
    x = be.as_real_array(x, "x")
    if x.ndim != 2 or x.shape[0] != n_cols:
        raise ValueError(f"x must have shape ({n_cols}, N) for these cores, got {tuple(x.shape)}")
    xp = be.xp
    n = x.shape[1]
    z = x.reshape(1, 1, x.shape[0], n)
    for core in cores4:
        r0, o, c, r1 = core.shape
        done, rest = z.shape[0], z.shape[2] // c
        zz = xp.ascontiguousarray(z.reshape(done, r0, c, rest, n).transpose(0, 3, 4, 1, 2))
        kc = xp.ascontiguousarray(core.transpose(0, 2, 1, 3)).reshape(r0 * c, o * r1)
        y = be.matmul(zz.reshape(done * rest * n, r0 * c), kc).reshape(done, rest, n, o, r1)
        z = xp.ascontiguousarray(y.transpose(0, 3, 4, 1, 2)).reshape(done * o, r1, rest, n)
    return z.reshape(-1, n)


def factor_shape(n: int, max_mode: int = 4) -> Tuple[int, ...]:
    """Factor ``n`` into modes no larger than ``max_mode`` where possible (larger prime factors kept).

    Prime factors are merged greedily, smallest first, while the product stays ≤ ``max_mode``; e.g.
    1024 -> (4, 4, 4, 4, 4), 561 -> (3, 11, 17).

    Parameters
    ----------
    n : int
        ≥ 1.
    max_mode : int

    Returns
    -------
    tuple of int
        Ascending, product ``n``; ``(1,)`` for n = 1.

    Raises
    ------
    ValueError
        If ``n`` is not an int ≥ 1 or ``max_mode`` not an int ≥ 2.
    """
    check_int(n, "n")
    check_int(max_mode, "max_mode", minimum=2)
    primes = []
    k, p = n, 2
    while p * p <= k:
        while k % p == 0:
            primes.append(p)
            k //= p
        p += 1
    if k > 1:
        primes.append(k)
    modes: List[int] = []
    for q in sorted(primes):
        if modes and modes[-1] * q <= max_mode:
            modes[-1] *= q
        else:
            modes.append(q)
    return tuple(sorted(modes)) if modes else (1,)
