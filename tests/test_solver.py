"""NN-BCD solver: descent, backend parity, loss-scale equivalence, validation, status handling."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

import nnbcd
from nnbcd.backend import get_backend
from nnbcd.bcd import blocks
from nnbcd.bcd.objective import objective_terms
from nnbcd.bcd.solver import NNBCD
from nnbcd.bcd.sweep import block_schedule


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:400]
    return X[idx] / 16.0, y[idx]


def _model(**kw):
    base = dict(layers=(64, 32, 24, 10), gamma=0.8, rho=0.6, alpha=0.7, dtype="float64", seed=3)
    base.update(kw)
    return NNBCD(**base)


def test_objective_never_increases_after_any_block(digits):
    X, y = digits
    m = _model(bias=True)
    m.fit(X, y, max_iter=0)  # builds the initial state
    st, be = m.state_, m.backend_
    from nnbcd.bcd.state import Hyper
    hp = Hyper(gamma=0.8, rho=0.6, alpha=0.7, alpha_w=0.7, alpha_b=0.7, kappa=1.0)
    ws = blocks.Workspace(st, be)
    phi = objective_terms(st, hp, be, [w.copy() for w in ws.prod])["phi"]
    for _ in range(50):
        for kind, i, update in block_schedule(st.n_layers, ()):
            update(st, i, hp, be, ws, False)
            new = objective_terms(st, hp, be, [w.copy() for w in ws.prod])["phi"]
            assert new <= phi + 1e-10 * abs(phi), (kind, i, new - phi)
            phi = new


def test_sufficient_decrease_per_iteration(digits):
    X, y = digits
    res = nnbcd.solve(X, y, (64, 32, 24, 10), max_iter=50, gamma=0.8, rho=0.6, alpha=0.7,
                      dtype="float64", seed=1)
    h = res.history
    phi = h["phi"]
    # Φ^k − Φ^{k+1} ≥ (α/2)·(prox-block steps) (spec §11.6)
    assert np.all(phi[:-1] - phi[1:] >= 0.5 * 0.7 * h["prox_step_sq"][1:] - 1e-9 * np.abs(phi[1:]))
    assert np.all(np.diff(phi) <= 1e-10 * np.abs(phi[1:]))


def test_init_forward_pass_zero_couplings(digits):
    X, y = digits
    m = _model(bias=True)
    m.fit(X, y, max_iter=0)
    from nnbcd.bcd.state import Hyper
    hp = Hyper(gamma=0.8, rho=0.6, alpha=0.7, alpha_w=0.7, alpha_b=0.7, kappa=1.0)
    terms = objective_terms(m.state_, hp, m.backend_, [u.copy() for u in m.state_.U])
    assert terms["data"] > 0
    assert all(v == 0.0 for k, v in terms.items() if k.startswith(("relu", "lin", "out")))


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-4)])
def test_backend_parity(digits, dtype, rtol):
    X, y = digits
    res = {}
    for name in nnbcd.available_backends():
        m = _model(backend=name, dtype=dtype, bias=True).fit(X, y, max_iter=5)
        arrays = m.state_.W + m.state_.U + m.state_.V + [b for b in m.state_.b]
        assert {a.dtype for a in arrays} == {np.dtype(dtype)}  # no silent casts anywhere in the state
        res[name] = m.weights_
    ref = res.pop("numpy")
    for name, ws in res.items():
        for a, b in zip(ws, ref):
            assert a.dtype == np.dtype(dtype)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(), err_msg=name)


def test_mean_equals_sum_with_scaled_prox(digits):
    X, y = digits
    n = len(y)
    a = _model(loss_scale="mean", alpha=0.7).fit(X, y, max_iter=3)
    b = _model(loss_scale="sum", alpha=0.7, alpha_w=0.7 * n).fit(X, y, max_iter=3)
    for wa, wb in zip(a.weights_, b.weights_):
        np.testing.assert_allclose(wa, wb, rtol=1e-9, atol=1e-12)


def test_monitoring_does_not_change_iterates(digits):
    X, y = digits
    a = _model(monitor_every=1).fit(X, y, max_iter=6)
    b = _model(monitor_every=4).fit(X, y, max_iter=6)
    for wa, wb in zip(a.weights_, b.weights_):
        np.testing.assert_array_equal(wa, wb)
    h = b.result_.history
    assert np.isnan(h["phi"][0]) and not np.isnan(h["phi"][3]) and not np.isnan(h["phi"][5])
    assert all(len(h[k]) == 6 for k in h)


def test_history_keys_and_result(digits):
    X, y = digits
    m = _model().fit(X[:300], y[:300], X[300:], y[300:], max_iter=3)
    r = m.result_
    for key in ("objective", "phi", "phi_ref", "data", "out", "relu_1", "relu_2", "lin_1", "lin_3",
                "step_sq", "prox_step_sq", "loss", "acc", "val_loss", "val_acc", "time", "time_V",
                "time_U", "time_W"):
        assert key in r.history and len(r.history[key]) == 3, key
    assert r.success and r.status == 0 and r.nit == 3 and m.n_iter_ == 3
    np.testing.assert_allclose(r.history["acc"][-1], m.score(X[:300], y[:300]))
    # phi_ref weights the data term γ/2 instead of ½ (spec §2)
    h = r.history
    np.testing.assert_allclose(h["phi_ref"] - h["phi"], (0.8 - 1.0) * h["data"], rtol=1e-12)


def test_callback_stop_iteration(digits):
    X, y = digits
    seen = []

    def cb(res):
        seen.append(res.nit)
        if res.nit == 2:
            raise StopIteration

    r = nnbcd.solve(X, y, (64, 16, 10), max_iter=10, callback=cb)
    assert r.status == 99 and r.nit == 2 and not r.success and seen == [1, 2]


def test_tol_stops(digits):
    X, y = digits
    r = nnbcd.solve(X, y, (64, 16, 10), max_iter=500, tol=1e-3)
    assert r.status == 1 and r.nit < 500


def test_non_finite_run_keeps_last_finite_iterate():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4)) * 1e150
    y = rng.integers(0, 2, 20)
    r = nnbcd.solve(X, y, (4, 3, 2), max_iter=20, alpha=1e-300, gamma=1e-300, rho=1e300)
    assert r.status == 2 and "non-finite" in r.message
    assert all(np.isfinite(w).all() for w in r.x["W"])


def test_digits_accuracy(digits):
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    m = NNBCD((64, 256, 256, 10), gamma=0.5, rho=0.5, alpha=1.0, backend="numba", dtype="float32",
              seed=0, monitor_every=50).fit(Xtr, ytr, max_iter=50)
    assert m.score(Xte, yte) >= 0.95


@pytest.mark.parametrize("kw,match", [
    (dict(gamma=0), "gamma"), (dict(rho=-1), "rho"), (dict(alpha=float("nan")), "alpha"),
    (dict(dtype="float16"), "dtype"), (dict(backend="tpu"), "backend"), (dict(layers=(64,)), "layers"),
    (dict(loss_scale="avg"), "loss_scale"), (dict(init="he"), "init"), (dict(tau=-1.0), "tau"),
])
def test_bad_constructor_arguments(digits, kw, match):
    X, y = digits
    with pytest.raises((ValueError, TypeError), match=match):
        _model(**kw).fit(X, y, max_iter=1)


def test_bad_data(digits):
    X, y = digits
    with pytest.raises(ValueError, match="y has"):
        _model().fit(X, y[:-1], max_iter=1)
    with pytest.raises(ValueError, match="layers"):
        _model(layers=(63, 10)).fit(X, y, max_iter=1)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        _model().fit(Xn, y, max_iter=1)
    with pytest.raises(ValueError, match="labels"):
        _model(layers=(64, 5)).fit(X, y, max_iter=1)
    with pytest.raises(ValueError, match="compress"):
        _model(compress={7: None}).fit(X, y, max_iter=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        _model().predict(X)


def test_cupy_backend_missing_is_clear():
    if "cupy" in nnbcd.available_backends():
        pytest.skip("cupy present")
    from nnbcd.backend import BackendUnavailableError
    with pytest.raises(BackendUnavailableError, match="cupy"):
        get_backend("cupy")


def test_scikit_learn_conventions(digits):
    from sklearn.base import clone

    X, y = digits
    m = _model(gamma=0.3)
    assert m.get_params()["gamma"] == 0.3
    c = clone(m).set_params(rho=0.9)
    assert c.get_params()["rho"] == 0.9 and c is not m
    assert m.fit(X, y, max_iter=2) is m and m.n_features_in_ == 64 and m.n_iter_ == 2


def test_export_dense(digits):
    X, y = digits
    m = _model(bias=True).fit(X, y, max_iter=2)
    out = m.export()
    assert len(out["layers"]) == 3 and all(isinstance(w, np.ndarray) for w in out["layers"])
    # rebuilding the network from the export reproduces decision_function
    h = X.T
    for i, (w, b) in enumerate(zip(out["layers"], out["biases"])):
        h = w @ h + b[:, None]
        h = np.maximum(h, 0) if i < 2 else h
    np.testing.assert_allclose(h.T, m.decision_function(X), rtol=1e-10, atol=1e-12)
