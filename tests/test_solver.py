"""NN-BCD solver: descent, backend parity, loss-scale equivalence, validation, status handling, sklearn API."""
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import nnbcd
from nnbcd.backend import get_backend
from nnbcd.bcd import blocks
from nnbcd.bcd.estimator import NNBCD
from nnbcd.bcd.objective import objective_terms
from nnbcd.bcd.state import Hyper
from nnbcd.bcd.sweep import block_schedule, sweep
from nnbcd.convergence import plot_convergence, sufficient_decrease
from nnbcd.result import SolveResult, Status

HP = Hyper(gamma=0.8, rho=0.6, alpha=0.7, alpha_w=0.7, alpha_b=0.7, kappa=1.0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:400]
    return X[idx] / 16.0, y[idx]


def _model(**kw):
    base = dict(hidden_layer_sizes=(32, 24), gamma=0.8, rho=0.6, alpha=0.7, dtype="float64", random_state=3)
    base.update(kw)
    return NNBCD(**base)


def test_objective_never_increases_after_any_block(digits):
    X, y = digits
    m = _model(bias=True, max_iter=0).fit(X, y)  # builds the initial state
    st, be = m.state_, m.backend_
    ws = blocks.Workspace(st, be)
    phi = objective_terms(st, HP, be, [w.copy() for w in ws.prod])["objective"]
    for _ in range(50):
        for block, i in block_schedule(st.n_layers, ()):
            block.update(st, i, HP, be, ws, False)
            new = objective_terms(st, HP, be, [w.copy() for w in ws.prod])["objective"]
            assert new <= phi + 1e-10 * abs(phi), (block.kind, i, new - phi)
            phi = new


def test_sufficient_decrease_per_iteration(digits):
    X, y = digits
    res = nnbcd.solve(X, y, hidden_layer_sizes=(32, 24), max_iter=50, gamma=0.8, rho=0.6, alpha=0.7,
                      dtype="float64", random_state=1)
    h = res.history
    phi = h["objective"]
    # Φ^k − Φ^{k+1} ≥ (α/2)·(prox-block steps) (spec §11.6)
    assert np.all(phi[:-1] - phi[1:] >= 0.5 * 0.7 * h["prox_step_sq"][1:] - 1e-9 * np.abs(phi[1:]))
    assert np.all(np.diff(phi) <= 1e-10 * np.abs(phi[1:]))


def test_init_forward_pass_zero_couplings(digits):
    X, y = digits
    m = _model(bias=True, max_iter=0).fit(X, y)
    terms = objective_terms(m.state_, HP, m.backend_, [u.copy() for u in m.state_.U])
    assert terms["data"] > 0
    assert all(v == 0.0 for k, v in terms.items() if k.startswith(("relu", "lin", "out")))


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-4)])
def test_backend_parity(digits, dtype, rtol):
    X, y = digits
    res = {}
    for name in nnbcd.available_backends():
        m = _model(backend=name, dtype=dtype, bias=True, max_iter=5).fit(X, y)
        arrays = m.state_.W + m.state_.U + m.state_.V + [b for b in m.state_.b]
        assert {a.dtype for a in arrays} == {np.dtype(dtype)}  # no silent casts anywhere in the state
        res[name] = m.coefs_
    ref = res.pop("numpy")
    for name, ws in res.items():
        for a, b in zip(ws, ref):
            assert a.dtype == np.dtype(dtype)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(), err_msg=name)


def test_mean_equals_sum_with_scaled_prox(digits):
    X, y = digits
    n = len(y)
    a = _model(loss_scale="mean", alpha=0.7, max_iter=3).fit(X, y)
    b = _model(loss_scale="sum", alpha=0.7, alpha_w=0.7 * n, max_iter=3).fit(X, y)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(wa, wb, rtol=1e-9, atol=1e-12)


