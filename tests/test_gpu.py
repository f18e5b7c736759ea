"""Real-GPU checks (skipped without CuPy and a CUDA device): parity of the cupy backend with numpy."""
import numpy as np
import pytest
from conftest import sgd_gradients

import nnbcd

pytestmark = pytest.mark.gpu

if "cupy" not in nnbcd.available_backends():
    pytest.skip("CuPy with a CUDA device is not available", allow_module_level=True)


@pytest.mark.parametrize("form", ["direct", "woodbury"])
def test_cupy_matches_numpy(form):
    """float64: CuPy equals numpy to 1e-10. float32: five sweeps amplify rounding differently on each
    BLAS, so the oracle is float64: CuPy's float32 error must be no larger than numpy's own (×3)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]

    def fit(name, dtype):
        m = nnbcd.NNBCD((48, 32), backend=name, dtype=dtype, random_state=1, bias=True,
                        v_solve=form, max_iter=5).fit(X, y)
        assert all(a.dtype == np.dtype(dtype) for a in m.coefs_)
        return m.coefs_

    ref = fit("numpy", "float64")
    for a, b in zip(fit("cupy", "float64"), ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
    for a, b, c in zip(fit("cupy", "float32"), fit("numpy", "float32"), ref):
        err_cupy, err_numpy = np.abs(a - c).max(), np.abs(b - c).max()
        assert err_cupy <= 3 * err_numpy + 1e-6 * np.abs(c).max(), (err_cupy, err_numpy)


def test_state_stays_on_device():
    import cupy
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    m = nnbcd.NNBCD((32,), backend="cupy", dtype="float32", random_state=0, max_iter=2).fit(X / 16.0, y)
    assert all(isinstance(a, cupy.ndarray) for a in m.state_.W + m.state_.U + m.state_.V)


def _prox_inputs(dtype):
    rng = np.random.default_rng(7)
    p, u, v = (rng.standard_normal((33, 517)).astype(dtype) for _ in range(3))
    return p, u, v, rng.standard_normal(33).astype(dtype)


def _prox_reference(dtype):
    p, u, v, b = _prox_inputs(dtype)
    return nnbcd.get_backend("numpy").relu_prox_update(p, u, v, b, 0.7, 0.3, 0.4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_cuda_kernel_matches_reference(dtype):
    import cupy

    from nnbcd.backend import cuda_kernels

    p, u, v, b = (cupy.asarray(a) for a in _prox_inputs(dtype))
    try:
        cuda_kernels.relu_prox_update(p, u, v, b, 0.7, 0.3, 0.4, cupy.zeros(1, dtype=dtype))
    except Exception as exc:  # noqa: BLE001 - report what the CUDA stack refuses, then stop
        pytest.skip(f"numba-cuda cannot compile on this stack: {type(exc).__name__}: {exc}")
    assert u.dtype == np.dtype(dtype)
    np.testing.assert_allclose(cupy.asnumpy(u), _prox_reference(dtype), rtol=1e-5 if dtype == "float32" else 1e-13,
                               atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_array_fallback_matches_reference(dtype, monkeypatch):
    import cupy

    from nnbcd.backend import cupy_backend

    monkeypatch.setattr(cupy_backend, "_KERNEL_FAILURE", "forced by the test")
    p, u, v, b = (cupy.asarray(a) for a in _prox_inputs(dtype))
    nnbcd.get_backend("cupy").relu_prox_update(p, u, v, b, 0.7, 0.3, 0.4)
    assert u.dtype == np.dtype(dtype)
    np.testing.assert_allclose(cupy.asnumpy(u), _prox_reference(dtype), rtol=1e-5 if dtype == "float32" else 1e-13,
                               atol=1e-6)


def test_mcnc_under_torch_compile_cuda_graphs():
    """torch.compile(mode="reduce-overhead") (CUDA graphs): at every step of a training run the
    gradients of alpha and beta equal eager ones, so no replay reads a stale or overwritten tensor
    (the generator's cached weights must not live in a graph's pool). Plain SGD steps, so a rounding
    difference stays a rounding difference (Adam's sign-like first steps would amplify it)."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from nnbcd.torch.mcnc import MCNCSpec, wrap

    def mlp():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)).cuda()

    x = torch.randn(16, 20, device="cuda")
    spec = MCNCSpec(k=4, d=64, width=32, seed=3)
    eager, compiled = wrap(mlp(), spec), wrap(mlp(), spec)
    for got, want in sgd_gradients(eager, compiled, torch.compile(compiled, mode="reduce-overhead"), x, 5):
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
