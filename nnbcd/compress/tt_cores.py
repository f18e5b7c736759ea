r"""The exact W-block on tensor-train cores: one ALS sweep of prox least-squares core updates.

For a layer kept in TT form, :math:`W = \mathrm{mat}(\mathrm{TT}(C_1, \dots, C_m))`, the W-block of
NN-BCD becomes a sweep over the cores. With the other cores fixed, W is linear in core t,
:math:`W = \mathcal J_t(X)`, and core t's update is the exact minimiser of

.. math:: \tfrac\rho2\big(\mathrm{tr}(WGW^T) - 2\langle W, R\rangle\big) + \tfrac\alpha2\|X - C_t\|^2,
          \qquad R = UV^T,\ G = VV^T,

(plus the bias, eliminated exactly by :class:`~nnbcd.compress.masked.BiasTerm`), i.e. the SPD system

.. math:: (\rho\,\mathcal J_t^T(I_{d_{out}}\otimes G)\mathcal J_t + \alpha I)\,x
          = \rho\,\mathcal J_t^T(R) + \alpha\,c_t .

N enters only through the two Grams (GEMMs done by the caller).

**Gauge.** The sweep first moves the gauge so that cores 2..m are right-orthonormal (QR, W unchanged),
then goes left to right; after each core update the core is split by QR, its Q kept and its R pushed
into the next core (TT-ALS, Holtz, Rohwedder & Schneider 2012). Core t is therefore updated in the
*mixed canonical gauge* centred at t: the cores left of t are left-orthonormal and those right of t are
right-orthonormal, so :math:`\mathcal J_t` is an isometry and the prox on the core is the Frobenius
prox on the matrix,

.. math:: \tfrac\alpha2\|X - C_t\|^2 = \tfrac\alpha2\|\mathcal J_t(X) - W^{(t)}\|^2,

with :math:`C_t` core t in that gauge (after the R factor of core t−1 was absorbed) and
:math:`W^{(t)}` the weight before step t. This is how ``alpha`` is to be read, it keeps the local
systems as well conditioned as :math:`\rho G + \alpha I` itself, and it makes every core step a prox
step of the dense W-block restricted to the TT manifold's tangent directions of core t: each step
decreases :math:`\tfrac\rho2(\mathrm{tr}(WGW^T) - 2\langle W,R\rangle)` by at least
:math:`\tfrac\alpha2\|W^{(t+1)} - W^{(t)}\|^2`.

**Local solves** (reshape layout with the row/column boundary between two modes, i.e.
:math:`n_1\cdots n_s = d_{out}`; the default ``TT`` modes are such). With the gauge,

* row cores (t ≤ s): :math:`H = I_{r_{t-1}n_t}\otimes(\rho B_t + \alpha I)`, :math:`B_t` the
  :math:`r_t\times r_t` right environment (:math:`B_s = Q_s G Q_s^T`, :math:`B_{t-1} = \sum_i
  C_t[:,i,:]\,B_t\,C_t[:,i,:]^T`): one Cholesky of size :math:`r_t`, :math:`r_{t-1}n_t` right-hand sides;
* the first column core (t = s+1): :math:`H = I_{r_{t-1}}\otimes(\rho E_t + \alpha I)` with
  :math:`E_t = (I_{n_t}\otimes Q_t)\,G\,(I_{n_t}\otimes Q_t)^T` of size :math:`n_t r_t`;
* later column cores: with :math:`\lambda` the column modes between the boundary and t,
  :math:`H = \rho\sum_{\lambda\lambda'} K_t^{\lambda\lambda'}\otimes E_t^{\lambda\lambda'} + \alpha I`
  (left environment :math:`K_t`, built core by core, :math:`\sum_\lambda K_t^{\lambda\lambda} = I`).
  G couples the column modes on both sides of core t, so no Kronecker factorisation exists. H is formed
  by one GEMM and factored by Cholesky when that costs less than CG (see ``max_direct``); otherwise
  preconditioned conjugate gradients run on the same operator (two GEMMs per product, no k × k array),
  warm-started at :math:`C_t` and preconditioned by the exact inverse of
  :math:`I\otimes(\rho\bar E_t + \alpha I)`, :math:`\bar E_t = \sum_{\lambda\lambda'}
  \mathrm{tr}(K_t^{\lambda\lambda'})E_t^{\lambda\lambda'}/r_{t-1}` (the best approximation of H of
  the form :math:`I\otimes C`). These cores are small when the column modes are ordered largest
  first: their right ranks are capped by :math:`\prod_{j>t}n_j`.

Other layouts (a reshape whose modes straddle the row/column boundary, as the reference's
(6, 22, 34, 2, ...) for 1024×561; the TT-matrix layout, where G couples every core's column modes) use
conjugate gradients on the operator applied through W itself,
:math:`X \mapsto \mathcal J_t^T(\mathcal J_t(X)\,G)` (cost :math:`d_{out}d_{in}^2` per product).
CG iterates decrease the local quadratic monotonically from the warm start, so an early stop never
increases the objective. In float64 the CG runs as float32 corrections refined in float64
(:func:`_refined_pcg`; a correction is kept only if it lowers the quadratic): the same tolerance at about
0.7× the time of float64 CG at HAR's sizes. Nothing of size N is formed.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .._validation import check_int, check_relaxation
from ..backend import Backend, infer_backend
from ..ops.tt import matrix_to_tt_tensor, tt_tensor_to_matrix, tt_to_tensor
from .masked import BiasTerm, _check_block

__all__ = ["CoreSweep", "tt_core_sweep"]


class CoreSweep(NamedTuple):
    """The result of :func:`tt_core_sweep`.

    Attributes
    ----------
    cores : list of arrays
        The new cores, same shapes and layout as the input (cores 1..m−1 left-orthonormal).
    b : array or None
        The new bias (``None`` without a bias).
    info : dict
        ``"solve"``: per core, ``"kronecker"`` (Cholesky of the small Kronecker factor), ``"dense"``
        (Cholesky of the formed local matrix) or ``"cg"``; ``"cg_iterations"`` and ``"cg_residual"`` (relative residual
        :math:`\\|F - Hx\\|/\\|F\\|` at the end) per core, ``None`` where no CG ran; ``"step_sq"``, per core,
        :math:`\\|X - C_t\\|^2 = \\|W^{(t+1)} - W^{(t)}\\|^2` (the gauge makes the core map an isometry).
    """

    cores: List[Any]
    b: Optional[Any]
    info: Dict[str, list]


# ---- layouts: the TT tensor T (modes n_t) <-> the weight matrix W ------------------------------------
class _Layout:
    """Reshape layout: W (row-major) is T reshaped; TT-matrix layout: T interleaves row/column modes."""

    def __init__(self, cores: Sequence[Any], shape: Tuple[int, int]) -> None:
        self.matrix = cores[0].ndim == 4
        if self.matrix:
            self.rows = [int(c.shape[1]) for c in cores]
            self.cols = [int(c.shape[2]) for c in cores]
            self.modes = [o * c for o, c in zip(self.rows, self.cols)]
            ok = (math.prod(self.rows), math.prod(self.cols)) == shape
        else:
            self.modes = [int(c.shape[1]) for c in cores]
            ok = math.prod(self.modes) == shape[0] * shape[1]
        if not ok:
            raise ValueError(f"cores: the TT modes {self._describe()} do not make a {shape[0]}×{shape[1]} "
                             f"weight")
        self.shape = shape
        # the boundary s with n_1..n_s = d_out, when the reshape layout has one
        prefix = np.cumprod([1] + self.modes)
        hit = np.flatnonzero(prefix == shape[0])
        self.split = None if self.matrix or hit.size == 0 else int(hit[-1])

    def _describe(self) -> str:
        return f"rows {self.rows} × cols {self.cols}" if self.matrix else str(self.modes)

    def to_tensor(self, W: Any) -> Any:
        return matrix_to_tt_tensor(W, self.rows, self.cols) if self.matrix else W.reshape(self.modes)

    def to_matrix(self, T: Any, be: Backend) -> Any:
        if self.matrix:
            return tt_tensor_to_matrix(T, self.rows, self.cols, backend=be)
        return T.reshape(self.shape)


def _check_cores(cores: Sequence[Any]) -> None:
    if len(cores) == 0 or cores[0].ndim not in (3, 4) or any(c.ndim != cores[0].ndim for c in cores):
        raise ValueError("cores must be a non-empty list of 3-d (r, n, r') or 4-d (r, o, c, r') arrays")
    ranks = [int(cores[0].shape[0])] + [int(c.shape[-1]) for c in cores]
    if ranks[0] != 1 or ranks[-1] != 1 or any(int(c.shape[0]) != r for c, r in zip(cores, ranks[:-1])):
        raise ValueError(f"cores: ranks must chain from 1 to 1, got {[tuple(c.shape) for c in cores]}")
    for t, c in enumerate(cores):
        r0, r1 = int(c.shape[0]), int(c.shape[-1])
        n = c.size // (r0 * r1)
        # minimal ranks (as TT-SVD gives): needed for the QR gauge moves both ways
        if r1 > r0 * n or r0 > n * r1:
            raise ValueError(f"cores: core {t} of shape {tuple(c.shape)} has a rank larger than its unfolding "
                             f"(need r_t ≤ r_(t-1)·n_t and r_(t-1) ≤ n_t·r_t)")


# ---- gauge moves ------------------------------------------------------------------------------------
def _qr(a: Any, be: Backend) -> Tuple[Any, Any]:
    """Thin QR of a tall ``a``: ``(Q, R)`` with ``R = Q^T a`` (the backend returns Q only)."""
    q = be.qr_q(be.xp.array(a, copy=True))
    return be.xp.ascontiguousarray(q), be.matmul(q.T, a)


def _right_orthonormalize(cores: List[Any], be: Backend) -> None:
    """Cores m..2 right-orthonormal by LQ (QR of the transpose), pushing the factors leftwards; W unchanged."""
    xp = be.xp
    for t in range(len(cores) - 1, 0, -1):
        r0, n, r1 = cores[t].shape
        q, r = _qr(cores[t].reshape(r0, n * r1).T, be)
        cores[t] = xp.ascontiguousarray(q.T).reshape(r0, n, r1)
        p0, pn, _ = cores[t - 1].shape
        cores[t - 1] = be.matmul(cores[t - 1].reshape(p0 * pn, r0), r.T).reshape(p0, pn, r0)


def _right_interfaces(cores: List[Any], be: Backend) -> List[Any]:
    """:math:`Q_t` (r_t × ∏_{j>t} n_j), the contraction of the cores right of t."""
    m = len(cores)
    q = [None] * m
    q[m - 1] = be.xp.ones((1, 1), dtype=cores[0].dtype)
    for t in range(m - 1, 0, -1):
        r0, n, r1 = cores[t].shape
        q[t - 1] = be.matmul(cores[t].reshape(r0 * n, r1), q[t]).reshape(r0, -1)
    return q


#: CG iterations assumed when choosing between a direct and an iterative solve of a column core
#: (measured on ReLU-feature Grams at digits and HAR sizes: 30-300 from a cold start, fewer warm)
_CG_ITERATIONS_ESTIMATE = 100


# ---- structured local operators (reshape layout with a row/column boundary) --------------------------
def _column_environment(G: Any, q: Any, p: int, be: Backend) -> Any:
    r""":math:`E = (I_p\otimes Q) G (I_p\otimes Q)^T` (p·r × p·r) for ``G`` (p·b × p·b), ``q`` (r × b)."""
    xp = be.xp
    r, b = q.shape
    y = be.matmul(G.reshape(p * b * p, b), q.T)                    # (p, b, p, r)
    y = xp.ascontiguousarray(y.reshape(p, b, p * r).transpose(1, 0, 2)).reshape(b, p * p * r)
    e = be.matmul(q, y).reshape(r, p, p, r)                        # (r, p, p', r')
    return xp.ascontiguousarray(e.transpose(1, 0, 2, 3)).reshape(p * r, p * r)


def _row_environments(cores: List[Any], q: List[Any], G: Any, split: int, be: Backend) -> List[Any]:
    r""":math:`B_t` for the row cores t < split (0-based): the r_t × r_t right environments."""
    xp = be.xp
    env = [None] * split
    env[split - 1] = _column_environment(G, q[split - 1], 1, be)
    for t in range(split - 1, 0, -1):
        r0, n, r1 = cores[t].shape
        # B_{t-1} = sum_i C[:, i, :] B_t C[:, i, :]^T
        cb = be.matmul(cores[t].reshape(r0 * n, r1), env[t]).reshape(r0, n * r1)
        env[t - 1] = be.matmul(cb, xp.ascontiguousarray(cores[t].reshape(r0, n * r1)).T)
    return env


def _grow_left_environment(K: Any, core: Any, be: Backend) -> Any:
    r""":math:`K_{t+1} = (I_{n_\lambda}\otimes J^T) K_t (I_{n_\lambda}\otimes J)`, ``J`` = core as
    r_{t-1} × n_t r_t; indices (λ, a) -> ((λ, i), b)."""
    xp = be.xp
    r0, n, r1 = core.shape
    nl = K.shape[0] // r0
    J = core.reshape(r0, n * r1)
    z = be.matmul(K.reshape(nl * r0 * nl, r0), J).reshape(nl, r0, nl * n * r1)
    z = xp.ascontiguousarray(z.transpose(1, 0, 2)).reshape(r0, nl * nl * n * r1)
    z = be.matmul(xp.ascontiguousarray(J.T), z).reshape(n * r1, nl, nl * n * r1)
    return xp.ascontiguousarray(z.transpose(1, 0, 2)).reshape(nl * n * r1, nl * n * r1)


class _SumOfKroneckers:
    r""":math:`H = \rho\sum_{\lambda\lambda'}K^{\lambda\lambda'}\otimes E^{\lambda\lambda'} + \alpha I` on
    X of shape (r0, p), p = n r1, with K (nl·r0)² and E (nl·p)²."""

    def __init__(self, K: Any, E: Any, r0: int, rho: float, alpha: float, be: Backend) -> None:
        xp = be.xp
        self.be, self.rho, self.alpha, self.r0 = be, rho, alpha, r0
        self.nl = K.shape[0] // r0
        self.p = E.shape[0] // self.nl
        nl, p = self.nl, self.p
        # K as (a, (λ, λ', a')) and E as ((λ, p, λ'), p') for the two GEMMs of a product
        self.K = xp.ascontiguousarray(K.reshape(nl, r0, nl, r0).transpose(1, 0, 2, 3)).reshape(r0, nl * nl * r0)
        self.E = E.reshape(nl * p * nl, p)
        self._Kfull, self._Efull = K, E

    def astype(self, dtype: Any) -> "_SumOfKroneckers":
        """The same operator with its arrays in ``dtype`` (the float32 twin of a float64 solve)."""
        return _SumOfKroneckers(self._Kfull.astype(dtype), self._Efull.astype(dtype), self.r0, self.rho, self.alpha,
                                self.be)

    def prefer_direct(self) -> bool:
        """Whether forming and factoring H (k³/3 + nl²k² multiply-adds) costs less than CG at
        :data:`_CG_ITERATIONS_ESTIMATE` products of r0(nl·p)² + nl²r0²p each."""
        k = self.r0 * self.p
        product = self.r0 * (self.nl * self.p) ** 2 + self.nl ** 2 * self.r0 ** 2 * self.p
        return k ** 3 / 3 + self.nl ** 2 * k ** 2 <= _CG_ITERATIONS_ESTIMATE * product

    def matvec(self, X: Any) -> Any:
        xp, nl, p, r0 = self.be.xp, self.nl, self.p, self.r0
        t = self.be.matmul(self.E, X.T).reshape(nl, p, nl, r0)          # T[λ, p, λ', a']
        t = xp.ascontiguousarray(t.transpose(0, 2, 3, 1)).reshape(nl * nl * r0, p)
        y = self.be.matmul(self.K, t)
        y *= self.rho
        y += self.alpha * X
        return y

    def dense(self) -> Any:
        """H as a (k × k) array, one GEMM: rearranged, :math:`H = \\mathcal K^T\\mathcal E`."""
        xp, nl, p, r0 = self.be.xp, self.nl, self.p, self.r0
        kk = xp.ascontiguousarray(self._Kfull.reshape(nl, r0, nl, r0).transpose(0, 2, 1, 3))
        ee = xp.ascontiguousarray(self._Efull.reshape(nl, p, nl, p).transpose(0, 2, 1, 3))
        kk, ee = kk.reshape(nl * nl, r0 * r0), ee.reshape(nl * nl, p * p)
        h = self.be.matmul(xp.ascontiguousarray(kk.T), ee).reshape(r0, r0, p, p)
        h = xp.ascontiguousarray(h.transpose(0, 2, 1, 3)).reshape(r0 * p, r0 * p)
        h *= self.rho
        self.be.add_diag(h, self.alpha)
        return h

    def preconditioner(self) -> Callable[[Any], Any]:
        r"""Exact inverse of :math:`I\otimes(\rho\bar E + \alpha I)`,
        :math:`\bar E = \sum_{\lambda\lambda'}\mathrm{tr}(K^{\lambda\lambda'})E^{\lambda\lambda'}/r_0`."""
        xp, nl, p, r0 = self.be.xp, self.nl, self.p, self.r0
        traces = xp.trace(self._Kfull.reshape(nl, r0, nl, r0), axis1=1, axis2=3).reshape(nl * nl, 1) / r0
        e = xp.ascontiguousarray(self._Efull.reshape(nl, p, nl, p).transpose(1, 3, 0, 2)).reshape(p * p, nl * nl)
        ebar = self.be.matmul(e, traces).reshape(p, p)
        ebar = self.rho * (ebar + ebar.T) / 2
        self.be.add_diag(ebar, self.alpha)
        factor = self.be.cho_factor(ebar)
        return lambda r: self.be.cho_solve_right(factor, r)


# ---- generic local operator (any layout), applied through W ---------------------------------------------
class _ThroughW:
    r""":math:`H x = \rho\,\mathcal J^T(\mathcal J(x)\,G) + \alpha x` with
    :math:`\mathcal J(X) = \mathrm{mat}(L\,X\,Q)`; X of shape (r0, n·r1)."""

    def __init__(self, L: Any, q: Any, G: Any, layout: _Layout, n: int, rho: float, alpha: float,
                 be: Backend) -> None:
        self.L, self.q, self.G, self.layout, self.n = L, q, G, layout, n
        self.rho, self.alpha, self.be = rho, alpha, be

    def astype(self, dtype: Any) -> "_ThroughW":
        """The same operator with its arrays in ``dtype`` (the float32 twin of a float64 solve)."""
        return _ThroughW(self.L.astype(dtype), self.q.astype(dtype), self.G.astype(dtype), self.layout, self.n,
                         self.rho, self.alpha, self.be)

    def preconditioner(self) -> None:
        """None: CG on this operator runs unpreconditioned."""
        return None

    def matvec(self, X: Any) -> Any:
        be, L, q = self.be, self.L, self.q
        a, r1, n = L.shape[0], q.shape[0], self.n
        T = be.matmul(be.matmul(L, X).reshape(a * n, r1), q)
        WG = be.matmul(be.xp.ascontiguousarray(self.layout.to_matrix(T, be)), self.G)
        Z = be.matmul(be.xp.ascontiguousarray(self.layout.to_tensor(WG)).reshape(a * n, -1), q.T)
        y = be.matmul(L.T, Z.reshape(a, n * r1))
        y *= self.rho
        y += self.alpha * X
        return y


def _pcg(matvec: Callable[[Any], Any], rhs: Any, x0: Any, precond: Optional[Callable[[Any], Any]],
         tol: float, maxiter: int, be: Backend) -> Tuple[Any, int, float]:
    """Preconditioned conjugate gradients from ``x0``; stops when the recursive residual has
    ‖F − Hx‖ ≤ tol·‖F‖.

    Returns ``(x, iterations, relative residual recomputed as ‖F − Hx‖/‖F‖ at the end)``.
    """
    xp = be.xp

    def dot(u: Any, v: Any) -> float:
        return _dot(u, v, be)

    x = xp.array(x0, copy=True)
    r = rhs - matvec(x)
    bnorm = math.sqrt(dot(rhs, rhs)) or 1.0
    it = 0
    if math.sqrt(dot(r, r)) > tol * bnorm:
        z = precond(r) if precond else r
        p = xp.array(z, copy=True)
        rz = dot(r, z)
        for it in range(1, maxiter + 1):
            hp = matvec(p)
            step = rz / dot(p, hp)
            x += step * p
            r -= step * hp
            if math.sqrt(dot(r, r)) <= tol * bnorm:
                break
            z = precond(r) if precond else r
            rz, rz_old = dot(r, z), rz
            p *= rz / rz_old
            p += z
    res = rhs - matvec(x)
    return x, it, math.sqrt(dot(res, res)) / bnorm


#: relative residual each float32 correction of :func:`_refined_pcg` is solved to
_CORRECTION_TOL = 1e-5


def _refined_pcg(op: Any, rhs: Any, x0: Any, tol: float, maxiter: int, be: Backend) -> Tuple[Any, int, float]:
    r"""A float64 solve of ``op`` by float32 CG corrections (mixed-precision iterative refinement).

    Each round solves :math:`H_{32}d = r` by preconditioned CG to :data:`_CORRECTION_TOL` from 0, with
    ``op``'s float32 twin, and adds :math:`d` when it lowers the local quadratic
    (:math:`r^Td - \tfrac12 d^THd > 0` in float64), so the solve never increases the objective, as CG
    from the warm start does not. A float32 product costs about half a float64 one, and for the
    :math:`\kappa \ll 10^7` of these systems each round gains about five digits, so reaching 1e-10 takes
    two or three rounds of float32 iterations instead of float64 CG's 1.5–7× as many (measured at HAR's
    1024×1024 cores: 67 + 8 float32 iterations against 111 + 55 float64 ones). Where a round gains less
    than half the residual, float64 PCG finishes from the refined iterate.

    Returns ``(x, iterations of both precisions, relative residual ‖F − Hx‖/‖F‖ in float64)``.
    """
    low = op.astype(np.float32)
    low_precond = low.preconditioner()
    bnorm = math.sqrt(_dot(rhs, rhs, be)) or 1.0
    x = be.xp.array(x0, copy=True)
    r = rhs - op.matvec(x)
    rnorm, its = math.sqrt(_dot(r, r, be)), 0
    while rnorm > tol * bnorm and its < maxiter:
        # a round solves to float32's tolerance, or only as far as the float64 target still needs
        d, k, _ = _pcg(low.matvec, r.astype(np.float32), be.xp.zeros_like(r, dtype=np.float32), low_precond,
                       max(_CORRECTION_TOL, 0.5 * tol * bnorm / rnorm), maxiter - its, be)
        its += k
        d = d.astype(r.dtype)
        hd = op.matvec(d)
        gain = _dot(r, d, be) - 0.5 * _dot(d, hd, be)
        if not gain > 0:
            break
        x += d
        r -= hd
        previous, rnorm = rnorm, math.sqrt(_dot(r, r, be))
        if rnorm > 0.5 * previous:
            break
    if rnorm > tol * bnorm and its < maxiter:
        x, k, _ = _pcg(op.matvec, rhs, x, op.preconditioner(), tol, maxiter - its, be)
        its += k
    res = rhs - op.matvec(x)
    return x, its, math.sqrt(_dot(res, res, be)) / bnorm


def _dot(u: Any, v: Any, be: Backend) -> float:
    r""":math:`u \cdot v` through the backend's BLAS, as every product here."""
    return float(be.matmul(u.reshape(1, -1), v.reshape(-1, 1))[0, 0])


