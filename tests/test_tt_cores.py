"""TT-core sweeps against an explicit oracle: each core solved by least squares on its explicit linear map."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nnbcd.compress.masked import BiasTerm
from nnbcd.compress.tt_cores import tt_core_sweep

RHO, ALPHA, ALPHA_B = 0.7, 0.3, 1.3

# (name, d_out, d_in, modes (3-d cores) or (row modes, col modes) (4-d cores), ranks)
LAYOUTS = [
    # boundary after mode 2: row cores, the first column core, later column cores with n_λ = 2, 4
    ("aligned", 6, 12, (2, 3, 2, 2, 3), (1, 2, 3, 3, 3, 1)),
    # d_out = 1: every core is a column core
    ("single-row", 1, 12, (2, 2, 3), (1, 2, 3, 1)),
    # d_in = 1: every core is a row core
    ("single-column", 12, 1, (3, 4), (1, 3, 1)),
    # the boundary falls inside a mode (as the reference's (6, 22, 34, 2, ...) for 1024×561): through W
    ("straddling", 4, 12, (3, 2, 4, 2), (1, 3, 4, 2, 1)),
    # TT-matrix layout, 4-d cores (r, o, c, r')
    ("matrix", 12, 6, ((2, 3, 2), (3, 1, 2)), (1, 4, 3, 1)),
]


def random_cores(rng, modes, ranks, matrix):
    if matrix:
        rows, cols = modes
        return [rng.standard_normal((ranks[t], o, c, ranks[t + 1])) for t, (o, c) in enumerate(zip(rows, cols))]
    return [rng.standard_normal((ranks[t], n, ranks[t + 1])) for t, n in enumerate(modes)]


def to_matrix(cores, d_out, d_in):
    """Explicit contraction; 4-d cores interleave row and column modes (TT-matrix)."""
    T = np.ones((1, 1))
    for c in cores:
        T = (T @ c.reshape(c.shape[0], -1)).reshape(-1, c.shape[-1])
    if cores[0].ndim == 3:
        return T.reshape(d_out, d_in)
    m = len(cores)
    inter = T.reshape([k for c in cores for k in c.shape[1:3]])
    return inter.transpose([2 * t for t in range(m)] + [2 * t + 1 for t in range(m)]).reshape(d_out, d_in)


def oracle(cores, U, V, bias=None, steps=None, omega=1.0):
    """The sweep spelled out: LQ gauge right to left (numpy QR); then for the first ``steps`` cores the
    explicit map X ↦ mat(TT) built from unit vectors, a stacked least-squares solve with the prox rows
    (and the bias unknowns), the over-relaxed step C + ω(X − C), and a QR moving the gauge right.
    Returns (W, b) after those steps."""
    d_out, n = U.shape
    d_in = V.shape[0]
    cs = [c.copy() for c in cores]
    m = len(cs)
    for t in range(m - 1, 0, -1):
        shape = cs[t].shape
        q, r = np.linalg.qr(cs[t].reshape(shape[0], -1).T)
        cs[t] = q.T.reshape(shape)
        cs[t - 1] = (cs[t - 1].reshape(-1, shape[0]) @ r.T).reshape(cs[t - 1].shape)
    nb = d_out if bias is not None else 0
    for t in range(m if steps is None else steps):
        shape = cs[t].shape
        k = cs[t].size
        J = np.array([to_matrix(cs[:t] + [np.eye(k)[j].reshape(shape)] + cs[t + 1:], d_out, d_in)
                      for j in range(k)])
        A = np.zeros((d_out * n + k + nb, k + nb))
        A[: d_out * n, :k] = np.sqrt(RHO) * (J @ V).reshape(k, -1).T
        A[d_out * n: d_out * n + k, :k] = np.sqrt(ALPHA) * np.eye(k)
        y = np.concatenate([np.sqrt(RHO) * U.ravel(), np.sqrt(ALPHA) * cs[t].ravel(), np.zeros(nb)])
        if bias is not None:
            A[: d_out * n, k:] = np.sqrt(RHO) * np.kron(np.eye(d_out), np.ones((n, 1)))
            A[d_out * n + k:, k:] = np.sqrt(ALPHA_B) * np.eye(d_out)
            y[d_out * n + k:] = np.sqrt(ALPHA_B) * bias
        x = np.linalg.lstsq(A, y, rcond=None)[0][:k].reshape(shape)
        x = cs[t] + omega * (x - cs[t])
        if t < m - 1:
            q, r = np.linalg.qr(x.reshape(-1, shape[-1]))
            x = q.reshape(shape)
            cs[t + 1] = (r @ cs[t + 1].reshape(shape[-1], -1)).reshape(cs[t + 1].shape)
        cs[t] = x
    W = to_matrix(cs, d_out, d_in)
    b = None
    if bias is not None:
        b = (RHO * U.sum(1) + ALPHA_B * bias - RHO * W @ V.sum(1)) / (RHO * n + ALPHA_B)
    return W, b


def data(rng, d_out, d_in, n=9):
    return rng.standard_normal((d_out, n)), rng.standard_normal((d_in, n)), rng.standard_normal(d_out)


def sweep(cores, U, V, bk=None, **kw):
    bias = None if bk is None else BiasTerm(bk, V.sum(1), U.sum(1), U.shape[1], ALPHA_B)
    return tt_core_sweep(cores, U @ V.T, V @ V.T, RHO, ALPHA, bias=bias, **kw)


def objective(U, V, W, b=None):
    r = U - W @ V - (0 if b is None else b[:, None])
    return RHO / 2 * float((r * r).sum())


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("max_direct", [None, 1])  # default choice; CG on every later column core
@pytest.mark.parametrize("name, d_out, d_in, modes, ranks", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_sweep_matches_the_explicit_lstsq_sweep(backend, rng, name, d_out, d_in, modes, ranks, max_direct,
                                                with_bias):
    cores = random_cores(rng, modes, ranks, name == "matrix")
    U, V, bk = data(rng, d_out, d_in)
    res = sweep(cores, U, V, bk if with_bias else None, max_direct=max_direct, cg_tol=1e-14, backend=backend)
    W, b = oracle(cores, U, V, bk if with_bias else None)
    scale = np.abs(W).max()
    np.testing.assert_allclose(to_matrix(res.cores, d_out, d_in), W, rtol=0, atol=1e-10 * scale)
    assert [c.shape for c in res.cores] == [c.shape for c in cores]
    if with_bias:
        np.testing.assert_allclose(res.b, b, rtol=0, atol=1e-10 * max(1.0, np.abs(b).max()))
    solves = res.info["solve"]
    if name == "aligned":
        assert solves[:3] == ["kronecker"] * 3  # the row cores and the first column core
        assert solves[3:] == (["cg"] * 2 if max_direct == 1 else ["dense"] * 2)
    if name == "single-column":  # d_in = 1: every core is a row core
        assert set(solves) == {"kronecker"}
    if name == "single-row":  # d_out = 1: the first core is the first column core
        assert solves[0] == "kronecker"
    if name in ("straddling", "matrix"):
        assert set(solves) == {"cg"}


@pytest.mark.parametrize("omega", [1.3, 1.9])
@pytest.mark.parametrize("name, d_out, d_in, modes, ranks", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_relaxed_sweep_matches_the_explicit_relaxed_lstsq_sweep(rng, name, d_out, d_in, modes, ranks, omega):
    cores = random_cores(rng, modes, ranks, name == "matrix")
    U, V, bk = data(rng, d_out, d_in)
    res = sweep(cores, U, V, bk, cg_tol=1e-14, relaxation=omega)
    W, b = oracle(cores, U, V, bk, omega=omega)
    scale = np.abs(W).max()
    np.testing.assert_allclose(to_matrix(res.cores, d_out, d_in), W, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(res.b, b, rtol=0, atol=1e-10 * max(1.0, np.abs(b).max()))
    exact = sweep(cores, U, V, bk, cg_tol=1e-14)
    # the first core starts from the same centre either way: its step is ω times the exact one
    assert res.info["step_sq"][0] == pytest.approx(omega ** 2 * exact.info["step_sq"][0], rel=1e-8)


@pytest.mark.parametrize("omega", [1.0, 1.5, 1.9])
@pytest.mark.parametrize("name, d_out, d_in, modes, ranks", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_relaxed_sweep_decreases_the_objective_by_alpha_over_omega_steps(rng, name, d_out, d_in, modes, ranks,
                                                                        omega):
    """Each relaxed core step lowers ρ/2‖U − WV‖² by at least α/ω‖W^(t+1) − W^(t)‖² (the gauge makes
    the core map an isometry), so over the sweep by α/ω times the summed steps."""
    cores = random_cores(rng, modes, ranks, name == "matrix")
    U, V, _ = data(rng, d_out, d_in, n=15)
    before = objective(U, V, to_matrix(cores, d_out, d_in))
    res = sweep(cores, U, V, cg_tol=1e-14, relaxation=omega)
    after = objective(U, V, to_matrix(res.cores, d_out, d_in))
    assert after + ALPHA / omega * sum(res.info["step_sq"]) <= before * (1 + 1e-12)


def test_cores_are_left_orthonormal(rng):
    _, d_out, d_in, modes, ranks = LAYOUTS[0]
    U, V, _ = data(rng, d_out, d_in)
    res = sweep(random_cores(rng, modes, ranks, False), U, V)
    for c in res.cores[:-1]:
        q = c.reshape(-1, c.shape[-1])
        np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-12)


def test_single_core_is_the_dense_prox_block(rng):
    """m = 1: the core is W itself, so the sweep is the paper's dense W-block."""
    d_out, d_in = 5, 7
    U, V, _ = data(rng, d_out, d_in, n=11)
    Wk = rng.standard_normal((d_out, d_in))
    res = sweep([Wk.reshape(1, -1, 1)], U, V, cg_tol=1e-14)
    dense = (RHO * U @ V.T + ALPHA * Wk) @ np.linalg.inv(RHO * V @ V.T + ALPHA * np.eye(d_in))
    np.testing.assert_allclose(res.cores[0].reshape(d_out, d_in), dense, atol=1e-10)


