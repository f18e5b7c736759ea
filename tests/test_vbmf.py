"""EVBMF against the spec's oracles: synthetic recipes, invariances, optimality, a direct transcription."""
import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from nnbcd.bench.vbmf import recipe  # the spec's synthetic test matrices (data, not an oracle)
from nnbcd.ops import evbmf, evbmf_batch, evbmf_from_singular_values, tau_lower, vbmf
from nnbcd.ops.vbmf import omega


SPEC = [("A", 512, 4608, 32, 0.999793), ("B", 512, 4608, 58, 1.009785), ("C", 512, 4608, 7, 1.029096),
        ("C", 64, 576, 5, 1.215459)]


@pytest.fixture(scope="module")
def spec_mats():
    return {(k, L, M): recipe(k, L, M) for k, L, M, _, _ in SPEC}


@pytest.mark.parametrize("kind,L,M,rank,s2", SPEC)
@pytest.mark.parametrize("scale", [1e-4, 1e-2, 1.0, 1e2, 1e4])
def test_spec_values_at_every_scale(spec_mats, kind, L, M, rank, s2, scale):
    r = evbmf(scale * spec_mats[(kind, L, M)])
    assert r.rank == rank
    assert r.sigma2 / scale ** 2 == pytest.approx(s2, abs=1.5e-6)


@pytest.mark.parametrize("L,M,R", [(256, 2304, 1), (256, 2304, 8), (256, 2304, 32), (64, 576, 1), (64, 576, 8),
                                   (200, 200, 8), (100, 700, 4)])
def test_known_rank_recovery_and_noise_level(L, M, R):
    y = recipe("A", L, M, R=R)
    for mat in (y, y.T):  # wide and tall
        r = evbmf(mat)
        assert r.rank == R and r.transposed == (mat.shape[0] > mat.shape[1])
        assert abs(r.sigma2 - 1.0) < 0.05


@pytest.mark.parametrize("shape", [(64, 576), (100, 100), (256, 2304)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_has_rank_zero(shape, seed):
    assert evbmf(np.random.default_rng(seed).standard_normal(shape)).rank == 0


def test_orthogonal_invariance_and_exact_tau(rng):
    y = recipe("B", 64, 300, seed=3)
    q1 = np.linalg.qr(rng.standard_normal((64, 64)))[0]
    q2 = np.linalg.qr(rng.standard_normal((300, 300)))[0]
    a, b = evbmf(y), evbmf(q1 @ y @ q2)
    assert a.rank == b.rank and b.sigma2 == pytest.approx(a.sigma2, rel=1e-8)
    assert evbmf(recipe("C", 64, 576), tau_mode="exact").rank == 5
    assert tau_lower(1.0, "exact") == pytest.approx(2.51286, abs=1e-5)


@pytest.mark.parametrize("kind", ["A", "B", "C"])
def test_optimal_and_consistent(kind):
    y = recipe(kind, 96, 800, seed=5, R=12)
    r = evbmf(y)
    L, M = r.shape
    fro2 = float((y ** 2).sum())
    alpha = L / M
    tl = tau_lower(alpha)
    xbar = (1 + tl) * (1 + alpha / tl)
    s2 = r.singular_values ** 2
    hbar = min(math.ceil(L / (1 + alpha)) - 1, L)
    lo = max(s2[hbar] / (M * xbar), (fro2 - s2[:hbar].sum()) / (M * (L - hbar)))
    grid = np.linspace(math.log(lo), math.log(fro2 / (L * M)), 2000)
    best = omega(math.log(r.sigma2), s2, fro2, L, M, xbar)[0]
    assert np.all(best <= omega(grid, s2, fro2, L, M, xbar) + 1e-9 * abs(best))
    assert r.threshold > math.sqrt(r.sigma2) * (math.sqrt(L) + math.sqrt(M))
    g = r.singular_values[:r.rank]
    assert np.all((0 < r.shrunk) & (r.shrunk < g))
    x = g ** 2 / (M * r.sigma2)
    d = x - (1 + alpha)
    np.testing.assert_allclose(r.shrunk * g / (M * r.sigma2), 0.5 * (d + np.sqrt(d * d - 4 * alpha)), rtol=1e-10)
    assert r.free_energy == pytest.approx(L * M * math.log(2 * math.pi) + M * best, rel=1e-10)


def _direct(y):
    """Plain transcription of the spec: full SVD, a 10^4-point log grid, bounded refinement to 1e-12."""
    y = y if y.shape[0] <= y.shape[1] else y.T
    L, M = y.shape
    s = np.linalg.svd(y, compute_uv=False)
    fro2 = float((y ** 2).sum())
    alpha = L / M
    tl = 2.5129 * math.sqrt(alpha)
    xbar = (1 + tl) * (1 + alpha / tl)
    hbar = math.ceil(L / (1 + alpha)) - 1
    lo = max(s[hbar] ** 2 / (M * xbar), (fro2 - (s[:hbar] ** 2).sum()) / (M * (L - hbar)))
    hi = fro2 / (L * M)

    def om(t):
        sig2 = math.exp(t)
        xs = s ** 2 / (M * sig2)
        xs = xs[xs > xbar]
        tau = 0.5 * (xs - 1 - alpha + np.sqrt((xs - 1 - alpha) ** 2 - 4 * alpha))
        return fro2 / (M * sig2) + L * t + float((np.log1p(tau) + alpha * np.log1p(tau / alpha) - tau).sum())

    grid = np.linspace(math.log(lo), math.log(hi), 10_000)
    i = int(np.argmin([om(t) for t in grid]))
    res = minimize_scalar(om, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 9999)]), method="bounded",
                          options={"xatol": 1e-12})
    sig2 = math.exp(res.x)
    return int((s > math.sqrt(M * sig2 * xbar)).sum()), sig2