def _default_tol(dtype: Any) -> float:
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-5


def tt_core_sweep(cores: Sequence[Any], R: Any, G: Any, rho: float, alpha: float, *,
                  bias: Optional[BiasTerm] = None, max_direct: Optional[int] = None,
                  cg_tol: Optional[float] = None, cg_maxiter: int = 1000, refine: bool = True,
                  relaxation: float = 1.0, backend: "str | Backend | None" = None) -> CoreSweep:
    r"""One left-to-right sweep of exact prox least-squares updates of every TT core of W.

    Core t (in the mixed canonical gauge centred at t, see the module docstring) becomes

    .. math:: \arg\min_X\ \tfrac\rho2\big(\mathrm{tr}(WGW^T) - 2\langle W, R'\rangle\big)
              + \tfrac\alpha2\|X - C_t\|^2,\quad W = \mathcal J_t(X),

    with :math:`(R', G')` the bias-reduced statistics when ``bias`` is given; the bias is then set to
    its exact minimiser :math:`b(W)` for the final W, so the sweep is exact block coordinate descent on
    (cores, b) jointly.

    Parameters
    ----------
    cores : list of arrays
        The TT of :math:`W^k`: 3-d cores (r_{t-1}, n_t, r_t) for the reshape layout (W row-major reshaped
        to the modes n_t), or 4-d cores (r_{t-1}, o_t, c_t, r_t) for the TT-matrix layout (as
        :class:`~nnbcd.compress.TT` exports them). Ranks must be minimal (as TT-SVD gives them).
    R : array, shape (d_out, d_in), float32 or float64
        :math:`UV^T`, scaled as the solver's ρ (spec §2).
    G : array, shape (d_in, d_in), same dtype
        :math:`VV^T`.
    rho, alpha : float
        Coupling and prox weights, finite and > 0.
    bias : BiasTerm, optional
        The layer's bias statistics.
    max_direct : int, optional
        Largest local system (:math:`r_{t-1}n_tr_t` unknowns) of a later column core that is formed and
        factored; larger ones are solved by preconditioned CG. Default: whichever costs fewer
        multiply-adds, counting 100 CG iterations.
    cg_tol : float, optional
        CG stops at a relative residual :math:`\|F - Hx\|/\|F\| \le` ``cg_tol``. Default 1e-10
        (float64), 1e-5 (float32).
    cg_maxiter : int
        Iteration cap per core (the info reports the residual reached).
    refine : bool
        In float64, solve by float32 CG corrections refined in float64 (:func:`_refined_pcg`: the same
        ``cg_tol``, about half the cost); ``False``: float64 CG throughout.
    relaxation : float
        Over-relaxation factor ω ∈ [1, 2): core t becomes :math:`C_t + \omega(X^* - C_t)` (in the gauge
        above), :math:`X^*` the minimiser. The local quadratic then falls by
        :math:`\omega(1-\omega/2)D^THD`, :math:`D = X^*-C_t`, and the objective by at least
        :math:`\tfrac\alpha\omega\|W^{(t+1)} - W^{(t)}\|^2`. Where CG solves the core, :math:`X^*` is its
        iterate; plain CG from :math:`C_t` minimises the quadratic on its Krylov space, so the line through
        :math:`C_t` and :math:`X^*` has its minimum at :math:`X^*` and the bound holds exactly; the
        float64 refinement (``refine``) does so up to its float32 corrections (no violation seen in tests at
        ω up to 1.99). 1: the exact ALS sweep.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of the inputs (:func:`nnbcd.backend.infer_backend`).

    Returns
    -------
    CoreSweep
        ``cores`` (new arrays, same layout), ``b`` (or ``None``) and per-core ``info``.

    Notes
    -----
    Measured (``benchmarks/bench_exact_blocks.py``, ReLU-feature Grams, one BLAS thread): every core of
    the digits layers at ranks 10 / 21 and of HAR 1024×561 at r = 80 with column modes largest first is
    solved directly; HAR's default modes (…, 3, 11, 17) leave one 14,960-unknown core to CG, ~250
    iterations at the float64 tolerance and ~70 at the float32 one. The layouts through W need 20-400
    iterations per core.

    Raises
    ------
    ValueError
        Mismatched shapes or ranks, ``rho``/``alpha`` not finite and > 0, ``max_direct``/``cg_maxiter`` < 1,
        ``relaxation`` not in [1, 2).
    TypeError
        If the cores, ``R`` and ``G`` differ in dtype.
    numpy.linalg.LinAlgError
        If a local system is not positive definite (non-finite statistics).
    """
    be = infer_backend(R, G, *cores, backend=backend)
    xp = be.xp
    _check_cores(cores)
    rho, alpha = _check_block(R, G, R, rho, alpha)
    if any(c.dtype != R.dtype for c in cores):
        raise TypeError(f"cores must have R's dtype {R.dtype}")
    check_int(max_direct, "max_direct", optional=True)
    check_int(cg_maxiter, "cg_maxiter")
    relaxation = check_relaxation(relaxation)
    tol = _default_tol(R.dtype) if cg_tol is None else float(cg_tol)

    def solve(op: Any, rhs: Any, x0: Any) -> Tuple[Any, int, float]:
        if R.dtype == np.float64 and refine:
            return _refined_pcg(op, rhs, x0, tol, cg_maxiter, be)
        return _pcg(op.matvec, rhs, x0, op.preconditioner(), tol, cg_maxiter, be)
    layout = _Layout(cores, tuple(R.shape))
    shapes = [tuple(c.shape) for c in cores]
    if bias is not None:
        R, G = bias.reduce(R, G, rho)
    work = [xp.array(c, copy=True).reshape(c.shape[0], -1, c.shape[-1]) for c in cores]
    m = len(work)
    _right_orthonormalize(work, be)
    q = _right_interfaces(work, be)
    split = layout.split
    row_env = _row_environments(work, q, G, split, be) if split is not None and split > 0 else []
    P = layout.to_tensor(R).reshape(1, -1)          # left-projected R: L_t^T R, (r_{t-1}, n_t b_t)
    K = None                                        # left environment of the column cores
    L = xp.ones((1, 1), dtype=R.dtype)              # left interface (generic path only)
    info: Dict[str, list] = {"solve": [], "cg_iterations": [], "cg_residual": [], "step_sq": []}
    for t in range(m):
        r0, n, r1 = work[t].shape
        b_t = q[t].shape[1]
        rhs = be.matmul(P.reshape(r0 * n, b_t), q[t].T).reshape(r0, n * r1)
        rhs *= rho
        rhs += alpha * work[t].reshape(r0, n * r1)
        kind, cg = "kronecker", None
        x0 = work[t].reshape(r0, n * r1)
        if split is not None and t < split:
            # H = I ⊗ (ρB_t + αI) (left interface orthonormal): one Cholesky, r0·n right-hand sides
            a = rho * row_env[t]
            be.add_diag(a, alpha)
            x = be.cho_solve_right(be.cho_factor(a), rhs.reshape(r0 * n, r1))
        elif split is not None:
            E = _column_environment(G, q[t], G.shape[0] // b_t, be)
            if K is None:  # first column core: H = I ⊗ (ρE_t + αI), the left interface being orthonormal
                a = rho * E
                be.add_diag(a, alpha)
                x = be.cho_solve_right(be.cho_factor(a), rhs)
            else:
                op = _SumOfKroneckers(K, E, r0, rho, alpha, be)
                if op.prefer_direct() if max_direct is None else r0 * n * r1 <= max_direct:
                    kind, x = "dense", be.cho_solve(be.cho_factor(op.dense()), rhs.reshape(-1))
                else:
                    kind, cg = "cg", solve(op, rhs, x0)
        else:
            kind, cg = "cg", solve(_ThroughW(L, q[t], G, layout, n, rho, alpha, be), rhs, x0)
        if cg is not None:
            x = cg[0]
        info["solve"].append(kind)
        info["cg_iterations"].append(None if cg is None else cg[1])
        info["cg_residual"].append(None if cg is None else cg[2])
        x = be.over_relax(xp.ascontiguousarray(x).reshape(r0, n * r1), x0, relaxation).reshape(r0, n, r1)
        # J_t is an isometry in this gauge: the core's step is the weight's step of this core update
        info["step_sq"].append(be.sq_dist(x.reshape(r0, n * r1), x0))
        if t < m - 1:  # move the gauge right: keep Q, push R into the next core
            qf, rf = _qr(x.reshape(r0 * n, r1), be)
            x = qf.reshape(r0, n, r1)
            nr0, nn, nr1 = work[t + 1].shape
            work[t + 1] = be.matmul(rf, work[t + 1].reshape(nr0, nn * nr1)).reshape(nr0, nn, nr1)
            P = be.matmul(xp.ascontiguousarray(qf.T), P.reshape(r0 * n, b_t)).reshape(r1, -1)
            if split is None:
                L = be.matmul(L, x.reshape(r0, n * r1)).reshape(-1, r1)
            elif t >= split:
                K = _grow_left_environment(xp.eye(r0, dtype=R.dtype) if K is None else K, x, be)
        work[t] = x
    out = [c.reshape(s) for c, s in zip(work, shapes)]
    b_new = None
    if bias is not None:
        W = layout.to_matrix(tt_to_tensor(work, backend=be), be)
        b_new = bias.solve(W, rho, backend=be)
    return CoreSweep(out, b_new, info)
