"""Real-GPU checks (skipped without CuPy and a CUDA device): parity of the cupy backend with numpy."""
import numpy as np
import pytest

import nnbcd

pytestmark = pytest.mark.gpu

if "cupy" not in nnbcd.available_backends():
    pytest.skip("CuPy with a CUDA device is not available", allow_module_level=True)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("form", ["direct", "woodbury"])
def test_cupy_matches_numpy(dtype, rtol, form):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]
    w = {}
    for name in ("numpy", "cupy"):
        m = nnbcd.NNBCD((64, 48, 32, 10), backend=name, dtype=dtype, seed=1, bias=True,
                        v_solve=form).fit(X, y, max_iter=5)
        assert all(a.dtype == np.dtype(dtype) for a in m.weights_)
        w[name] = m.weights_
    for a, b in zip(w["cupy"], w["numpy"]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def test_state_stays_on_device():
    import cupy

    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    m = nnbcd.NNBCD((64, 32, 10), backend="cupy", dtype="float32", seed=0).fit(X / 16.0, y, max_iter=2)
    assert all(isinstance(a, cupy.ndarray) for a in m.state_.W + m.state_.U + m.state_.V)
