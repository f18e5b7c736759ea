r"""NN-BCD block updates and the block table (spec §3).

Every update is the exact minimiser of the objective over one block and has the signature
``(st, i, hp, be, ws, track) -> float``: it updates the block of layer ``i`` (``0..L-1``; layer ``i`` is
the paper's layer ``i+1``) of the state ``st`` in place and returns the squared change
:math:`\|X^{k+1}-X^k\|^2` of the block when ``track`` is true (``0.0`` otherwise, so that untracked
sweeps do no extra work). The formulas in the docstrings use the paper's numbering: called with layer
``i``, an update acts on the paper's block of layer ``i+1``.

:data:`BLOCK_TABLE` lists every block kind with its update, whether it carries the α-prox term and the
kind its time and step are reported under; the sweep order (:mod:`nnbcd.bcd.sweep`) and the history's
block columns are derived from it. A layer whose compression spec has an exact block
(``Prune(block="masked")``, ``TT(block="cores")``) gets ``W_exact`` instead of ``W`` and ``comp``.

Every W-block that solves from the data in the N-independent form reads them through
:func:`weight_statistics` only: the Grams :math:`R = UV^T`, :math:`G = VV^T` and the bias sums. They are
sums over samples, so a sharded run computes them per shard and adds them (the seam for a distributed
solver); the push-through form of the dense W-block (``w_solve="woodbury"``, for N < d_in) is the one
solve that reads U and V themselves.

SPD systems are solved by Cholesky and triangular solves, never explicit inverses; which side of a
push-through identity is solved is chosen by FLOP count (spec §4).

**Over-relaxation** (``hp.relaxation`` = ω ∈ [1, 2), beyond the paper; ω = 1 is the paper's algorithm).
The blocks whose sub-problem is a convex quadratic — ``V_out``, ``U_out``, ``V``, ``W`` and the exact
blocks on the compressed form (each TT core, a pruned layer's weight and bias) — take the over-relaxed
step :math:`X^{k+1} = X^k + \omega(X^* - X^k)` from their exact minimiser :math:`X^*`
(:meth:`~nnbcd.backend.Backend.over_relax`; successive over-relaxation). For a quadratic q with
Hessian H the step lowers q by :math:`\omega(1-\omega/2)D^THD`, :math:`D = X^* - X^k`, so Φ still
decreases in every such block; in one with the α-prox (H ⪰ αI), by at least
:math:`\tfrac\alpha\omega\|X^{k+1} - X^k\|^2 \ge \tfrac\alpha2\|X^{k+1} - X^k\|^2`, the sufficient
decrease the convergence analysis uses. The hidden U-blocks (the ReLU prox, not convex) take the relaxed
step entry by entry only where it does not raise that entry's sub-problem, and the exact minimiser
elsewhere (:func:`~nnbcd.backend.relu_prox_kernel.relu_prox_relaxed_scalar`), which keeps their
:math:`\tfrac\alpha2\|X^{k+1} - X^k\|^2`. Why: the layers' auxiliary variables relax towards each other
as a chain of coupled least-squares blocks, which Gauss–Seidel sweeps do slowly and over-relaxation
speeds up, as for linear systems (docs/compression.md, "Over-relaxed blocks").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Dict, Optional, Tuple

from ..backend import Backend
from ..backend.threads import factor_threads
from ..compress.masked import BiasTerm
from .state import BCDState, Hyper


class Workspace:
    """Preallocated d×N buffers and cached factorisations reused across sweeps.

    Parameters
    ----------
    st : BCDState
        The state whose ``U`` shapes and dtype the buffers take.
    be : Backend
    v_solve, w_solve : {"auto", "direct", "woodbury"}
        Force one form of the V / W solves (for tests); ``"auto"`` picks the cheaper form.
    """

    def __init__(self, st: BCDState, be: Backend, v_solve: str = "auto", w_solve: str = "auto"):
        # one product buffer and one spare per layer: W V products land in ``prod``, V solves swap
        # with ``spare`` so a sweep allocates nothing of size d×N
        self.prod = [be.empty(u.shape, u.dtype) for u in st.U]
        self.spare = [be.empty(u.shape, u.dtype) for u in st.U]
        self.v_solve = v_solve
        self.w_solve = w_solve
        self._first_factor: Optional[Tuple[Tuple[float, float, float], Any]] = None
        self._input_statistics: Optional[Tuple[Any, Optional[Any]]] = None

    def first_layer_factor(self, key: Tuple[float, float, float], make: Callable[[], Any]) -> Any:
        """Factor of layer 0's system, recomputed only when a scalar it depends on changes.

        Parameters
        ----------
        key : (float, float, float)
            (c, ρ, α_b): the scalars the factor depends on (the data do not change).
        make : callable
            Computes the factor on a miss.

        Returns
        -------
        The factor for ``key``. Only the last key is kept: scheduled values change it at most once per
        sweep, and a sweep factors layer 0 once.
        """
        if self._first_factor is None or self._first_factor[0] != key:
            self._first_factor = (key, make())
        return self._first_factor[1]

    def input_statistics(self, v: Any, be: Backend) -> Tuple[Any, Any]:
        """``(G, s) = (VV^T, V1)`` of layer 0's input, which never changes: computed once.

        Parameters
        ----------
        v : array, shape (d_0, N)
            Layer 0's input (``X``, or a conv layer's patch matrix).
        be : Backend

        Returns
        -------
        (array, array)
            Shapes (d_0, d_0) and (d_0,).
        """
        if self._input_statistics is None:
            self._input_statistics = (be.gram(v), v.sum(axis=1))
        return self._input_statistics

    def weight_statistics(self, st: BCDState, i: int, be: Backend) -> "WeightStatistics":
        """The statistics layer ``i``'s W-block solves from: :func:`weight_statistics` of ``st``.

        The seam of a sample-sharded run, whose workspace returns the sum of its shards' statistics
        instead (``nnbcd.dask``); every Gram-form W-block reads its data through this method.
        """
        return weight_statistics(st, i, be, self)


_UPDATE_PARAMETERS = """
    Parameters
    ----------
    st : BCDState
        The iterate, updated in place.
    i : int
        The layer, ``0..L-1``.
    hp : Hyper
    be : Backend
    ws : Workspace
    track : bool
        Whether to measure the block's squared step.

    Returns
    -------
    float
        :math:`\\|X^{k+1}-X^k\\|^2` of the block when ``track``, else ``0.0``.