@pytest.mark.parametrize("shape,kind,seed", [((8, 8), "A", 0), ((30, 70), "C", 1), ((120, 90), "B", 2),
                                             ((64, 576), "A", 3)])
def test_agrees_with_direct_transcription(shape, kind, seed):
    y = recipe(kind, *shape, seed=seed, R=min(4, min(shape) // 2))
    rank, sig2 = _direct(y)
    r = evbmf(y)
    assert r.rank == rank and r.sigma2 == pytest.approx(sig2, rel=1e-6)


def test_backends_and_batch_agree(backend):
    mats = [recipe("A", 40, 200, seed=k, R=5) for k in range(3)] + [recipe("C", 64, 100, seed=7)]
    ref = [evbmf(m) for m in mats]
    got = [evbmf(backend.asarray(m), backend=backend) for m in mats]
    batch = evbmf_batch(mats, backend=backend)
    for a, b, c in zip(ref, got, batch):
        assert a.rank == b.rank == c.rank
        # the free energy is quadratic at its minimum, so eigenvalues that differ in the last bit (another
        # BLAS/cuSOLVER, a batched call) move the minimiser by about sqrt(eps) ~ 1e-8 relative
        assert b.sigma2 == pytest.approx(a.sigma2, rel=1e-7) and c.sigma2 == pytest.approx(a.sigma2, rel=1e-7)


def test_known_sigma_and_vbmf_limit(spec_mats):
    y = spec_mats[("A", 512, 4608)]
    assert evbmf(y, sigma2=1.0).rank == 32
    r = vbmf(y, sigma2=1.0, c=1e12)
    assert r.threshold == pytest.approx(math.sqrt(4608), rel=1e-9)


def test_conv_unfoldings_give_tucker_ranks(rng):
    out_c, in_c, r_out, r_in = 64, 32, 12, 20
    g = rng.standard_normal((r_out, r_in, 3, 3))
    u_out = np.linalg.qr(rng.standard_normal((out_c, r_out)))[0]
    u_in = np.linalg.qr(rng.standard_normal((in_c, r_in)))[0]
    w0 = np.einsum("abkl,oa,ib->oikl", g, u_out, u_in)
    for s in (1e-3, 0.1):
        w = w0 + s * rng.standard_normal(w0.shape)
        y0 = w.reshape(out_c, -1)
        y1 = w.transpose(1, 0, 2, 3).reshape(in_c, -1)
        assert (evbmf(y0).rank, evbmf(y1).rank) == (r_out, r_in)


@pytest.mark.parametrize("transpose", [False, True])
def test_factors_rebuild_the_estimate(transpose):
    y = recipe("A", 50, 120, R=4)
    y = y.T if transpose else y
    r = evbmf(y, factors=True)
    u, v = r.factors
    assert u.shape == (y.shape[0], 4) and v.shape == (y.shape[1], 4)
    uu, _, vt = np.linalg.svd(y)  # oracle: the shrunk values on NumPy's leading singular vectors
    np.testing.assert_allclose((u * r.shrunk) @ v.T, (uu[:, :4] * r.shrunk) @ vt[:4], atol=1e-10)
    assert np.all(u[np.abs(u).argmax(axis=0), np.arange(4)] > 0)
    assert evbmf(y, factors=False).factors is None


def test_degenerate_and_bad_inputs():
    assert evbmf(np.zeros((5, 9))).rank == 0
    exact = np.outer(np.arange(1.0, 6.0), np.arange(1.0, 10.0))
    r = evbmf(exact)
    assert r.rank == 1 and r.sigma2 == 0.0
    assert evbmf(np.ones((1, 7))).rank == 0
    for shape in [(1, 1), (2, 9), (3, 27), (8, 8), (16, 144), (27, 3)]:  # tiny pure noise: rank 0, no error
        for seed in range(3):
            assert evbmf(np.random.default_rng(seed).standard_normal(shape)).rank == 0
    with pytest.raises(ValueError, match="2-D"):
        evbmf(np.ones(5))
    with pytest.raises(ValueError, match="empty"):
        evbmf(np.ones((0, 4)))
    bad = np.ones((4, 6))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evbmf(bad)
    assert evbmf(np.eye(4, 9, dtype=int)).rank == evbmf(np.eye(4, 9)).rank  # integers are promoted
    assert evbmf([[1.0, 2.0, 3.0], [2.0, 4.0, 6.5]]).shape == (2, 3)  # nested lists are accepted
    with pytest.raises(TypeError, match="y has dtype complex"):
        evbmf(np.ones((3, 4), dtype=complex))
    with pytest.raises(ValueError, match="NaN"):
        vbmf(bad, sigma2=1.0, c=1.0)
    with pytest.raises(ValueError, match="tau_mode"):
        evbmf(np.eye(3), tau_mode="rough")
    with pytest.raises(ValueError, match="H must be"):
        evbmf_from_singular_values(np.ones(3), 3.0, (3, 5), H=4)


def _vb_term(gamma, sig2, L, M):
    """Min over the posterior and priors of one component's VB free-energy term, found numerically.

    Term (Nakajima et al. 2013, with a_h = â v_h, b_h = b̂ u_h, q isotropic per column):
    M log(c_a²/σ_a²) + L log(c_b²/σ_b²) + (â² + Mσ_a²)/c_a² + (b̂² + Lσ_b²)/c_b² − (L + M)
    + (−2âb̂γ + (â² + Mσ_a²)(b̂² + Lσ_b²))/σ². The null solution (â = b̂ = 0, c → 0) gives 0.
    """
    from scipy.optimize import minimize

    def term(p):
        a, b, va, vb, c2 = np.exp(p)  # c_a = c_b: the scale redundancy a → sa, b → b/s is removed
        return (M * np.log(c2 / va) + L * np.log(c2 / vb) + (a * a + M * va) / c2 + (b * b + L * vb) / c2
                - (L + M) + (-2 * a * b * gamma + (a * a + M * va) * (b * b + L * vb)) / sig2)

    starts = [np.log([gamma ** 0.5, gamma ** 0.5, sig2 / gamma, sig2 / gamma, gamma / L]),
              np.log([gamma ** 0.5 / 2, gamma ** 0.5 / 2, sig2 / M, sig2 / L, gamma / M])]
    best = min(minimize(term, s0, method="BFGS", options={"gtol": 1e-10, "maxiter": 5000}).fun for s0 in starts)
    return min(best, 0.0)


def test_free_energy_matches_direct_minimisation_of_the_vb_free_energy():
    y = recipe("A", 8, 20, R=2, seed=4)
    r = evbmf(y, tau_mode="exact")
    L, M = y.shape
    s = np.linalg.svd(y, compute_uv=False)
    fro2 = float((y ** 2).sum())

    def two_f(sig2):
        return L * M * math.log(2 * math.pi * sig2) + fro2 / sig2 + sum(_vb_term(g, sig2, L, M) for g in s)

    f_hat = two_f(r.sigma2)
    assert f_hat == pytest.approx(r.free_energy, rel=1e-7)
    assert all(two_f(r.sigma2 * f) >= f_hat - 1e-7 * abs(f_hat) for f in (0.8, 0.95, 0.99, 1.01, 1.05, 1.25))
    # the components whose numerical optimum is not the null solution are exactly the retained ones
    assert r.rank >= 1 and sum(_vb_term(g, r.sigma2, L, M) < 0 for g in s) == r.rank
