"""Backend layer: linear algebra against numpy.linalg, dtype discipline, errors."""
import numpy as np
import pytest

from nnbcd.backend import get_backend


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["C", "T"])
def test_matmul_against_numpy(backend, rng, dtype, layout):
    a = rng.standard_normal((7, 5)).astype(dtype)
    b = rng.standard_normal((5, 9)).astype(dtype)
    if layout == "T":  # transposed (Fortran-ordered) operands
        a, b = np.ascontiguousarray(a.T).T, np.ascontiguousarray(b.T).T
    ref = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-5 if dtype == "float32" else 1e-12
    A, B = backend.asarray(a), backend.asarray(b)
    got = backend.matmul(A, B)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(backend.to_numpy(got), ref, rtol=tol, atol=tol)
    out = backend.asarray(rng.standard_normal((7, 9)).astype(dtype))
    prev = backend.to_numpy(out).astype(np.float64)
    backend.matmul(A, B, out=out, alpha=0.5, beta=2.0)
    np.testing.assert_allclose(backend.to_numpy(out), 0.5 * ref + 2.0 * prev, rtol=tol, atol=10 * tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gram_and_cholesky_solves(backend, rng, dtype):
    v = rng.standard_normal((6, 40)).astype(dtype)
    g = backend.gram(backend.asarray(v))
    tol = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(backend.to_numpy(g), v.astype(float) @ v.T.astype(float), rtol=tol, atol=tol)
    a = backend.to_numpy(g) + np.eye(6, dtype=dtype)
    b = rng.standard_normal((6, 4)).astype(dtype)
    f = backend.cho_factor(backend.asarray(a))
    x = backend.to_numpy(backend.cho_solve(f, backend.asarray(b)))
    np.testing.assert_allclose(x, np.linalg.solve(a.astype(float), b.astype(float)), rtol=100 * tol, atol=100 * tol)
    c = rng.standard_normal((3, 6)).astype(dtype)
    y = backend.to_numpy(backend.cho_solve_right(f, backend.asarray(c)))
    np.testing.assert_allclose(y, np.linalg.solve(a.astype(float), c.T.astype(float)).T, rtol=100 * tol,
                               atol=100 * tol)
    assert x.dtype == y.dtype == np.dtype(dtype)


def test_cholesky_rejects_indefinite(backend):
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        backend.cho_factor(backend.asarray(np.array([[1.0, 2.0], [2.0, 1.0]])))


def test_elementwise_kernels(backend, rng):
    x = rng.standard_normal((5, 8))
    y = rng.standard_normal((5, 8))
    out = backend.to_numpy(backend.add_scaled_relu(backend.asarray(y.copy()), backend.asarray(x), 0.3))
    np.testing.assert_allclose(out, y + 0.3 * np.maximum(x, 0), rtol=1e-14)
    np.testing.assert_allclose(backend.relu_gap_sq(backend.asarray(y), backend.asarray(x)),
                               ((y - np.maximum(x, 0)) ** 2).sum(), rtol=1e-12)
    b = rng.standard_normal(5)
    np.testing.assert_allclose(backend.lin_gap_sq(backend.asarray(x), backend.asarray(y), backend.asarray(b)),
                               ((x - y - b[:, None]) ** 2).sum(), rtol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(backend.relu(backend.asarray(x))), np.maximum(x, 0))


def test_asarray_dtype_rules(backend):
    with pytest.raises(ValueError, match="dtype"):
        backend.asarray(np.ones(3), dtype="float16")
    with pytest.raises(TypeError, match="x has dtype"):
        backend.asarray(np.ones(3, dtype=np.int64))
    assert backend.asarray(np.ones(3), dtype="float32").dtype == np.float32


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend='jax'"):
        get_backend("jax")


@pytest.mark.parametrize("threshold", [0, 1 << 62])
def test_numba_threaded_and_serial_kernels(rng, threshold, monkeypatch):
    """Both compiled variants (threaded and serial) against the numpy formulas."""
    be = get_backend("numba")
    monkeypatch.setattr(be, "parallel_min_size", threshold)
    ref = get_backend("numpy")
    p, u, v = (rng.standard_normal((7, 33)) for _ in range(3))
    b = rng.standard_normal(7)
    got = be.relu_prox_update(p.copy(), u.copy(), v, b, 0.6, 1.1, 0.3)
    want = ref.relu_prox_update(p.copy(), u.copy(), v, b, 0.6, 1.1, 0.3)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(be.add_scaled_relu(p.copy(), u, 0.4), p + 0.4 * np.maximum(u, 0), rtol=1e-14)
    np.testing.assert_array_equal(be.relu(u), np.maximum(u, 0))
    np.testing.assert_allclose(be.relu_gap_sq(v, u), ((v - np.maximum(u, 0)) ** 2).sum(), rtol=1e-12)
    np.testing.assert_allclose(be.lin_gap_sq(u, p, b), ((u - p - b[:, None]) ** 2).sum(), rtol=1e-12)