def test_monitoring_does_not_change_iterates(digits):
    X, y = digits
    a = _model(monitor_every=1, max_iter=6).fit(X, y)
    b = _model(monitor_every=4, max_iter=6).fit(X, y)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(wa, wb)
    h = b.result_.history
    assert np.isnan(h["objective"][0]) and not np.isnan(h["objective"][3]) and not np.isnan(h["objective"][5])
    assert all(len(h[k]) == 6 for k in h)


def test_history_keys_and_result(digits):
    X, y = digits
    m = _model(max_iter=3).fit(X[:300], y[:300], X_val=X[300:], y_val=y[300:])
    r = m.result_
    for key in ("objective", "objective_ref", "data", "out", "relu_0", "relu_1", "lin_0", "lin_2",
                "step_sq", "prox_step_sq", "loss", "acc", "val_loss", "val_acc", "time", "time_V",
                "time_U", "time_W"):
        assert key in r.history and len(r.history[key]) == 3, key
    assert "phi" not in r.history and "relu_2" not in r.history and "lin_3" not in r.history
    assert r.status == 1 and not r.success and r.message == "Maximum number of iterations reached."
    assert r.nit == 3 and m.n_iter_ == 3
    np.testing.assert_allclose(r.history["acc"][-1], m.score(X[:300], y[:300]))
    np.testing.assert_allclose(r.history["val_acc"][-1], m.score(X[300:], y[300:]))
    # objective_ref weights the data term γ/2 instead of ½ (spec §2)
    h = r.history
    np.testing.assert_allclose(h["objective_ref"] - h["objective"], (0.8 - 1.0) * h["data"], rtol=1e-12)


def test_max_iter_zero_runs_no_sweep_and_has_the_columns_empty(digits):
    # used to leave an empty history: history["objective"] raised KeyError
    X, y = digits
    m = _model(max_iter=0).fit(X[:120], y[:120])
    r, h = m.result_, m.result_.history
    assert r.nit == m.n_iter_ == 0 and h.n_iter == 0 and r.time == 0.0 and np.isnan(r.fun)
    assert r.status == Status.MAX_ITER and r.message == Status.MAX_ITER.message
    for key in ("objective", "step_sq", "prox_step_sq", "time"):
        assert h[key].shape == (0,), key
    # the readers take it: nothing to check, a plot without warnings (a legend of no lines warned)
    check = sufficient_decrease(r, 0.7, start=1)
    assert check.n_checked == 0 and check.worst_iteration == -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plt.close(plot_convergence(r))
    assert m.predict(X[:5]).shape == (5,)


def test_callback_gets_intermediate_result_and_can_stop(digits):
    X, y = digits
    seen = []

    def cb(res):
        assert isinstance(res, SolveResult)
        assert not {"status", "success", "message"} & set(res)  # scipy's intermediate_result
        assert res.history.n_iter == res.nit and np.isfinite(res.fun)
        seen.append(res.nit)
        if res.nit == 2:
            raise StopIteration

    r = nnbcd.solve(X, y, hidden_layer_sizes=(16,), max_iter=10, callback=cb)
    assert r.status == 99 and r.nit == 2 and not r.success and seen == [1, 2]
    assert r.message == "Stopped by the callback (StopIteration)."


def _stopped_by_callback(res):
    raise StopIteration


@pytest.mark.parametrize("kw,status,warns", [
    (dict(max_iter=3), 1, False),  # no tol: reaching max_iter is the plan, no warning
    (dict(max_iter=3, tol=1e-14), 1, True),  # tol given, not met: sklearn's ConvergenceWarning
    (dict(max_iter=500, tol=1e-3), 0, False),
    (dict(max_iter=5, tol=1e-14, callback=_stopped_by_callback), 99, False),
])
def test_status_table_and_convergence_warning(digits, kw, status, warns):
    X, y = digits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = nnbcd.solve(X, y, hidden_layer_sizes=(16,), **kw)
    assert r.status == status and r.success == (status == 0)
    assert r.message == {0: "Converged: relative objective change below tol.",
                         1: "Maximum number of iterations reached.",
                         99: "Stopped by the callback (StopIteration)."}[status]
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught) == warns
    if status == 0:
        assert r.nit < 500
        phi = r.history["objective"]
        assert abs(phi[-2] - phi[-1]) <= 1e-3 * max(1.0, abs(phi[-2]))


