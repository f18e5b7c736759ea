r"""Tensor-train operators on any backend: TT-SVD with a rank cap, reconstruction, contraction.

TT-SVD (Oseledets 2011) of a tensor with modes :math:`(n_1,\dots,n_m)`: left to right, the unfolding
:math:`M_t \in \mathbb R^{r_{t-1}n_t \times \prod_{j>t} n_j}` is truncated to rank

.. math:: r_t = \min(r_{t-1} n_t,\ \textstyle\prod_{j>t} n_j,\ r^{\max}_t),

its left singular vectors become core :math:`G_t` (shape :math:`r_{t-1}\times n_t\times r_t`), and
:math:`\Sigma_t P_t^T` (equivalently :math:`G_t^T M_t`) is carried on. The error obeys
:math:`\|W-\tilde W\|^2 \le \sum_t \varepsilon_t^2` with :math:`\varepsilon_t` the rank-:math:`r_t`
truncation error of the t-th unfolding of the original tensor.

``method`` picks how each truncation is computed; all give the same subspaces up to rounding:

* ``"full"``: thin SVD (LAPACK ``gesdd``) of :math:`M_t`, as the reference and tensorly do;
* ``"gram"``: eigenvectors of the smaller Gram matrix (:math:`M M^T` for wide :math:`M`, else
  :math:`M^TM` followed by a QR of :math:`M V_r` so the core is orthonormal by construction), then one
  GEMM :math:`G^T M`. Only the top :math:`r_t` eigenpairs are computed. Singular values below about
  :math:`\sqrt{\epsilon}\,\sigma_1` are resolved less accurately than by ``"full"``; their directions
  are the ones truncated or contribute at that level.
"""
from __future__ import annotations

import math
from typing import Any, List, Sequence, Tuple

import numpy as np

METHODS = ("full", "gram")


def tt_ranks(modes: Sequence[int], rank: "int | Sequence[int]") -> List[int]:
    """Realised ranks :math:`(1, r_1, \\dots, r_{m-1}, 1)` for ``modes`` under the cap ``rank``.

    ``rank`` is an int (the same cap everywhere) or a full list ``(1, r_1, ..., r_{m-1}, 1)``.
    """
    m = len(modes)
    if isinstance(rank, (int, np.integer)) and not isinstance(rank, bool):
        if rank < 1:
            raise ValueError(f"rank must be ≥ 1, got {rank}")
        caps = [1] + [int(rank)] * (m - 1) + [1]
    else:
        caps = [int(r) for r in rank]
        if len(caps) != m + 1 or caps[0] != 1 or caps[-1] != 1 or min(caps) < 1:
            raise ValueError(f"rank list must be (1, r_1, ..., r_{m - 1}, 1) with {m + 1} positive entries, "
                             f"got {list(rank)}")
    ranks = [1]
    for t in range(1, m):
        ranks.append(min(ranks[-1] * modes[t - 1], math.prod(modes[t:]), caps[t]))
    return ranks + [1]


def tt_n_params(modes: Sequence[int], ranks: Sequence[int]) -> int:
    """:math:`P_{TT} = \\sum_t r_{t-1} n_t r_t`."""
    return int(sum(ranks[t] * modes[t] * ranks[t + 1] for t in range(len(modes))))


def _truncate(m: Any, r: int, be: Any, method: str) -> Tuple[Any, Any]:
    """``(Q, C)`` with ``Q`` (a×r) orthonormal spanning the top-r left singular space of ``m`` and
    ``C = Q^T m`` (r×b)."""
    a, b = m.shape
    if method == "full":
        u, s, vt = be.svd(m)
        return be.xp.ascontiguousarray(u[:, :r]), s[:r, None] * vt[:r]
    if a <= b:
        _, q = be.eigh_top(be.gram(m), r)
    else:
        _, v = be.eigh_top(be.gram(m.T), r)
        q = _orthonormal_basis(be.matmul(m, v), be)
    q = be.xp.ascontiguousarray(q)
    return q, be.matmul(q.T, m)


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