"""

UpdateFn = Callable[[BCDState, int, Hyper, Backend, Workspace, bool], float]


def _block_update(fn: UpdateFn) -> UpdateFn:
    """Give a block update the Parameters/Returns sections every update shares."""
    fn.__doc__ = (fn.__doc__ or "").rstrip() + "\n" + _UPDATE_PARAMETERS
    return fn


@_block_update
def update_output_v(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r""":math:`V_L \leftarrow (Y + \gamma U_L + \alpha V_L^k)/(1+\gamma+\alpha)` (elementwise)."""
    v = st.V[i]
    new = (st.Y + hp.gamma * st.U[i] + hp.alpha * v) / (1.0 + hp.gamma + hp.alpha)
    be.over_relax(new, v, hp.relaxation)
    step = be.sq_dist(new, v) if track else 0.0
    v[...] = new
    return step


@_block_update
def update_output_u(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r""":math:`U_L \leftarrow (\gamma V_L + \rho(W_L V_{L-1} + b_L 1^T))/(\gamma+\rho)`."""
    p = st.linear(i, be, out=ws.prod[i])
    if st.b[i] is not None:
        p += st.bias_rows(i, be)[:, None]
    new = (hp.gamma * st.V[i] + hp.rho * p) / (hp.gamma + hp.rho)
    be.over_relax(new, st.U[i], hp.relaxation)
    step = be.sq_dist(new, st.U[i]) if track else 0.0
    st.U[i][...] = new
    return step


@_block_update
def update_hidden_u(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r"""Exact ReLU prox for :math:`U_i` (spec §3.2 step 5), fused in one elementwise kernel (with
    ``hp.relaxation`` ≠ 1, the safeguarded over-relaxed step of the module docstring).

    :math:`a = (\rho(W_i^k V_{i-1} + b_i 1^T) + \alpha U_i^k)/(\rho+\alpha)`,
    :math:`\beta = (\rho+\alpha)/\gamma`, :math:`u^* = \arg\min_u \frac12(v-\sigma(u))^2 + \frac\beta2(u-a)^2`.
    """
    p = st.linear(i, be, out=ws.prod[i])
    old = st.U[i].copy() if track else None
    be.relu_prox_update(p, st.U[i], st.V[i], st.bias_rows(i, be), hp.rho, hp.alpha, hp.gamma, hp.relaxation)
    return be.sq_dist(st.U[i], old) if track else 0.0


@_block_update
def update_hidden_v(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r""":math:`V_i = \arg\min_V \frac\gamma2\|V-\sigma(U_i)\|^2 + \frac\rho2\|\bar U_{i+1} - W_{i+1}V\|^2`.

    With :math:`c=\gamma/\rho`, :math:`R=\sigma(U_i^k)`, :math:`W=W_{i+1}` (:math:`d_{i+1}\times d_i`),
    :math:`\bar U = U_{i+1} - b_{i+1}1^T` and :math:`A = cI + W^TW`:

    * direct: :math:`V = A^{-1}(W^T\bar U + cR)`, a Cholesky solve with N right-hand sides;
    * push-through (``"woodbury"``): :math:`V = R + M(\bar U - WR)` with
      :math:`M = A^{-1}W^T = W^T(cI + WW^T)^{-1}`, where :math:`M` comes from the smaller of the two
      SPD systems with :math:`\min(d_i, d_{i+1})` right-hand sides (independent of N), so the N-sized
      work is two GEMMs. Identity: :math:`A^{-1}(W^T\bar U + cR) - R = A^{-1}W^T(\bar U - WR)`.
    """
    xp = be.xp
    w, b = st.W[i + 1], st.b[i + 1]
    d_next, d = w.shape
    c = hp.gamma / hp.rho
    form = ws.v_solve
    if form == "auto":
        # N-sized FLOPs: direct 2 d d' N (GEMM) + 2 d^2 N (triangular solves, ~1.5x slower per FLOP
        # than GEMM in BLAS); push-through 4 d d' N, all GEMM
        form = "woodbury" if 2 * d_next < 3 * d else "direct"
    if form == "direct":
        with factor_threads(d):
            factor = be.cho_factor_gram(w.T, 1.0, c)
        rhs = be.matmul(w.T, st.U[i + 1], out=ws.prod[i])
        if b is not None:
            rhs -= (w.T @ b)[:, None]
        be.add_scaled_relu(rhs, st.U[i], c)
        new = be.cho_solve(factor, rhs, overwrite_b=True)
        st.V[i], ws.prod[i], old = new, st.V[i], st.V[i]
    else:
        with factor_threads(min(d, d_next)):
            factor = be.cho_factor_gram(w, 1.0, c) if d_next <= d else be.cho_factor_gram(w.T, 1.0, c)
        m = be.cho_solve(factor, w).T if d_next <= d else be.cho_solve(factor, w.T)
        r = be.relu(st.U[i], out=ws.spare[i])
        resid = be.matmul(w, r, out=ws.prod[i + 1])
        xp.subtract(st.U[i + 1], resid, out=resid)
        if b is not None:
            resid -= b[:, None]
        be.matmul(m, resid, out=r, beta=1.0)
        st.V[i], ws.spare[i], old = r, st.V[i], st.V[i]
    be.over_relax(st.V[i], old, hp.relaxation)
    return be.sq_dist(st.V[i], old) if track else 0.0


@dataclass(frozen=True)
class WeightStatistics:
    r"""The N-sized statistics of a W-block's least-squares term :math:`\tfrac\rho2\|U - WV - b1^T\|^2`.

    Expanded, the term is :math:`\tfrac\rho2(\mathrm{tr}(WGW^T) - 2\langle W,R\rangle
    + 2b^T(Ws - u) + n\|b\|^2 + \|U\|^2)`, so these are all that the direct dense solve and the exact
    blocks read from the data. Each is a sum over samples (columns): statistics of disjoint shards of
    the columns add up to those of the whole.

    Attributes
    ----------
    R : array, shape (d_out, d_in)
        :math:`UV^T`.
    G : array, shape (d_in, d_in)
        :math:`VV^T` (symmetric).
    u : array of shape (d_out,) or None
        :math:`U1`; ``None`` for a layer without bias.
    s : array of shape (d_in,) or None
        :math:`V1`; ``None`` for a layer without bias.
    n : int
        N, the number of columns (samples, or patches for a conv layer 0).
    """

    R: Any
    G: Any
    u: Optional[Any]
    s: Optional[Any]
    n: int


def weight_statistics(st: BCDState, i: int, be: Backend, ws: Workspace) -> WeightStatistics:
    """The statistics of layer ``i``'s W-block from the current iterate.

    The one place the W-blocks touch N-sized data in their Gram form: two GEMMs (``R``; ``G`` except for
    layer 0, whose input never changes and whose ``G`` and ``s`` are computed once) and, with a bias,
    two row sums.

    Parameters
    ----------
    st : BCDState
    i : int
        The layer, ``0..L-1``.
    be : Backend
    ws : Workspace
        Caches layer 0's input statistics.

    Returns
    -------
    WeightStatistics
        On the backend, in the state's dtype; ``u``, ``s`` only when the layer has a bias.
    """
    u, v = st.weight_data(i)
    has_b = st.b[i] is not None
    if i == 0:
        G, s = ws.input_statistics(v, be)
    else:
        G, s = be.gram(v), (v.sum(axis=1) if has_b else None)
    return WeightStatistics(R=be.matmul(u, v.T), G=G, u=u.sum(axis=1) if has_b else None,
                            s=s if has_b else None, n=int(v.shape[1]))


def dense_weight_solve(stats: WeightStatistics, target: Any, b_old: Optional[Any], c: float, rho: float,
                       alpha_b: float, be: Backend,
                       cache: Optional[Callable[[Tuple[float, float, float], Callable[[], Any]], Any]] = None
                       ) -> Tuple[Any, Optional[Any]]:
    r"""The dense W-block from its statistics: :math:`W = (\text{target} + \rho R)(cI + \rho G)^{-1}`.

    With a bias, the joint solve over :math:`[W, b]` with the system
    :math:`\begin{pmatrix} cI + \rho G & \rho s\\ \rho s^T & \alpha_b + \rho n\end{pmatrix}` and the
    right-hand side :math:`[\text{target} + \rho R,\ \alpha_b b^k + \rho u]` (spec §3.4). One Cholesky
    of size :math:`d_{in}` (+1), never an inverse.

    Parameters
    ----------
    stats : WeightStatistics
        With ``u``, ``s`` when ``b_old`` is given.
    target : array, shape (d_out, d_in)
        :math:`\alpha_W W^k + \tau\tilde W^k` (or :math:`cW^k`).
    b_old : array of shape (d_out,) or None
        :math:`b^k`; ``None`` for a layer without bias.
    c : float
        :math:`\alpha_W + \tau`.
    rho : float
        :math:`\kappa\rho`.
    alpha_b : float
        The bias prox weight.
    be : Backend
    cache : callable, optional
        ``cache(key, make)`` returning the factor for ``key = (c, ρ, α_b)`` (layer 0's constant system).

    Returns
    -------
    (array, array or None)
        The new W (d_out × d_in, contiguous) and b.
    """
    xp = be.xp
    G = stats.G
    d_in = G.shape[0]
    has_b = b_old is not None

    def make_system() -> Any:
        if not has_b:
            a = rho * G
            be.add_diag(a, c)
            return be.cho_factor(a, overwrite_a=True)
        a = be.empty((d_in + 1, d_in + 1), G.dtype)
        a[:d_in, :d_in] = rho * G
        a[:d_in, d_in] = rho * stats.s
        a[d_in, :d_in] = rho * stats.s
        a[d_in, d_in] = alpha_b + rho * stats.n
        be.add_diag(a[:d_in, :d_in], c)
        return be.cho_factor(a, overwrite_a=True)

    with factor_threads(d_in + has_b):
        factor = make_system() if cache is None else cache((c, rho, alpha_b if has_b else 0.0), make_system)
    rhs = rho * stats.R
    rhs += target
    if has_b:
        rhs_b = alpha_b * b_old + rho * stats.u
        rhs = xp.concatenate([rhs, rhs_b[:, None]], axis=1)
    sol = be.cho_solve_right(factor, rhs, overwrite_b=True)
    return xp.ascontiguousarray(sol[:, :d_in]), (xp.ascontiguousarray(sol[:, d_in]) if has_b else None)


@_block_update
def update_weight(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r"""Joint exact update of :math:`(W_i, b_i)` with the prox and compression couplings.

    Without bias, with :math:`c=\alpha_W+\tau_i` and :math:`V=V_{i-1}`:

    .. math:: W_i = (\alpha_W W_i^k + \tau_i\tilde W_i^k + \rho U_i V^T)(cI + \rho VV^T)^{-1}

    (:func:`dense_weight_solve` on :func:`weight_statistics`) and, when :math:`N < d_{i-1}`, the
    push-through form :math:`W_i = \bar W + \rho(U_i - \bar WV)(cI_N + \rho V^TV)^{-1}V^T`,
    :math:`\bar W = (\alpha_W W_i^k + \tau_i\tilde W_i^k)/c`. With a bias, :math:`V` is augmented by a
    row of ones and the prox weight of that row is :math:`\alpha_b` (spec §3.4). :math:`\rho` here is
    :math:`\kappa\rho`.
    """
    w_old, b_old = st.W[i], st.b[i]
    d_in = w_old.shape[1]
    rho = hp.rho_w
    tau = st.tau.get(i, 0.0)
    c = hp.alpha_w + tau
    if tau and not st.compress[i].replaces_weight:
        target = hp.alpha_w * w_old + tau * st.Wt[i].dense
    else:
        # no coupling, or the reference's projected pruning where W~^k = W^k (spec §3.3)
        target = c * w_old
    form = ws.w_solve
    if form == "auto":
        form = "woodbury" if st.weight_input(i).shape[1] < d_in else "direct"
    if form == "direct":
        w_new, b_new = dense_weight_solve(ws.weight_statistics(st, i, be), target, b_old, c, rho, hp.alpha_b,
                                          be, ws.first_layer_factor if i == 0 else None)
    else:
        u, v = st.weight_data(i)
        sol = _weight_woodbury(be.xp, be, u, v, target, b_old, c, rho, hp.alpha_b)
        w_new = be.xp.ascontiguousarray(sol[:, :d_in])
        b_new = be.xp.ascontiguousarray(sol[:, d_in]) if b_old is not None else None
    be.over_relax(w_new, w_old, hp.relaxation)
    if b_new is not None:
        be.over_relax(b_new, b_old, hp.relaxation)
    return _store_weight(st, i, w_new, b_new, be, track)


def _store_weight(st: BCDState, i: int, w_new: Any, b_new: Optional[Any], be: Backend, track: bool) -> float:
    """Put the new (W_i, b_i) in the state; the squared step of both when ``track``."""
    step = be.sq_dist(w_new, st.W[i]) if track else 0.0
    if track and b_new is not None:
        step += be.sq_dist(b_new, st.b[i])
    st.W[i] = w_new
    if b_new is not None:
        st.b[i] = b_new
    return step


@_block_update
def update_weight_exact(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r"""The exact W-block on layer ``i``'s compressed form (beyond the paper): :math:`W_i` is the compressed
    weight itself, no τ term.

    .. math:: \min_{W\in\mathcal C,\,b}\ \tfrac\rho2\|U_i - WV - b1^T\|^2 + \tfrac{\alpha_W}2\|W - W^k\|^2
              + \tfrac{\alpha_b}2\|b - b^k\|^2

    over the layer's compressed parametrisation :math:`\mathcal C` (a fixed support: one exact solve;
    TT cores: one sweep of exact core solves, each a prox step), through
    :meth:`~nnbcd.compress.base.Compression.exact_update` on :func:`weight_statistics`. On the sweeps
    where the spec re-chooses its structure (:meth:`~nnbcd.compress.base.Compression.reselects`: a
    scheduled cap / sparsity changes, ``reselect_every``, or the first sweep after a projection warm-up,
    ``exact_from``), the dense W-block's step (τ = 0) is taken first and projected (top-k / TT-SVD), and the exact block
    starts from that projection; those sweeps may increase Φ. The squared step reported is the sum of
    the sub-block steps (each TT core's) plus the bias step: with them the sufficient decrease
    :math:`\Phi^k - \Phi^{k+1} \ge \tfrac\alpha2\|\Delta\|^2` holds on the other sweeps.
    """
    spec = st.compress[i]
    sweep = st.sweep
    resolved = spec.at(sweep, st.Wt[i])
    stats = ws.weight_statistics(st, i, be)
    current, b_centre = st.Wt[i], st.b[i]
    rho = hp.rho_w
    reselect = spec.reselects(sweep)
    if reselect:
        w_dense, b_centre = dense_weight_solve(stats, hp.alpha_w * st.W[i], b_centre, hp.alpha_w, rho,
                                               hp.alpha_b, be)
        current = resolved.project(w_dense, backend=be)
    bias = None if b_centre is None else BiasTerm(b=b_centre, s=stats.s, u=stats.u, n=stats.n, alpha_b=hp.alpha_b)
    out = resolved.exact_update(current, stats.R, stats.G, rho, hp.alpha_w, bias=bias, relaxation=hp.relaxation,
                                backend=be)
    st.Wt[i] = out.compressed
    if reselect or not track:
        return _store_weight(st, i, out.compressed.dense, out.b, be, track)
    step = out.step_sq + (0.0 if out.b is None else be.sq_dist(out.b, st.b[i]))
    _store_weight(st, i, out.compressed.dense, out.b, be, False)
    return step


def _weight_woodbury(xp: Any, be: Backend, u: Any, v: Any, target: Any, b_old: Optional[Any],
                     c: float, rho: float, alpha_b: float) -> Any:
    r"""Push-through form of the joint W/b solve for :math:`N < d_{i-1}`.

    With :math:`\tilde V = [V; 1^T]`, :math:`D = \mathrm{diag}(cI, \alpha_b)` and
    :math:`B = [\text{target}, \alpha_b b^k]`:
    :math:`X = \bar X + \rho(U - \bar X\tilde V)(I_N + \rho\tilde V^TD^{-1}\tilde V)^{-1}\tilde V^TD^{-1}`,
    :math:`\bar X = BD^{-1}`.
    """
    n = v.shape[1]
    if b_old is None:
        xbar = target / c
        vd = v / c
        a = rho * be.matmul(v.T, vd)
    else:
        xbar = xp.concatenate([target / c, b_old[:, None]], axis=1)
        ones = xp.ones((1, n), dtype=v.dtype)
        vt = xp.concatenate([v, ones], axis=0)
        vd = xp.concatenate([v / c, ones / alpha_b], axis=0)
        a = rho * be.matmul(vt.T, vd)
        v = vt
    be.add_diag(a, 1.0)
    resid = u - be.matmul(xbar, v)
    with factor_threads(n):
        factor = be.cho_factor(a, overwrite_a=True)
    z = be.cho_solve_right(factor, resid, overwrite_b=True)
    return xbar + rho * be.matmul(z, vd.T)


@_block_update
def update_compression(st: BCDState, i: int, hp: Hyper, be: Backend, ws: Workspace, track: bool) -> float:
    r"""Compression block: :math:`\tilde W_i \leftarrow \Pi(W_i)`, from the new :math:`W_i` (spec §3.3).

    No prox term. The projection sees every weight that shares layer ``i``'s spec
    (:meth:`BCDState.group`); with ``replaces_weight`` (projected pruning) :math:`W_i` is overwritten
    by :math:`\tilde W_i`.
    """
    spec = st.compress[i].at(st.sweep, st.Wt[i])
    old = st.Wt[i].dense
    st.Wt[i] = spec.project(st.W[i], backend=be, weights=st.group(i))
    step = be.sq_dist(st.Wt[i].dense, old) if track else 0.0
    if spec.replaces_weight:
        st.W[i] = st.Wt[i].dense.copy()
    return step


@dataclass(frozen=True)
class Block:
    r"""One kind of block of an NN-BCD sweep.

    Parameters
    ----------
    kind : str
        Its name.
    update : callable
        ``update(st, i, hp, be, ws, track) -> float``, the exact block minimisation.
    prox : bool
        Whether its sub-problem carries the proximal term :math:`\tfrac\alpha2\|X - X^k\|^2`: these
        blocks' steps make up ``prox_step_sq``, the sufficient-decrease quantity (spec §3, §11.6).
    reports : str
        The kind its time and squared step are added to in the history (``time_<reports>``,
        ``step_<reports>``).
    where : {"output", "hidden", "not_exact", "exact", "projection"}
        The layers it acts on: the last layer, layers ``0..L-2``, every layer but those with an exact
        block, those with an exact block, the compressed layers with the projection block.
    per_sample : bool
        Whether the block acts on each sample's columns (U, V) alone, given the weights: such blocks of a
        layer come before its weight blocks in the table, and a sample-sharded run updates them on each
        shard; the others (W, W_exact, comp) read the data only through :meth:`Workspace.weight_statistics`.
    """

    kind: str
    update: UpdateFn
    prox: bool
    reports: str
    where: str
    per_sample: bool

    def acts_on(self, i: int, n_layers: int, kind: str) -> bool:
        """Whether this block is part of layer ``i``'s step.

        Parameters
        ----------
        i : int
            The layer, ``0..n_layers-1``.
        n_layers : int
            L.
        kind : {"dense", "projection", "exact"}
            Layer ``i`` is uncompressed, compressed with the projection block, or compressed with an
            exact block (:func:`layer_kind`).

        Returns
        -------
        bool
        """
        return _WHERE[self.where](i, n_layers, kind)


def layer_kind(i: int, compressed: Collection[int], exact: Collection[int] = ()) -> str:
    """``"exact"``, ``"projection"`` or ``"dense"``: how layer ``i``'s weight is trained."""
    return "exact" if i in exact else "projection" if i in compressed else "dense"


_WHERE: Dict[str, Callable[[int, int, str], bool]] = {
    "output": lambda i, n_layers, kind: i == n_layers - 1,
    "hidden": lambda i, n_layers, kind: i < n_layers - 1,
    "not_exact": lambda i, n_layers, kind: kind != "exact",
    "exact": lambda i, n_layers, kind: kind == "exact",
    "projection": lambda i, n_layers, kind: kind == "projection",
}


#: Every block kind, in the order a layer's blocks are updated (spec §3): the sweep visits the layers
#: from L-1 down to 0 and, in each, the blocks of this table that act on it. Prox membership follows
#: the paper: V_L, U_i (i < L) and every W_i carry the α-prox; U_L, V_i (i < L) and W~_i do not. A layer
#: with an exact block on its compressed form has ``W_exact`` (with the α-prox) instead of ``W`` and
#: ``comp``.
BLOCK_TABLE: Tuple[Block, ...] = (
    Block("V_out", update_output_v, prox=True, reports="V", where="output", per_sample=True),
    Block("U_out", update_output_u, prox=False, reports="U", where="output", per_sample=True),
    Block("V", update_hidden_v, prox=False, reports="V", where="hidden", per_sample=True),
    Block("U", update_hidden_u, prox=True, reports="U", where="hidden", per_sample=True),
    Block("W", update_weight, prox=True, reports="W", where="not_exact", per_sample=False),
    Block("W_exact", update_weight_exact, prox=True, reports="W", where="exact", per_sample=False),
    Block("comp", update_compression, prox=False, reports="comp", where="projection", per_sample=False),
)

#: The kinds the history reports time and steps under (``time_V``, ``step_V``, ...), in table order.
REPORTED_KINDS: Tuple[str, ...] = tuple(dict.fromkeys(b.reports for b in BLOCK_TABLE))