def test_status_codes_are_one_table():
    assert {s.value: s.message for s in Status} == {
        0: "Converged: relative objective change below tol.",
        1: "Maximum number of iterations reached.",
        2: "The iterate became non-finite; the last finite iterate is returned.",
        3: "A linear system lost positive definiteness; the last finite iterate is returned.",
        4: "Interrupted (KeyboardInterrupt); the last complete iterate is returned.",
        5: "A worker holding a shard of the samples was lost; the last complete iterate is returned.",
        99: "Stopped by the callback (StopIteration).",
    }
    r = SolveResult.finished(Status.NON_FINITE, nit=1)
    assert r.status == 2 and type(r.status) is int and not r.success and r.nit == 1


def test_non_finite_run_keeps_last_finite_iterate():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4)) * 1e150
    y = rng.integers(0, 2, 20)
    r = nnbcd.solve(X, y, hidden_layer_sizes=(3,), max_iter=20, alpha=1e-300, gamma=1e-300, rho=1e300)
    assert r.status == 2 and "non-finite" in r.message and not r.success
    assert all(np.isfinite(w).all() for w in r.x["W"])
    assert r.history.n_iter == r.nit


def test_lost_positive_definiteness_is_status_3(digits, monkeypatch):
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), random_state=0)
    be = get_backend("numpy")
    cho = be.cho_factor_gram
    calls = []
    limit = [np.inf]

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) > limit[0]:
            raise np.linalg.LinAlgError("not positive definite")
        return cho(*args, **kwargs)

    monkeypatch.setattr(be, "cho_factor_gram", counting)
    ref = nnbcd.solve(X, y, max_iter=2, **kw)  # the iterate after the last completed sweep
    limit[0], calls[:] = len(calls), []  # the third sweep's first factorisation fails
    r = nnbcd.solve(X, y, max_iter=10, **kw)
    assert r.status == 3 and not r.success and "positive definiteness" in r.message
    assert r.nit == 3 and r.history.n_iter == 3
    for a, b in zip(r.x["W"], ref.x["W"]):
        np.testing.assert_array_equal(a, b)


def _interrupt_at(sweep):
    def callback(r):
        if r.nit == sweep:
            raise KeyboardInterrupt
    return callback


def test_keyboard_interrupt_returns_the_last_complete_iterate(digits, caplog):
    X, y = digits
    ref = _model(max_iter=3).fit(X, y)  # an independent run of exactly 3 sweeps
    with caplog.at_level("WARNING", logger="nnbcd.bcd.estimator"):
        m = _model(max_iter=10).fit(X, y, callback=_interrupt_at(3))  # returns self, as MLPClassifier does
    assert m.result_.status == Status.INTERRUPTED == 4 and not m.result_.success
    assert m.result_.message == "Interrupted (KeyboardInterrupt); the last complete iterate is returned."
    assert m.result_.nit == m.n_iter_ == m.result_.history.n_iter == 3
    assert "interrupted" in caplog.text
    for a, b in zip(m.coefs_, ref.coefs_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.predict(X), ref.predict(X))