@pytest.mark.parametrize("name, d_out, d_in, modes, ranks", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_no_random_perturbation_of_the_last_core_does_better(rng, name, d_out, d_in, modes, ranks):
    """Brute force on the last step: with the other returned cores fixed (left-orthonormal, so the prox
    on the core is the Frobenius prox on W), the returned last core beats every perturbation of it on
    ρ/2‖U − WV‖² + α/2‖W − W_centre‖², W_centre the oracle's W after the first m − 1 steps."""
    cores = random_cores(rng, modes, ranks, name == "matrix")
    U, V, _ = data(rng, d_out, d_in)
    res = sweep(cores, U, V, cg_tol=1e-14)
    centre, _ = oracle(cores, U, V, steps=len(cores) - 1)

    def f(last):
        W = to_matrix(res.cores[:-1] + [last], d_out, d_in)
        return objective(U, V, W) + ALPHA / 2 * float(((W - centre) ** 2).sum())

    best = f(res.cores[-1])
    for scale in (1e-5, 1e-2, 1.0):
        for _ in range(20):
            assert best <= f(res.cores[-1] + scale * rng.standard_normal(res.cores[-1].shape)) + 1e-12 * best


@pytest.mark.parametrize("name, d_out, d_in, modes, ranks", LAYOUTS, ids=[c[0] for c in LAYOUTS])
@pytest.mark.parametrize("seed", range(3))
def test_sweeps_never_increase_the_objective(name, d_out, d_in, modes, ranks, seed):
    rng = np.random.default_rng(seed)
    cores = random_cores(rng, modes, ranks, name == "matrix")
    U, V, bk = data(rng, d_out, d_in, n=15)
    b = bk
    last = objective(U, V, to_matrix(cores, d_out, d_in), b)
    for _ in range(6):
        res = sweep(cores, U, V, b)
        now = objective(U, V, to_matrix(res.cores, d_out, d_in), res.b)
        # exact block minimisation from (W^k, b^k): even the bias prox is paid out of the data term
        assert now + ALPHA_B / 2 * float(((res.b - b) ** 2).sum()) <= last * (1 + 1e-12)
        cores, b, last = res.cores, res.b, now


def test_float32_runs_in_float32_and_reports_cg(rng):
    _, d_out, d_in, modes, ranks = LAYOUTS[0]
    cores = random_cores(rng, modes, ranks, False)
    U, V, _ = data(rng, d_out, d_in)
    ref = sweep(cores, U, V, max_direct=1)
    res = sweep([c.astype(np.float32) for c in cores], U.astype(np.float32), V.astype(np.float32), max_direct=1)
    assert all(c.dtype == np.float32 for c in res.cores)
    W, W32 = to_matrix(ref.cores, d_out, d_in), to_matrix(res.cores, d_out, d_in)
    np.testing.assert_allclose(W32, W, atol=1e-3 * np.abs(W).max())
    for it, r32, r64 in zip(res.info["cg_iterations"], res.info["cg_residual"], ref.info["cg_residual"]):
        assert (it is None) == (r32 is None)
        if it is not None:
            assert r32 <= 1e-4 and r64 <= 1e-9  # default tolerances 1e-5 / 1e-10 (true residual)


@pytest.mark.parametrize("name, d_out, d_in, modes, ranks", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_float64_refinement_reaches_the_float64_solution(rng, monkeypatch, name, d_out, d_in, modes, ranks):
    """float64 solves by float32 corrections (the default) reach the tolerance of float64 CG and the same
    cores as float64 CG throughout (``refine=False``), on every CG core (max_direct=1)."""
    import nnbcd.compress.tt_cores as tc

    cores = random_cores(rng, modes, ranks, name == "matrix")
    U, V, _ = data(rng, d_out, d_in, n=15)
    plain = sweep(cores, U, V, max_direct=1, cg_tol=1e-12, refine=False)
    dtypes = []
    pcg = tc._pcg
    monkeypatch.setattr(tc, "_pcg", lambda matvec, rhs, *a: dtypes.append(rhs.dtype) or pcg(matvec, rhs, *a))
    refined = sweep(cores, U, V, max_direct=1, cg_tol=1e-12)
    assert (np.float32 in dtypes) == (name != "single-column")  # the corrections ran in float32
    W, W_ref = to_matrix(plain.cores, d_out, d_in), to_matrix(refined.cores, d_out, d_in)
    np.testing.assert_allclose(W_ref, W, rtol=0, atol=1e-9 * np.abs(W).max())
    assert ("cg" in refined.info["solve"]) == (name != "single-column")  # row cores only: Kronecker solves
    assert all(r is None or r <= 1e-11 for r in refined.info["cg_residual"]), refined.info["cg_residual"]


@pytest.mark.parametrize("change, exc, match", [
    (lambda c: [c[0][:, :, :1]] + c[1:], ValueError, "ranks must chain"),
    (lambda c: [np.ones((1, 4, 2))] + c[1:], ValueError, "do not make a 6×12 weight"),
    (lambda c: c[:-1] + [np.ones((3, 3, 2))], ValueError, "ranks must chain"),
    (lambda c: [c[0].astype(np.float32)] + c[1:], TypeError, "dtype"),
    (lambda c: [x.reshape(x.shape + (1,)) for x in c[:1]] + c[1:], ValueError, "3-d"),
])
def test_core_errors(rng, change, exc, match):
    _, d_out, d_in, modes, ranks = LAYOUTS[0]
    cores = random_cores(rng, modes, ranks, False)
    U, V, _ = data(rng, d_out, d_in)
    with pytest.raises(exc, match=match):
        sweep(change(cores), U, V)


def test_argument_errors(rng):
    _, d_out, d_in, modes, ranks = LAYOUTS[0]
    cores = random_cores(rng, modes, ranks, False)
    U, V, _ = data(rng, d_out, d_in)
    R, G = U @ V.T, V @ V.T
    with pytest.raises(ValueError, match="rho must be finite and > 0"):
        tt_core_sweep(cores, R, G, -1.0, ALPHA)
    with pytest.raises(ValueError, match="alpha must be finite"):
        tt_core_sweep(cores, R, G, RHO, math.inf)
    with pytest.raises(ValueError, match="max_direct must be an integer"):
        tt_core_sweep(cores, R, G, RHO, ALPHA, max_direct=0)
    for bad in (0.5, 2.0, -1.0, math.nan):
        with pytest.raises(ValueError, match=r"relaxation must be in \[1, 2\)"):
            tt_core_sweep(cores, R, G, RHO, ALPHA, relaxation=bad)
    with pytest.raises(TypeError, match="relaxation must be a real number"):
        tt_core_sweep(cores, R, G, RHO, ALPHA, relaxation="1.5")
    with pytest.raises(ValueError, match="rank larger than its unfolding"):
        tt_core_sweep([np.ones((1, 2, 5))] + [np.ones((5, 36, 1))], R, G, RHO, ALPHA)
