"""ReLU prox against an independent brute-force oracle (spec §11.1), on every backend and under CUDASIM."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from nnbcd.ops import relu_prox


def _f(u, v, a, beta):
    return 0.5 * (v - np.maximum(u, 0.0)) ** 2 + 0.5 * beta * (u - a) ** 2


def _oracle_min(v, a, beta):
    """Global minimum value: f is a convex quadratic on u<=0 and on u>=0; minimise each piece."""
    lo = min(a, 0.0) - 10 * (abs(a) + abs(v) + 1)
    hi = max(a, 0.0, v) + 10 * (abs(a) + abs(v) + 1)
    best = min(_f(0.0, v, a, beta), _f(min(a, 0.0), v, a, beta))
    for bounds in ((lo, 0.0), (0.0, hi)):
        r = minimize_scalar(_f, bounds=bounds, args=(v, a, beta), method="bounded",
                            options={"xatol": 1e-12})
        best = min(best, r.fun)
    return best


def _cases(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    beta = 10 ** rng.uniform(-3, 3, n)
    v = rng.standard_normal(n) * 3
    a = rng.standard_normal(n) * 3
    # boundary rows of the table: v + βa = 0, a = 0, v(β − c) = βa
    k = n // 10
    a[:k] = -v[:k] / beta[:k]
    a[k:2 * k] = 0.0
    c = np.sqrt(beta[2 * k:3 * k] * (beta[2 * k:3 * k] + 1))
    v[2 * k:3 * k] = np.abs(v[2 * k:3 * k])
    a[2 * k:3 * k] = v[2 * k:3 * k] * (beta[2 * k:3 * k] - c) / beta[2 * k:3 * k]
    return v, a, beta


@pytest.fixture(scope="module")
def oracle():
    v, a, beta = _cases()
    fmin = np.array([_oracle_min(*t) for t in zip(v, a, beta)])
    return v, a, beta, fmin


def _check(u, oracle):
    v, a, beta, fmin = oracle
    fu = _f(u, v, a, beta)
    assert np.all(fu <= fmin + 1e-9 * (1 + np.abs(fmin))), np.max(fu - fmin)


def test_numpy_reference_matches_brute_force(oracle):
    v, a, beta, _ = oracle
    _check(np.array([relu_prox(np.array(x), np.array(y), z) for x, y, z in zip(v, a, beta)]), oracle)


def test_backend_kernel_matches_brute_force(backend, oracle):
    """The fused U-update with P=a, U^k=a, ρ=1, α=1, γ=2/β gives exactly the prox centre a."""
    v, a, beta, _ = oracle
    out = []
    for vi, ai, bi in zip(v, a, beta):
        p = be_arr(backend, [[ai]])
        u = be_arr(backend, [[ai]])
        backend.relu_prox_update(p, u, be_arr(backend, [[vi]]), None, 1.0, 1.0, 2.0 / bi)
        out.append(float(backend.to_numpy(u)[0, 0]))
    _check(np.array(out), oracle)


def be_arr(backend, x):
    return backend.asarray(np.array(x, dtype=np.float64))


def test_fused_update_matches_formula(backend, rng):
    """a = (ρ(P + b) + αU)/(ρ+α), β = (ρ+α)/γ, then the prox: checked entrywise against the oracle."""
    d, n = 6, 50
    p, u, v = (rng.standard_normal((d, n)) for _ in range(3))
    b = rng.standard_normal(d)
    rho, alpha, gamma = 0.7, 1.3, 0.4
    out = backend.to_numpy(backend.relu_prox_update(
        backend.asarray(p.copy()), backend.asarray(u.copy()), backend.asarray(v), backend.asarray(b),
        rho, alpha, gamma))
    a = (rho * (p + b[:, None]) + alpha * u) / (rho + alpha)
    beta = (rho + alpha) / gamma
    fmin = np.array([_oracle_min(vi, ai, beta) for vi, ai in zip(v.ravel(), a.ravel())])
    fo = _f(out.ravel(), v.ravel(), a.ravel(), beta)
    assert np.all(fo <= fmin + 1e-9 * (1 + np.abs(fmin)))


def _relaxed_oracle(p, u, v, b, rho, alpha, gamma, omega):
    """The safeguarded over-relaxed U step spelled out in float64 loops: the exact prox from the brute-force
    minimiser's piece, u_ω = u^k + ω(u* − u^k), kept where φ(u_ω) ≤ φ(u^k) (φ = f above, with the
    α-prox in its centre), else u*."""
    a = (rho * (p + (0 if b is None else b[:, None])) + alpha * u) / (rho + alpha)
    beta = (rho + alpha) / gamma
    star = np.asarray(relu_prox(v, a, beta), dtype=np.float64)
    out = np.empty_like(star)
    for idx in np.ndindex(star.shape):
        uw = u[idx] + omega * (star[idx] - u[idx])
        keep = _f(uw, v[idx], a[idx], beta) <= _f(u[idx], v[idx], a[idx], beta)
        out[idx] = uw if keep else star[idx]
    return out, a, beta


@pytest.mark.parametrize("omega", [1.2, 1.5, 1.9])
@pytest.mark.parametrize("with_bias", [False, True])
def test_relaxed_update_is_the_safeguarded_sor_step(backend, rng, omega, with_bias):
    d, n = 7, 60
    p, u, v = (rng.standard_normal((d, n)) * 2 for _ in range(3))
    b = rng.standard_normal(d) if with_bias else None
    rho, alpha, gamma = 0.7, 1.3, 0.4
    out = backend.to_numpy(backend.relu_prox_update(
        backend.asarray(p.copy()), backend.asarray(u.copy()), backend.asarray(v),
        None if b is None else backend.asarray(b), rho, alpha, gamma, omega))
    want, a, beta = _relaxed_oracle(p, u, v, b, rho, alpha, gamma, omega)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    # never above the start on any entry (the block's sufficient decrease), and some entries relaxed
    assert np.all(_f(out, v, a, beta) <= _f(u, v, a, beta) + 1e-12)
    exact = np.asarray(relu_prox(v, a, beta))
    assert np.mean(np.isclose(out, u + omega * (exact - u))) > 0.5


@pytest.mark.parametrize("bad,exc", [(0.5, ValueError), (2.0, ValueError), (float("nan"), ValueError),
                                     ("1.5", TypeError), (None, TypeError)])
def test_relaxation_out_of_range_names_the_argument(backend, rng, bad, exc):
    p, u, v = (backend.asarray(rng.standard_normal((2, 3))) for _ in range(3))
    with pytest.raises(exc, match="relaxation must be"):
        backend.relu_prox_update(p, u, v, None, 1.0, 1.0, 1.0, bad)
    with pytest.raises(exc, match="omega must be"):
        backend.over_relax(u, v, bad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_keep_dtype(backend, dtype, rng):
    p, u, v = (backend.asarray(rng.standard_normal((3, 4)), dtype) for _ in range(3))
    assert backend.relu_prox_update(p, u, v, None, 1.0, 1.0, 1.0).dtype == np.dtype(dtype)
    assert backend.relu(u).dtype == np.dtype(dtype)


_CUDASIM_SCRIPT = r"""
import json, numpy as np
from nnbcd.backend import cuda_kernels
from nnbcd.ops import relu_prox
rng = np.random.default_rng(1)
d, n = 3, 40
p, u, v = (rng.standard_normal((d, n)) for _ in range(3))
b = rng.standard_normal(d)
for bias in (None, b):
    for omega in (1.0, 1.7):
        uk = u.copy()
        cuda_kernels.relu_prox_update(p, uk, v, bias, 0.7, 1.3, 0.4, np.zeros(1), omega)
        a = (0.7 * (p + (0 if bias is None else bias[:, None])) + 1.3 * u) / 2.0
        ref = relu_prox(v, a, 2.0 / 0.4)
        if omega != 1.0:  # the safeguarded relaxed step, as array expressions
            f = lambda x: 0.5 * (v - np.maximum(x, 0)) ** 2 + 0.5 * (2.0 / 0.4) * (x - a) ** 2
            uw = u + omega * (ref - u)
            ref = np.where(f(uw) <= f(u), uw, ref)
        print(json.dumps(float(np.max(np.abs(uk - ref)))))
"""


def test_cuda_kernel_under_simulator():
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = subprocess.run([sys.executable, "-c", _CUDASIM_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    errs = [json.loads(line) for line in out.stdout.split()]
    assert len(errs) == 4 and max(errs) < 1e-12