def tt_svd(tensor: Any, rank: "int | Sequence[int]", be: Any, method: str = "full") -> List[Any]:
    """TT-SVD of ``tensor`` (any shape, C order) with a rank cap; returns the cores
    :math:`G_t` of shapes :math:`(r_{t-1}, n_t, r_t)` on the tensor's backend, in its dtype."""
    if method not in METHODS:
        raise ValueError(f"svd={method!r} is not one of {METHODS}")
    modes = tuple(tensor.shape)
    ranks = tt_ranks(modes, rank)
    cores = []
    m = tensor.reshape(modes[0], -1)
    for t in range(len(modes) - 1):
        m = m.reshape(ranks[t] * modes[t], -1)
        q, m = _truncate(m, ranks[t + 1], be, method)
        cores.append(q.reshape(ranks[t], modes[t], ranks[t + 1]))
    cores.append(m.reshape(ranks[-2], modes[-1], 1))
    return cores


def tt_to_tensor(cores: Sequence[Any], be: Any) -> Any:
    """Contract cores left to right into the full tensor."""
    modes = [c.shape[1] for c in cores]
    acc = cores[0].reshape(modes[0], -1)
    for core in cores[1:]:
        r0, n, r1 = core.shape
        acc = be.matmul(acc, core.reshape(r0, n * r1)).reshape(-1, r1)
    return acc.reshape(modes)


def tt_truncation_bound(tensor: np.ndarray, ranks: Sequence[int]) -> float:
    """Oseledets' bound :math:`\\sqrt{\\sum_t \\varepsilon_t^2}` from the unfoldings' singular values
    (numpy, host; used to check TT-SVD)."""
    modes = tensor.shape
    total = 0.0
    for t in range(1, len(modes)):
        s = np.linalg.svd(tensor.reshape(math.prod(modes[:t]), -1), compute_uv=False)
        total += float((s[ranks[t]:] ** 2).sum())
    return math.sqrt(total)


# ---- weight-matrix layouts ------------------------------------------------------------------------
def matrix_to_tt_tensor(w: Any, row_modes: Sequence[int], col_modes: Sequence[int]) -> Any:
    """TT-matrix layout: reshape to (o_1..o_m, c_1..c_m), interleave to (o_1, c_1, ...), merge pairs."""
    m = len(row_modes)
    t = w.reshape(tuple(row_modes) + tuple(col_modes))
    order = [k for t_ in range(m) for k in (t_, m + t_)]
    merged = tuple(o * c for o, c in zip(row_modes, col_modes))
    return t.transpose(order).reshape(merged)


def tt_tensor_to_matrix(t: Any, row_modes: Sequence[int], col_modes: Sequence[int], xp: Any) -> Any:
    """Inverse of :func:`matrix_to_tt_tensor`."""
    m = len(row_modes)
    inter = t.reshape(tuple(k for pair in zip(row_modes, col_modes) for k in pair))
    order = [2 * k for k in range(m)] + [2 * k + 1 for k in range(m)]
    return xp.ascontiguousarray(inter.transpose(order)).reshape(math.prod(row_modes), math.prod(col_modes))


def tt_matrix_cores(cores: Sequence[Any], row_modes: Sequence[int], col_modes: Sequence[int]) -> List[Any]:
    """Cores of the TT-matrix layout viewed as :math:`(r_{t-1}, o_t, c_t, r_t)`."""
    return [c.reshape(c.shape[0], o, k, c.shape[2]) for c, o, k in zip(cores, row_modes, col_modes)]


def tt_matrix_apply(cores4: Sequence[Any], x: Any, be: Any) -> Any:
    r""":math:`\tilde W X` for TT-matrix cores :math:`(r_{t-1}, o_t, c_t, r_t)` and ``x`` (∏c × N),
    without forming :math:`\tilde W`: one column mode is contracted per core.

    The running state has shape (∏ done o, r_t, ∏ remaining c, N); each step is one GEMM of
    (done·rest·N) × (r_{t-1} c_t) by (r_{t-1} c_t) × (o_t r_t).
    """
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
    """Factor ``n`` into modes no larger than ``max_mode`` where possible (largest prime factors kept),
    e.g. 1024 -> (4,)*5, 561 -> (3, 11, 17)."""
    if n < 1:
        raise ValueError(f"cannot factor {n}")
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