def test_keyboard_interrupt_mid_sweep_goes_back_to_the_last_complete_sweep(digits, monkeypatch):
    X, y = digits
    be = get_backend("numpy")
    cho, calls, limit = be.cho_factor_gram, [], [np.inf]

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) > limit[0]:
            raise KeyboardInterrupt
        return cho(*args, **kwargs)

    monkeypatch.setattr(be, "cho_factor_gram", counting)
    ref = _model(max_iter=2).fit(X, y)  # the iterate after the last completed sweep
    limit[0], calls[:] = len(calls) + 1, []  # Ctrl-C at the third sweep's second factorisation
    m = _model(max_iter=10).fit(X, y)
    assert m.result_.status == 4 and m.n_iter_ == 2 and m.result_.history.n_iter == 2
    for a, b in zip(m.coefs_, ref.coefs_):
        np.testing.assert_array_equal(a, b)


def test_refit_never_keeps_the_previous_result(digits):
    X, y = digits
    m = _model(max_iter=2).fit(X, y)
    m.set_params(gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        m.fit(X, y)
    for attr in ("result_", "coefs_", "classes_", "n_iter_", "state_", "n_features_in_"):
        assert not hasattr(m, attr), attr
    with pytest.raises(NotFittedError):
        m.predict(X)
    m.set_params(gamma=0.8, max_iter=5)
    m.fit(X, y, callback=_interrupt_at(1))
    assert m.result_.status == 4 and m.n_iter_ == 1


def test_callback_is_checked_before_the_first_sweep(digits, monkeypatch):
    X, y = digits
    monkeypatch.setattr(nnbcd.bcd.estimator, "run", lambda *a, **k: pytest.fail("a sweep ran"))
    with pytest.raises(TypeError, match="callback"):
        _model(max_iter=2).fit(X, y, callback=5)


def test_digits_accuracy(digits):
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    m = NNBCD((256, 256), gamma=0.5, rho=0.5, alpha=1.0, backend="numba", dtype="float32",
              random_state=0, monitor_every=50, max_iter=50).fit(Xtr, ytr)
    assert m.score(Xte, yte) >= 0.95


def test_string_labels_round_trip(digits):
    X, y = digits
    names = np.array([f"digit-{d}" for d in y])  # sorts as 0..9: the same one-hot targets as y
    a = _model(max_iter=4).fit(X, y)
    b = _model(max_iter=4).fit(X, names)
    assert b.classes_.tolist() == [f"digit-{d}" for d in range(10)]
    np.testing.assert_array_equal(b.predict(X), np.array([f"digit-{d}" for d in a.predict(X)]))
    assert b.score(X, names) == a.score(X, y)
    # arbitrary values, unsorted: classes_ = np.unique(y) and output unit k stands for classes_[k]
    odd = np.array([7, -3, 100])[y % 3]
    c = _model(max_iter=4).fit(X, odd)
    assert c.classes_.tolist() == [-3, 7, 100]
    out = c.decision_function(X)
    np.testing.assert_array_equal(c.predict(X), c.classes_[out.argmax(axis=1)])
    np.testing.assert_allclose(c.result_.history["acc"][-1], np.mean(c.predict(X) == odd))


def test_widths_are_inferred_from_the_data(digits):
    X, y = digits
    m = _model(hidden_layer_sizes=(32, 24), max_iter=1).fit(X, y)
    assert [c.shape for c in m.coefs_] == [(32, 64), (24, 32), (10, 24)] and m.n_features_in_ == 64
    three = y % 3 == 0  # classes 0, 3, 6, 9; 40 features
    m = _model(hidden_layer_sizes=[7], max_iter=1).fit(X[three][:, :40], y[three])
    assert [c.shape for c in m.coefs_] == [(7, 40), (4, 7)] and m.classes_.tolist() == [0, 3, 6, 9]
    assert m.decision_function(X[:5, :40]).shape == (5, 4)
    m = _model(hidden_layer_sizes=(), max_iter=1).fit(X, y)  # a single (linear) layer
    assert [c.shape for c in m.coefs_] == [(10, 64)]
    m = _model(hidden_layer_sizes=5, max_iter=1).fit(X, y)  # an int is one hidden layer, as MLPClassifier
    assert [c.shape for c in m.coefs_] == [(5, 64), (10, 5)]


def test_binary_decision_function_is_the_margin(digits):
    X, y = digits
    labels = np.where(y < 5, "low", "high")
    m = _model(max_iter=3, bias=True).fit(X, labels)
    d = m.decision_function(X)
    assert d.shape == (len(y),)
    out = np.maximum(m.coefs_[0] @ X.T + m.intercepts_[0][:, None], 0)
    out = np.maximum(m.coefs_[1] @ out + m.intercepts_[1][:, None], 0)
    out = m.coefs_[2] @ out + m.intercepts_[2][:, None]
    np.testing.assert_allclose(d, out[1] - out[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(m.predict(X), m.classes_[(d > 0).astype(int)])


@pytest.mark.parametrize("kw,match", [
    (dict(gamma=0), "gamma"), (dict(rho=-1), "rho"), (dict(alpha=float("nan")), "alpha"),
    (dict(dtype="float16"), "dtype"), (dict(backend="tpu"), "backend"),
    (dict(hidden_layer_sizes=(64, 0)), "hidden_layer_sizes"), (dict(hidden_layer_sizes="ab"), "hidden_layer_sizes"),
    (dict(loss_scale="avg"), "loss_scale"), (dict(init="he"), "init"), (dict(tau=-1.0), "tau"),
    (dict(max_iter=-1), "max_iter"), (dict(tol=0.0), "tol"), (dict(monitor_every=0), "monitor_every"),
    (dict(conv=(1, 8, 8)), "InputConv2d"),
])
def test_bad_constructor_arguments(digits, kw, match):
    X, y = digits
    with pytest.raises((ValueError, TypeError), match=match):
        _model(max_iter=1, **kw).fit(X, y)


def test_bad_data(digits):
    X, y = digits
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        _model(max_iter=1).fit(X, y[:-1])
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        _model(max_iter=1).fit(Xn, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        _model(max_iter=1).fit(X, y + 0.5)
    with pytest.raises(ValueError, match=r"layers are numbered 0\.\.2"):
        _model(compress={3: None}, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"tau has keys \[1\].*numbered 0\.\.2"):
        _model(compress={0: nnbcd.Prune(0.5)}, tau={1: 2.0}, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"y_val has labels \[11\]"):
        _model(max_iter=1).fit(X, y, X_val=X, y_val=np.r_[y[:-1], 11])
    with pytest.raises(ValueError, match="X_val has 63 features"):
        _model(max_iter=1).fit(X, y, X_val=X[:, :63], y_val=y)
    with pytest.raises(ValueError, match="both X_val and y_val"):
        _model(max_iter=1).fit(X, y, X_val=X)
    with pytest.raises(NotFittedError):
        _model().predict(X)
    m = _model(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 63 features, but NNBCD is expecting 64"):
        m.predict(X[:, :63])


def test_cupy_backend_missing_is_clear():
    if "cupy" in nnbcd.available_backends():
        pytest.skip("cupy present")
    from nnbcd.backend import BackendUnavailableError
    with pytest.raises(BackendUnavailableError, match="cupy"):
        get_backend("cupy")


def test_scikit_learn_conventions(digits):
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import cross_val_score

    X, y = digits
    m = _model(gamma=0.3)
    assert m.get_params()["gamma"] == 0.3 and m.get_params()["max_iter"] == 100
    c = clone(m).set_params(rho=0.9, max_iter=2)
    assert c.get_params()["rho"] == 0.9 and c is not m
    assert c.fit(X, y) is c and c.n_features_in_ == 64 and c.n_iter_ == 2
    assert is_classifier(m) and m.__sklearn_tags__().classifier_tags.multi_class
    scores = cross_val_score(_model(max_iter=3), X, y, cv=2)  # clone + set_params + score
    assert scores.shape == (2,) and np.all(scores > 0.2)


def test_export_dense(digits):
    X, y = digits
    m = _model(bias=True, max_iter=2).fit(X, y)
    out = m.export()
    assert len(out["layers"]) == 3 and all(isinstance(w, np.ndarray) for w in out["layers"])
    # rebuilding the network from the export reproduces decision_function
    h = X.T
    for i, (w, b) in enumerate(zip(out["layers"], out["biases"])):
        h = w @ h + b[:, None]
        h = np.maximum(h, 0) if i < 2 else h
    np.testing.assert_allclose(h.T, m.decision_function(X), rtol=1e-10, atol=1e-12)


def test_pickle_keeps_predictions(digits):
    import pickle

    X, y = digits
    for name in nnbcd.available_backends():
        m = _model(max_iter=2, backend=name).fit(X, y)
        back = pickle.loads(pickle.dumps(m))
        assert back.backend_ is get_backend(name)
        np.testing.assert_array_equal(back.predict(X), m.predict(X))


# ---- the block table drives the sweep --------------------------------------------------------------

def test_schedule_order_and_prox_membership_follow_the_paper():
    schedule = block_schedule(3, {1})
    assert [(b.kind, i) for b, i in schedule] == [
        ("V_out", 2), ("U_out", 2), ("W", 2),
        ("V", 1), ("U", 1), ("W", 1), ("comp", 1),
        ("V", 0), ("U", 0), ("W", 0),
    ]
    # spec §3: the α-prox sits on V_L, U_i (i < L) and every W_i (paper numbering; here L-1 = 2)
    assert {(b.kind, i) for b, i in schedule if b.prox} == {("V_out", 2), ("U", 1), ("U", 0), ("W", 2), ("W", 1),
                                                             ("W", 0)}
    assert [b.kind for b in blocks.BLOCK_TABLE] == ["V_out", "U_out", "V", "U", "W", "W_exact", "comp"]
    assert blocks.REPORTED_KINDS == ("V", "U", "W", "comp")
    # a layer with an exact block on its compressed form: W_exact (with the prox) replaces W and comp
    exact = block_schedule(3, {0, 1}, exact={1})
    assert [(b.kind, i) for b, i in exact if i == 1] == [("V", 1), ("U", 1), ("W_exact", 1)]
    assert [(b.kind, i) for b, i in exact if i == 0] == [("V", 0), ("U", 0), ("W", 0), ("comp", 0)]
    assert all(b.prox for b, i in exact if b.kind == "W_exact")


def test_sweep_reports_steps_by_the_table(digits):
    X, y = digits
    st = _model(bias=True, max_iter=0, compress={1: nnbcd.Prune(0.5)}, tau=1.0).fit(X, y).state_
    be = get_backend("numpy")
    before = {k: [a.copy() for a in getattr(st, k)] for k in ("U", "V", "W", "b")}
    wt_before = st.Wt[1].dense.copy()
    rec = sweep(st, HP, be, blocks.Workspace(st, be), track=True)

    def sq(k, i):
        return float(np.sum((getattr(st, k)[i] - before[k][i]) ** 2))

    L = st.n_layers
    # each block changes once per sweep, so before/after differences are the block steps; a bias is
    # updated jointly with its weight and reported with it
    w_and_b = sum(sq("W", i) + sq("b", i) for i in range(L))
    assert rec["step_V"] == pytest.approx(sum(sq("V", i) for i in range(L)), rel=1e-10)
    assert rec["step_U"] == pytest.approx(sum(sq("U", i) for i in range(L)), rel=1e-10)
    assert rec["step_W"] == pytest.approx(w_and_b, rel=1e-10)
    assert rec["step_comp"] == pytest.approx(float(np.sum((st.Wt[1].dense - wt_before) ** 2)), rel=1e-10)
    # the prox blocks: V_L, U_i (i < L), every W_i (with its bias)
    prox = sq("V", L - 1) + sum(sq("U", i) for i in range(L - 1)) + w_and_b
    assert rec["prox_step_sq"] == pytest.approx(prox, rel=1e-10)
    assert set(rec) == {f"{p}_{k}" for p in ("time", "step") for k in blocks.REPORTED_KINDS} | {"prox_step_sq"}


def test_convergence_checks(digits):
    from nnbcd.convergence import rate, sufficient_decrease

    X, y = digits
    r = nnbcd.solve(X, y, hidden_layer_sizes=(16,), max_iter=12, alpha=0.7, random_state=0)
    check = sufficient_decrease(r, alpha=0.7)
    assert check.ok and check.n_checked == 11
    # hand history: the second step rises by 0.5, the first falls by 1 with a prox step of 1
    bad = sufficient_decrease({"objective": np.array([3.0, 2.0, 2.5]), "prox_step_sq": np.array([np.nan, 1.0, 0.1])},
                              alpha=1.0, rtol=0.0)
    assert not bad.ok and bad.worst_iteration == 2 and bad.n_checked == 2
    np.testing.assert_allclose(bad.margins, [0.5, -0.55])
    k = np.arange(1, 41)
    fit = rate({"step_sq": 3.0 / k})
    assert fit.bounded and fit.slope == pytest.approx(-1.0) and np.allclose(fit.c_k, 3.0)


# ---- warm_start (scikit-learn's MLPClassifier semantics) ------------------------------------------------
def test_warm_start_continues_from_the_previous_iterate(digits):
    X, y = digits
    m = _model(warm_start=True, max_iter=3, compress={1: nnbcd.TT(4)}, tau=1.0, bias=True).fit(X, y)
    W, b, Wt = [w.copy() for w in m.state_.W], [v.copy() for v in m.state_.b], m.state_.Wt[1]
    m.set_params(max_iter=0)  # the warm start's initial state itself
    m.fit(X, y)
    assert all(np.array_equal(p, q) for p, q in zip(W, m.state_.W))
    assert all(np.array_equal(p, q) for p, q in zip(b, m.state_.b))
    assert np.array_equal(Wt.dense, m.state_.Wt[1].dense)  # the TT copy kept, cores too
    assert all(np.array_equal(p, q) for p, q in zip(Wt.factors, m.state_.Wt[1].factors))
    # U, V re-initialised by the forward pass of those weights (numpy oracle), every coupling term 0
    v = X.T
    for i, (w, bias) in enumerate(zip(W, b)):
        u = w @ v + bias[:, None]
        np.testing.assert_allclose(m.state_.U[i], u, rtol=1e-12, atol=1e-12)
        v = np.maximum(u, 0) if i < len(W) - 1 else u
        np.testing.assert_allclose(m.state_.V[i], v, rtol=1e-12, atol=1e-12)
    m.set_params(max_iter=2)  # a new run from there: n_iter_ and the history count this fit's sweeps
    m.fit(X, y)
    assert m.n_iter_ == 2 and m.result_.history.n_iter == 2


def test_warm_start_false_or_unfitted_starts_afresh(digits):
    X, y = digits
    fresh = _model(max_iter=2).fit(X, y)
    m = _model(max_iter=2, warm_start=True).fit(X, y)  # not fitted before: the init scheme
    assert all(np.array_equal(p, q) for p, q in zip(fresh.coefs_, m.coefs_))
    m.set_params(warm_start=False).fit(X, y)
    assert all(np.array_equal(p, q) for p, q in zip(fresh.coefs_, m.coefs_))
    m.set_params(warm_start=True).fit(X, y)  # from the 2-sweep iterate: no longer the fresh run's weights
    assert not all(np.array_equal(p, q) for p, q in zip(fresh.coefs_, m.coefs_))


def test_warm_start_with_a_changed_compression_reinitialises_that_copy(digits):
    X, y = digits
    m = _model(warm_start=True, max_iter=2, compress={1: nnbcd.TT(4)}, tau=1.0).fit(X, y)
    W1 = m.state_.W[1].copy()
    m.set_params(compress={1: nnbcd.TT(2)}, max_iter=0).fit(X, y)
    assert m.state_.Wt[1].info["ranks"] == [1] + [2] * (len(m.state_.Wt[1].info["ranks"]) - 2) + [1]
    np.testing.assert_array_equal(m.state_.W[1], W1)


@pytest.mark.parametrize("change,match", [
    (dict(hidden_layer_sizes=(32, 8)), "layer shapes changed"),
    (dict(bias=True), "bias"),
])
def test_warm_start_refuses_other_widths(digits, change, match):
    X, y = digits
    m = _model(warm_start=True, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=f"warm_start.*{match}"):
        m.set_params(**change).fit(X, y)


def test_warm_start_refuses_other_classes(digits):
    X, y = digits
    m = _model(warm_start=True, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="warm_start.*classes"):
        m.fit(X, (y + 1) % 10 + 10)


# ---- n_jobs: the BLAS thread policy in force during fit ----------------------------------------------------
@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
def test_n_jobs_limits_blas_threads_inside_fit(digits, n_jobs):
    from threadpoolctl import threadpool_info

    from nnbcd.backend.threads import blas_threads, usable_cores

    def blas():
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    X, y = digits
    before, seen = blas(), []
    _model(max_iter=2, n_jobs=n_jobs).fit(X, y, callback=lambda r: seen.append(blas()))
    # the digits MLP's largest product: 32 x 64 weight times 64 x 400 inputs
    want = {None: blas_threads(2 * 32 * 64 * 400), 1: 1, 2: 2, -1: usable_cores()}[n_jobs]
    assert seen == [{want}, {want}]
    assert blas() == before  # scoped to the fit


# ---- float32 limits (issue 12) ---------------------------------------------------------------------------
def test_float32_tiny_alpha_cholesky_breakdown_is_status_3(digits):
    X, y = digits
    # α = 1e-12 is below float32's resolution of the 256-wide Gram matrices: the factorisation breaks down
    m = NNBCD((256, 256), alpha=1e-12, dtype="float32", max_iter=5, random_state=0).fit(X[:300], y[:300])
    r = m.result_
    assert r.status == Status.NOT_POSITIVE_DEFINITE and "positive definiteness" in r.message and not r.success
    assert "non-finite" not in r.message
    ref = NNBCD((256, 256), alpha=1e-12, dtype="float32", max_iter=r.nit - 1, random_state=0).fit(X[:300], y[:300])
    for a, b in zip(r.x["W"], ref.result_.x["W"]):  # the last complete iterate, finite
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)


def test_initial_weights_that_overflow_the_dtype_are_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="init_scale.*overflow float32"):
        NNBCD((8,), init_scale=1e40, dtype="float32", max_iter=2).fit(X, y)
    m = NNBCD((8,), init_scale=1e40, dtype="float64", max_iter=2, random_state=0).fit(X, y)  # fine in float64
    assert all(np.isfinite(w).all() for w in m.result_.x["W"])


def test_tau_without_a_projection_block_warns(digits, caplog):
    """τ given but no layer coupled to a compressed copy (no compress, or only exact blocks): a warning, since τ
    then changes nothing; τ = 0 (the default) is silent."""
    from nnbcd import TT

    X, y = digits[0][:200], digits[1][:200]
    for params, warned in [(dict(tau=2.0), True), (dict(tau={"type": "geometric", "start": 1.0, "factor": 2.0,
                                                              "ceiling": 4.0}), True),
                           (dict(tau=2.0, compress={0: TT(rank=2, block="cores")}), True), (dict(), False),
                           (dict(tau=2.0, compress={0: TT(rank=2)}), False)]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="nnbcd.bcd.estimator"):
            NNBCD((8,), max_iter=1, **params).fit(X, y)
        assert ("tau has no effect" in caplog.text) == warned, params
