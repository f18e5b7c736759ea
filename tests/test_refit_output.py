"""The output-layer refit (``NNBCD(refit_output=True)``, :mod:`nnbcd.bcd.readout`) against independent oracles.

The oracles are numpy only: ``numpy.linalg.lstsq`` on features computed here by hand (ReLU forward passes of
the fitted ``coefs_``/``intercepts_``, a loop convolution for a conv first layer), losses and accuracies of
those hand-computed outputs, and the same fit without the refit (whose hidden layers the refit must leave
bit for bit as they are).
"""
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from nnbcd import NNBCD, InputConv2d, Prune, TT, available_backends
from nnbcd.backend import get_backend
from nnbcd.bcd import loop
from nnbcd.bcd import readout as ro
from nnbcd.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_X, _Y = load_digits(return_X_y=True)
X, Y = _X[:300] / 16.0, _Y[:300]
XV, YV = _X[300:400] / 16.0, _Y[300:400]
CLASSES = np.arange(10)


# ---- oracles -------------------------------------------------------------------------------------------
def _one_hot(y):
    return (np.asarray(y)[None, :] == CLASSES[:, None]).astype(np.float64)


def _conv_loops(x_rows, z, b, conv):
    """A conv first layer by loops: x_rows (N, C·H·W), kernel Z^T (F, C·kh·kw) → features (H'W'F, N), feature
    ``p·F + f`` for patch ``p = a·W' + c`` (the layout of :class:`InputConv2d`'s docstring)."""
    n = x_rows.shape[0]
    c, h, w = conv.in_shape
    kh, kw = conv.kernel
    s = conv.stride
    f = z.shape[0]
    images = x_rows.reshape(n, c, h, w)
    kernel = z.reshape(f, c, kh, kw)
    ho, wo = (h - kh) // s + 1, (w - kw) // s + 1
    out = np.zeros((n, ho, wo, f))
    for a in range(ho):
        for col in range(wo):
            out[:, a, col, :] = np.einsum("nckl,fckl->nf", images[:, :, a * s:a * s + kh, col * s:col * s + kw], kernel)
    if b is not None:
        out += b
    return out.reshape(n, -1).T


def _hidden(coefs, intercepts, x_rows, conv=None):
    """The input of the output layer, H (d × N), by a float64 forward pass of ``coefs[:-1]``."""
    h = np.asarray(x_rows, dtype=np.float64).T
    for i in range(len(coefs) - 1):
        w = np.asarray(coefs[i], dtype=np.float64)
        b = None if intercepts[i] is None else np.asarray(intercepts[i], dtype=np.float64)
        if i == 0 and conv is not None:
            pre = _conv_loops(h.T, w, b, conv)
        else:
            pre = w @ h + (0.0 if b is None else b[:, None])
        h = np.maximum(pre, 0.0)
    return h


def _outputs(coefs, intercepts, x_rows, conv=None):
    H = _hidden(coefs, intercepts, x_rows, conv)
    b = intercepts[-1]
    return np.asarray(coefs[-1], dtype=np.float64) @ H + (0.0 if b is None else np.asarray(b, np.float64)[:, None])


def _loss(coefs, intercepts, x_rows, y, kappa, conv=None):
    """κ · ½‖f(X) − Y‖² of a network, from the hand forward pass."""
    return kappa * 0.5 * float(np.sum((_outputs(coefs, intercepts, x_rows, conv) - _one_hot(y)) ** 2))


def _lstsq(H, Yk, bias):
    """numpy.linalg.lstsq's minimum-norm solution of min ½‖[W b][H; 1] − Y‖² as (W, b)."""
    A = np.vstack([H, np.ones((1, H.shape[1]))]) if bias else H
    coef = np.linalg.lstsq(A.T, Yk.T, rcond=None)[0].T
    return (coef[:, :-1], coef[:, -1]) if bias else (coef, None)


def _fit(refit, X_=X, y_=Y, val=True, **kw):
    params = {"hidden_layer_sizes": (32, 32), "max_iter": 3, "random_state": 0, "backend": "numpy", **kw}
    extra = {"X_val": XV, "y_val": YV} if val else {}
    return NNBCD(refit_output=refit, **params).fit(X_, y_, **extra)


def _assert_hidden_unchanged(a, b):
    """``a`` (refit) and ``b`` (the same fit without) hold the same hidden layers, history and iterate, bit for
    bit; only the output layer may differ."""
    assert a.n_iter_ == b.n_iter_ and a.result_.status == b.result_.status
    for wa, wb in zip(a.coefs_[:-1], b.coefs_[:-1]):
        assert wa.dtype == wb.dtype and np.array_equal(wa, wb)
    for ba, bb in zip(a.intercepts_[:-1], b.intercepts_[:-1]):
        assert (ba is None and bb is None) or np.array_equal(ba, bb)
    for name in ("U", "V"):
        for x, y in zip(getattr(a.state_, name), getattr(b.state_, name)):
            assert np.array_equal(x, y), name
    ha, hb = a.result_.history, b.result_.history
    for key in ha:
        if not key.startswith("time"):
            assert np.array_equal(ha[key], hb[key], equal_nan=True), key


def _check_refit(model, plain, *, bias, kappa=1.0, conv=None, rtol=1e-8, loss_rtol=1e-9, exact_coef=True):
    """The refit model's output layer is lstsq on the hand-computed H; its record's losses and validation
    metrics are those of hand forward passes of the refit model and of ``plain`` (the fit without refit).

    ``exact_coef=False``: H̄ is numerically rank deficient with a null space that mixes features of different
    norms, where the refit's solution is not lstsq's minimum-norm one (see
    ``test_rank_deficient_features_minimum_norm``): only the fitted values and the loss are compared."""
    rec = model.result_.output_refit
    assert rec["refit"] is True and "reason" not in rec
    assert plain.result_.output_refit is None
    _assert_hidden_unchanged(model, plain)
    H = _hidden(model.coefs_, model.intercepts_, X, conv)
    w, b = _lstsq(H, _one_hot(Y), bias)
    assert model.coefs_[-1].dtype == plain.coefs_[-1].dtype
    if bias:
        assert model.intercepts_[-1].dtype == plain.intercepts_[-1].dtype
    else:
        assert model.intercepts_[-1] is None
    fitted = w @ H + (0.0 if b is None else b[:, None])
    got = _outputs(model.coefs_, model.intercepts_, X, conv)
    assert np.abs(got - fitted).max() <= 10 * rtol * np.abs(fitted).max()
    if exact_coef:
        scale = max(np.abs(w).max(), 1.0 if b is None else np.abs(b).max())
        assert np.abs(model.coefs_[-1] - w).max() <= rtol * scale
        if bias:
            assert np.abs(model.intercepts_[-1] - b).max() <= rtol * scale
    # losses: before = the plain fit's network, after = the refit one (κ as the history's loss)
    before = _loss(plain.coefs_, plain.intercepts_, X, Y, kappa, conv)
    after = _loss(model.coefs_, model.intercepts_, X, Y, kappa, conv)
    optimum = _loss(model.coefs_[:-1] + [w], model.intercepts_[:-1] + [b], X, Y, kappa, conv)
    assert rec["loss_before"] == pytest.approx(before, rel=loss_rtol)
    assert rec["loss"] == pytest.approx(after, rel=loss_rtol)
    assert rec["loss"] == pytest.approx(optimum, rel=max(loss_rtol, 1e-9))
    assert rec["loss"] <= rec["loss_before"]
    # validation metrics: the refit model's and the plain one's, scored independently
    kv = 1.0 if kappa == 1.0 else 1.0 / len(YV)
    assert rec["val_acc"] == model.score(XV, YV)
    assert rec["val_acc_before"] == plain.score(XV, YV)
    assert rec["val_loss"] == pytest.approx(_loss(model.coefs_, model.intercepts_, XV, YV, kv, conv), rel=loss_rtol)
    assert rec["val_loss_before"] == pytest.approx(_loss(plain.coefs_, plain.intercepts_, XV, YV, kv, conv),
                                                   rel=loss_rtol)
    # the fitted attributes, result_.x and predict agree with each other
    assert np.array_equal(model.result_.x["W_deployed"][-1], model.coefs_[-1])
    np.testing.assert_array_equal(model.predict(XV), CLASSES[_outputs(model.coefs_, model.intercepts_, XV,
                                                                      conv).argmax(axis=0)])


# ---- 1. the math module ------------------------------------------------------------------------------------
def _random(d=6, n=50, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, n)), rng.standard_normal((k, n))


def _bar(H, bias):
    return np.vstack([H, np.ones((1, H.shape[1]))]) if bias else H


def _gram_of(factor):
    return factor.R.T @ factor.R


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_factor_is_an_r_factor_of_the_samples(backend, bias):
    """RᵀR is the Gram of [H̄ᵀ Yᵀ] (an R factor is unique up to row signs) and R is upper triangular."""
    H, Yk = _random()
    f = ro.readout_factor(backend.asarray(H), backend.asarray(Yk), bias, backend)
    M = np.vstack([_bar(H, bias), Yk])
    np.testing.assert_allclose(_gram_of(f), M @ M.T, rtol=1e-12, atol=1e-11)
    assert np.array_equal(f.R, np.triu(f.R)) and f.R.dtype == np.float64
    assert (f.width, f.n, f.finite) == (H.shape[0] + bias, H.shape[1], True)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", ["random", "zero-row", "duplicate-rows", "small-rows", "wide", "float32"])
def test_solve_readout_is_lstsq(bias, case):
    H, Yk = _random(d=6, n=50)
    if case == "zero-row":  # a dead ReLU unit: weight 0 in the minimum-norm solution
        H = np.vstack([H[:2], np.zeros((1, 50)), H[2:]])
    elif case == "duplicate-rows":  # two identical units share the weight
        H = np.vstack([H, H[1:3], H[1:2]])
    elif case == "small-rows":  # activations of size 1e-3 next to the bias row of ones
        H = H * 1e-3
        H[0] *= 1e-2
    elif case == "wide":  # more features than samples: H̄ has a null space, the minimum-norm solution
        H, Yk = _random(d=40, n=25)
    elif case == "float32":  # float32 features are summed in float64
        H, Yk = H.astype(np.float32), Yk.astype(np.float32)
    be = get_backend("numpy")
    factor = ro.readout_factor(H, Yk, bias, be)
    coef = ro.solve_readout(factor)
    A = _bar(H.astype(np.float64), bias)
    ref = np.linalg.lstsq(A.T, Yk.astype(np.float64).T, rcond=None)[0].T
    assert coef.dtype == np.float64 and coef.shape == ref.shape
    assert np.abs(coef - ref).max() <= 1e-11 * np.abs(ref).max()
    if case == "zero-row":
        assert np.all(coef[:, 2] == 0.0)
    # split / join round trip with the layer's own shapes
    w, b = ro.split(coef, bias)
    assert w.shape == (Yk.shape[0], H.shape[0]) and (b is None) == (not bias)
    np.testing.assert_array_equal(ro.join(w, b, be), coef)


def _rank_deficient(case):
    """H̄ rank deficient with a null space that mixes features of different norms."""
    if case == "scaled-duplicate":  # a unit that is 2× another
        H, Yk = _random()
        return np.vstack([H, 2.0 * H[:1]]), Yk
    return _random(d=40, n=25)  # "wide": more features than samples


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", ["scaled-duplicate", "wide"])
def test_rank_deficient_features_fit_lstsqs_values(case, bias):
    """Any least-squares solution gives lstsq's fitted values and loss (the wide one interpolates)."""
    H, Yk = _rank_deficient(case)
    factor = ro.readout_factor(H, Yk, bias, get_backend("numpy"))
    coef = ro.solve_readout(factor)
    A = _bar(H, bias)
    ref = np.linalg.lstsq(A.T, Yk.T, rcond=None)[0].T
    np.testing.assert_allclose(coef @ A, ref @ A, rtol=0, atol=1e-10 * np.abs(ref @ A).max())
    want = 0.5 * np.sum((ref @ A - Yk) ** 2)
    assert abs(ro.readout_loss(factor, coef) - want) <= 1e-12 * max(want, float(np.sum(Yk ** 2)))


@pytest.mark.parametrize("case", ["scaled-duplicate", "wide"])
def test_rank_deficient_features_minimum_norm(case):
    """The pseudo-inverse of R₁₁ (SVD, lstsq's cut-off): lstsq's minimum-norm solution."""
    H, Yk = _rank_deficient(case)
    coef = ro.solve_readout(ro.readout_factor(H, Yk, False, get_backend("numpy")))
    ref = np.linalg.lstsq(H.T, Yk.T, rcond=None)[0].T
    np.testing.assert_allclose(coef, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_readout_loss_is_the_direct_loss(bias):
    H, Yk = _random()
    factor = ro.readout_factor(H, Yk, bias, get_backend("numpy"))
    A = _bar(H, bias)
    for coef in (np.random.default_rng(1).standard_normal((3, A.shape[0])), np.zeros((3, A.shape[0])),
                 ro.solve_readout(factor)):
        assert ro.readout_loss(factor, coef) == pytest.approx(0.5 * np.sum((coef @ A - Yk) ** 2), rel=1e-12)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_factors_of_a_split_and_of_blocks_combine_to_the_whole(bias, monkeypatch):
    H, Yk = _random(n=53)
    be = get_backend("numpy")
    parts = [ro.readout_factor(H[:, a:b], Yk[:, a:b], bias, be) for a, b in ((0, 20), (20, 21), (21, 53))]
    total = ro.combine_readout(ro.combine_readout(parts[0], parts[1]), parts[2])
    A = _bar(H, bias)
    M = np.vstack([A, Yk])
    ref = np.linalg.lstsq(A.T, Yk.T, rcond=None)[0].T
    assert total.n == 53 and parts[1].R.shape[0] == 1  # one sample: a one-row factor
    monkeypatch.setattr(ro, "BLOCK", 7)  # 8 blocks, the last one of 4 samples
    blocked = ro.readout_factor(H, Yk, bias, be)
    for got in (total, blocked):
        np.testing.assert_allclose(_gram_of(got), M @ M.T, rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(ro.solve_readout(got), ref, rtol=1e-10, atol=1e-12)


def test_features_is_the_hidden_forward_pass():
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal((5, 4)), rng.standard_normal((3, 5)), rng.standard_normal((2, 3))]
    bs = [rng.standard_normal(5), None, rng.standard_normal(2)]
    x = rng.standard_normal((4, 9))
    be = get_backend("numpy")
    np.testing.assert_allclose(ro.features(ws, bs, x, be), np.maximum(ws[1] @ np.maximum(ws[0] @ x + bs[0][:, None],
                                                                                          0), 0), rtol=1e-13)
    assert ro.features(ws[:1], bs[:1], x, be) is x  # a one-layer network: x itself


# ---- 2. end to end ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss_scale", ["sum", "mean"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_refit_is_lstsq_on_the_deployed_features(bias, loss_scale):
    kw = dict(bias=bias, loss_scale=loss_scale, max_iter=4)
    model, plain = _fit(True, **kw), _fit(False, **kw)
    _check_refit(model, plain, bias=bias, kappa=1.0 if loss_scale == "sum" else 1.0 / len(Y))
    assert model.result_.output_refit["loss"] < model.result_.output_refit["loss_before"]


def test_refit_in_blocks_of_samples(monkeypatch):
    monkeypatch.setattr(ro, "BLOCK", 64)  # 300 samples: 5 blocks
    model, plain = _fit(True, bias=True), _fit(False, bias=True)
    _check_refit(model, plain, bias=True)


def test_float32():
    model, plain = _fit(True, bias=True, dtype="float32"), _fit(False, bias=True, dtype="float32")
    assert model.coefs_[-1].dtype == np.float32 and model.intercepts_[-1].dtype == np.float32
    # the code's H is float32; the oracle's float64 from the same float32 weights
    _check_refit(model, plain, bias=True, rtol=2e-3, loss_rtol=2e-5)


@pytest.mark.skipif("numba" not in available_backends(), reason="numba is not installed")
def test_numba_backend():
    model, plain = _fit(True, bias=True, backend="numba"), _fit(False, bias=True, backend="numba")
    _check_refit(model, plain, bias=True)
    # and the same network as the numpy backend's refit, up to rounding
    ref = _fit(True, bias=True)
    for a, b in zip(model.coefs_, ref.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_conv_first_layer(bias):
    conv = InputConv2d((1, 8, 8), 4, 3, 1)  # 6·6·4 = 144 features
    kw = dict(hidden_layer_sizes=(16,), conv=conv, bias=bias, max_iter=3)
    model, plain = _fit(True, **kw), _fit(False, **kw)
    assert model.coefs_[0].shape == (4, 9)
    _check_refit(model, plain, bias=bias, conv=conv)


@pytest.mark.parametrize("spec", [lambda: {0: Prune(0.5)}, lambda: {1: TT(rank=3, block="cores")},
                                  lambda: {0: Prune(0.6, block="masked"), 1: TT(rank=4)}],
                         ids=["prune-0", "tt-cores-1", "masked-0-tt-1"])
def test_compressed_hidden_layers_are_untouched(spec):
    kw = dict(bias=True, compress=spec())
    if any(getattr(c, "block", None) == "projection" for c in kw["compress"].values()):
        kw["tau"] = 1.0
    model, plain = _fit(True, **kw), _fit(False, **kw)
    # TT rank 3 on layer 1: units active on every sample are combinations of 3 directions and the bias (H̄ of
    # numerical rank 26 of 33)
    _check_refit(model, plain, bias=True, exact_coef=1 not in kw["compress"])
    for i, c in plain.state_.Wt.items():  # the compressed copies and their exports are the plain fit's
        d = model.state_.Wt[i]
        assert np.array_equal(c.dense, d.dense) and c.info == d.info and c.n_params == d.n_params
    assert model.state_.Wt.keys() == plain.state_.Wt.keys() and 2 not in model.state_.Wt
    exported, ref = model.export(), plain.export()
    for i in range(2):
        got, want = exported["layers"][i], ref["layers"][i]
        if hasattr(got, "toarray"):
            got, want = got.toarray(), want.toarray()
        if isinstance(got, (list, tuple)):
            assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
        else:
            assert np.array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_array_equal(exported["layers"][2], model.coefs_[2])
    np.testing.assert_array_equal(exported["biases"][2], model.intercepts_[2])


def test_one_layer_network_refits_on_the_inputs():
    """No hidden layer: the output layer is lstsq on X itself (constant-zero pixels get weight 0)."""
    model = _fit(True, hidden_layer_sizes=(), bias=True, max_iter=2)
    w, b = _lstsq(X.T, _one_hot(Y), True)
    np.testing.assert_allclose(model.coefs_[0], w, rtol=0, atol=1e-8 * np.abs(w).max())
    np.testing.assert_allclose(model.intercepts_[0], b, rtol=0, atol=1e-8 * np.abs(w).max())
    dead = np.all(X == 0, axis=0)
    assert dead.any() and np.all(model.coefs_[0][:, dead] == 0.0)


def test_without_validation_data():
    model, plain = _fit(True, val=False), _fit(False, val=False)
    rec = model.result_.output_refit
    assert set(rec) == {"refit", "loss_before", "loss"} and rec["refit"] is True
    assert rec["loss"] == pytest.approx(_loss(model.coefs_, model.intercepts_, X, Y, 1.0), rel=1e-9)
    assert rec["loss_before"] == pytest.approx(_loss(plain.coefs_, plain.intercepts_, X, Y, 1.0), rel=1e-9)


# ---- 3. edge cases: no sweep, nothing to gain, interrupted, failed ---------------------------------------
def test_max_iter_zero_refits_the_initial_network():
    model, plain = _fit(True, max_iter=0, bias=True), _fit(False, max_iter=0, bias=True)
    assert model.n_iter_ == 0 and model.result_.history.n_iter == 0
    _check_refit(model, plain, bias=True)


def test_a_second_refit_does_not_refit(monkeypatch):
    """Called again on the same state, the refit finds the output layer already the least-squares one."""
    original, seen = loop.refit_output_layer, []

    def twice(st, engine, kappa):
        first = original(st, engine, kappa)
        w = st.W[-1].copy()
        second = original(st, engine, kappa)
        assert np.array_equal(st.W[-1], w)
        seen.append((first, second))
        return first

    monkeypatch.setattr(loop, "refit_output_layer", twice)
    model = _fit(True, bias=True)
    (first, second), = seen
    assert first["refit"] is True and second["refit"] is False
    assert "no decrease" in second["reason"]
    assert second["loss_before"] == second["loss"] == first["loss"]
    assert "val_loss_before" not in second and second["val_acc"] == first["val_acc"] == model.score(XV, YV)


def test_an_interrupted_reduction_keeps_the_output_layer(monkeypatch):
    def interrupted(self, st):
        raise KeyboardInterrupt

    plain = _fit(False, bias=True)
    monkeypatch.setattr(loop.Engine, "readout_factor", interrupted)
    model = _fit(True, bias=True)
    rec = model.result_.output_refit
    assert rec["refit"] is False and "KeyboardInterrupt" in rec["reason"]
    assert np.isnan(rec["loss_before"]) and np.isnan(rec["loss"]) and "val_acc" not in rec
    assert model.result_.status == 4 and rec["interrupted"] is True  # the Ctrl-C is the run's status
    for a, b in zip(model.coefs_ + model.intercepts_, plain.coefs_ + plain.intercepts_):
        assert np.array_equal(a, b)


def test_unreadable_data_keeps_the_output_layer(monkeypatch):
    def lost(self, st):
        raise loop.SweepFailed(loop.Status.NON_FINITE, "shard 1 was lost")

    plain = _fit(False, bias=True)
    monkeypatch.setattr(loop.Engine, "readout_factor", lost)
    model = _fit(True, bias=True)
    rec = model.result_.output_refit
    assert rec["refit"] is False and "shard 1 was lost" in rec["reason"]
    for a, b in zip(model.coefs_ + model.intercepts_, plain.coefs_ + plain.intercepts_):
        assert np.array_equal(a, b)


def test_a_non_finite_solution_keeps_the_output_layer(monkeypatch):
    plain = _fit(False, bias=True)
    monkeypatch.setattr(loop, "solve_readout", lambda f: np.full((f.R.shape[1] - f.width, f.width), np.nan))
    model = _fit(True, bias=True)
    rec = model.result_.output_refit
    assert rec["refit"] is False and "overflows" in rec["reason"]
    assert rec["loss"] == rec["loss_before"] == pytest.approx(_loss(plain.coefs_, plain.intercepts_, X, Y, 1.0),
                                                              rel=1e-9)
    for a, b in zip(model.coefs_ + model.intercepts_, plain.coefs_ + plain.intercepts_):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("where", ["solve", "validation"])
def test_a_ctrl_c_anywhere_in_the_refit_keeps_the_fit(monkeypatch, where):
    """A KeyboardInterrupt in the solve keeps the sweeps' output layer; in the last validation pass, the refit
    layer (only the validation scores are left out). Either way fit returns (an hour of sweeps is not lost)."""
    plain = _fit(False, bias=True)
    exact = _fit(True, bias=True)
    if where == "solve":
        def interrupted(factor):
            raise KeyboardInterrupt
        monkeypatch.setattr(loop, "solve_readout", interrupted)
    else:
        calls = []
        real = loop._validation_metrics

        def interrupted(*args):  # the second call scores the refit network
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(*args)
        monkeypatch.setattr(loop, "_validation_metrics", interrupted)
    model = _fit(True, bias=True)
    rec = model.result_.output_refit
    want = plain if where == "solve" else exact
    for a, b in zip(model.coefs_ + model.intercepts_, want.coefs_ + want.intercepts_):
        assert np.array_equal(a, b)
    if where == "solve":
        assert rec["refit"] is False and "KeyboardInterrupt" in rec["reason"] and model.result_.status == 4
    else:
        assert rec["refit"] is True and "val_acc" not in rec and "val_acc_before" in rec


def test_nearly_collinear_features_are_resolved_as_lstsq_resolves_them():
    """An orthogonal factorisation, not the normal equations: a unit equal to another plus 1e-9 noise keeps
    its direction (the Gram's cut-off would drop it), so the loss is lstsq's."""
    H, Yk = _random(d=6, n=200)
    H = np.vstack([H, H[:1] + 1e-9 * np.random.default_rng(5).standard_normal((1, 200))])
    f = ro.readout_factor(H, Yk, True, get_backend("numpy"))
    A = _bar(H, True)
    ref = np.linalg.lstsq(A.T, Yk.T, rcond=None)[0].T
    assert ro.readout_loss(f, ro.solve_readout(f)) == pytest.approx(0.5 * np.sum((ref @ A - Yk) ** 2), rel=1e-9)


def test_float32_features_are_cut_off_at_float32_precision():
    """A float32 run's features carry ~7 digits: a unit equal to another up to 1e-6 (a few float32 ulps) is
    the same unit, as lstsq with float32's rcond says; with float64's it would be fitted, to weights ~1e5
    that amplify the rounding of every other feature."""
    H, Yk = _random(d=6, n=200)
    H = np.vstack([H, H[:1] + 1e-6 * np.random.default_rng(6).standard_normal((1, 200))]).astype(np.float32)
    f = ro.readout_factor(H, Yk, True, get_backend("numpy"))
    A = _bar(H.astype(np.float64), True)
    ref32 = np.linalg.lstsq(A.T, Yk.T, rcond=np.finfo(np.float32).eps * max(A.shape))[0].T
    ref64 = np.linalg.lstsq(A.T, Yk.T, rcond=None)[0].T
    assert np.abs(ref64).max() > 1e3 * np.abs(ref32).max()  # the two cut-offs differ on this H
    np.testing.assert_allclose(ro.solve_readout(f), ref32, rtol=1e-8, atol=1e-10)


def test_a_float32_run_does_not_fit_its_rounding():
    """A float32 TT network whose last hidden features are nearly rank deficient: with float64's cut-off the
    refit fitted directions below float32's rounding (output weights ~4e6, validation loss ~3e8); with the
    features' own epsilon it stays a sane layer that lowers the training loss."""
    model = NNBCD((32, 32), max_iter=3, random_state=0, backend="numpy", bias=True, dtype="float32",
                  compress={1: TT(rank=3, block="cores")}, refit_output=True).fit(
        X.astype(np.float32), Y, X_val=XV.astype(np.float32), y_val=YV)
    rec = model.result_.output_refit
    assert rec["refit"] is True and rec["loss"] < rec["loss_before"]
    assert np.abs(model.coefs_[-1]).max() < 1e4 and rec["val_loss"] < 2 * rec["val_loss_before"]


def test_as_many_inputs_as_samples_warns():
    with pytest.warns(UserWarning, match="refit_output: the least-squares output layer fits the 30 training samples "
                                         "exactly \\(it has 33 inputs\\)"):
        model = _fit(True, X_=X[:30], y_=Y[:30], bias=True, val=False)
    assert model.result_.output_refit["refit"] is True


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverged_run_keeps_the_output_layer():
    """Weights of 1e200 (finite; the run ends with status 2): the features overflow (not
    finite), and the refit must be declined rather than crash the fit."""
    kw = dict(hidden_layer_sizes=(8, 8), max_iter=3, init_scale=1e200, val=False)
    plain = _fit(False, X_=X[:60], y_=Y[:60], **kw)
    assert plain.result_.status == 2
    model = _fit(True, X_=X[:60], y_=Y[:60], **kw)
    rec = model.result_.output_refit
    assert rec["refit"] is False and "not finite" in rec["reason"]
    for a, b in zip(model.coefs_, plain.coefs_):
        assert np.array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverged_runs_record_is_json(tmp_path):
    model = _fit(True, X_=X[:60], y_=Y[:60], hidden_layer_sizes=(8, 8), max_iter=3, init_scale=1e200)
    model.result_.to_json(str(tmp_path / "r.json"))

    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)


# ---- 4. resume -------------------------------------------------------------------------------------------------
def test_resume_with_refit_equals_the_uninterrupted_refit_run(tmp_path):
    kw = dict(bias=True, max_iter=4)
    whole = _fit(True, **kw)
    _fit(False, bias=True, max_iter=2, checkpoint_every=1, checkpoint_dir=tmp_path)
    resumed = NNBCD((32, 32), random_state=0, backend="numpy", refit_output=True, **kw).fit(
        X, Y, X_val=XV, y_val=YV, resume=tmp_path)
    assert resumed.n_iter_ == 4
    for a, b in zip(whole.coefs_ + whole.intercepts_, resumed.coefs_ + resumed.intercepts_):
        assert np.array_equal(a, b)
    assert resumed.result_.output_refit == whole.result_.output_refit


def test_a_checkpoint_holds_the_iterate_before_the_refit(tmp_path):
    kw = dict(bias=True, max_iter=3)
    refit = _fit(True, checkpoint_every=1, checkpoint_dir=tmp_path, **kw)
    plain = _fit(False, **kw)
    assert refit.result_.output_refit["refit"] is True
    with pytest.warns(UserWarning, match="max_iter=3 but the resumed iterate has 3 sweeps"):
        again = NNBCD((32, 32), random_state=0, backend="numpy", **kw).fit(X, Y, X_val=XV, y_val=YV, resume=tmp_path)
    assert again.result_.output_refit is None
    for a, b in zip(again.coefs_ + again.intercepts_, plain.coefs_ + plain.intercepts_):
        assert np.array_equal(a, b)
    with pytest.warns(UserWarning, match="resumed iterate has 3 sweeps"):
        twice = NNBCD((32, 32), random_state=0, backend="numpy", refit_output=True, **kw).fit(
            X, Y, X_val=XV, y_val=YV, resume=tmp_path)
    for a, b in zip(twice.coefs_ + twice.intercepts_, refit.coefs_ + refit.intercepts_):
        assert np.array_equal(a, b)


# ---- 6. results and the command line ----------------------------------------------------------------------
def test_to_json_writes_output_refit(tmp_path):
    model = _fit(True, bias=True)
    model.result_.to_json(str(tmp_path / "r.json"))
    saved = json.loads((tmp_path / "r.json").read_text())["output_refit"]
    assert saved["refit"] is True and set(saved) == set(model.result_.output_refit)
    assert saved["loss"] == pytest.approx(_loss(model.coefs_, model.intercepts_, X, Y, 1.0), rel=1e-9)
    assert saved["val_acc"] == model.score(XV, YV)
    _fit(False).result_.to_json(str(tmp_path / "plain.json"))
    assert "output_refit" not in json.loads((tmp_path / "plain.json").read_text())


def _summary(out):
    return json.loads(out.split("results written")[0])


DIGITS = str(Path(__file__).resolve().parents[1] / "solvers" / "digits.toml")
CLI_SET = ["--set", "model.hidden_layer_sizes=[16]", "--set", "model.backend='numpy'", "--set", "fit.max_iter=2"]


def test_cli_summary_and_result(tmp_path, capsys):
    from nnbcd import data as nd

    argv = ["solve", DIGITS, "--out", str(tmp_path / "run"), "--quiet", *CLI_SET,
            "--set", "model.refit_output=true"]
    assert main(argv) == 0
    summary = _summary(capsys.readouterr().out)
    saved = json.loads((tmp_path / "run" / "result.json").read_text())["output_refit"]
    rec = summary["output_refit"]
    assert rec["refit"] is True and saved["refit"] is True and set(rec) == set(saved)
    assert saved["loss"] <= saved["loss_before"]
    # test_acc is the refit network's: the record's val_acc, as the summary rounds it
    assert summary["test_acc"] == round(saved["val_acc"], 4) == rec["val_acc"]
    assert all(rec[k] == round(v, 4) for k, v in saved.items() if isinstance(v, float))
    # val_acc is an accuracy on the preset's test split: a multiple of 1/N_test
    n_test = len(nd.load_digits(test_size=0.25, seed=0)[3])
    assert saved["val_acc"] * n_test == pytest.approx(round(saved["val_acc"] * n_test), abs=1e-9)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_cli_summary_of_a_diverged_run_is_json(tmp_path, capsys):
    """A diverged run's refit record has non-finite losses (NaN: features not finite; Inf: a validation loss
    that overflows): the printed summary and result.json have null there."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    for scale, dtype in (("1e30", "float32"), ("1e20", "float32")):  # features NaN; the validation loss Inf
        out = tmp_path / f"run{scale}"
        argv = ["solve", DIGITS, "--out", str(out), "--quiet", *CLI_SET, "--set", "model.refit_output=true",
                "--set", f"model.init_scale={scale}", "--set", "model.init='normal'", "--set", f"model.dtype='{dtype}'"]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out.split("results written")[0], parse_constant=refuse)
        saved = json.loads((out / "result.json").read_text(), parse_constant=refuse)["output_refit"]
        assert None in summary["output_refit"].values() and None in saved.values()


def test_cli_resume_with_refit_prints_the_warning_as_one_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["solve", DIGITS, "--out", out, "--quiet", *CLI_SET,
                 "--set", "fit.checkpoint_every=1"]) == 0
    first = _summary(capsys.readouterr().out)
    assert "output_refit" not in first
    assert main(["solve", "--resume", out, "--quiet", "--set", "model.refit_output=true"]) == 0
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    warn = [ln for ln in lines if ln.startswith("nnbcd: UserWarning: ")]
    assert len(warn) == 1 and "max_iter=2 but the resumed iterate has 2 sweeps" in warn[0], captured.err
    assert "Traceback" not in captured.err and "warnings.warn" not in captured.err and ".py:" not in captured.err
    summary = _summary(captured.out)
    assert summary["nit"] == 2 and summary["output_refit"]["refit"] is True
    assert summary["test_acc"] == summary["output_refit"]["val_acc"]
    # the refit raised the accuracy the sweeps alone reached, or not: the record says which was which
    assert summary["output_refit"]["val_acc_before"] == first["test_acc"]


# ---- 5. Dask -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


@pytest.mark.parametrize("kw", [dict(bias=True), dict(bias=False, loss_scale="mean", compress={0: Prune(0.5)})],
                         ids=["bias", "nobias-mean-pruned"])
def test_dask_refit_equals_nnbcd(client, kw):
    from nnbcd.dask import DaskNNBCD

    params = dict(hidden_layer_sizes=(32, 32), max_iter=3, random_state=0, refit_output=True, **kw)
    a = NNBCD(**params).fit(X, Y, X_val=XV, y_val=YV)
    b = DaskNNBCD(client=client, n_shards=3, **params).fit(X, Y, X_val=XV, y_val=YV)
    assert b.result_.output_refit["refit"] is True and a.result_.output_refit["refit"] is True
    for wa, wb in zip(a.coefs_, b.coefs_):  # the shards' factors combine in another order
        assert np.abs(wa - wb).max() <= 1e-9 * np.abs(wa).max()
    for ba, bb in zip(a.intercepts_, b.intercepts_):
        assert (ba is None) == (bb is None)
        if ba is not None:
            assert np.abs(ba - bb).max() <= 1e-9 * max(np.abs(ba).max(), 1.0)
    ra, rb = a.result_.output_refit, b.result_.output_refit
    assert set(ra) == set(rb)
    for key in ra:
        assert rb[key] == pytest.approx(ra[key], rel=1e-9), key
    # and the oracle: lstsq on the hand-computed features of the Dask model
    bias = kw["bias"]
    w, bb = _lstsq(_hidden(b.coefs_, b.intercepts_, X), _one_hot(Y), bias)
    assert np.abs(b.coefs_[-1] - w).max() <= 1e-8 * np.abs(w).max()
    kappa = 1.0 if kw.get("loss_scale", "sum") == "sum" else 1.0 / len(Y)
    assert rb["loss"] == pytest.approx(_loss(b.coefs_, b.intercepts_, X, Y, kappa), rel=1e-9)
    assert rb["val_acc"] == b.score(XV, YV)


def test_dask_refuses_a_compressed_output_layer_and_a_non_bool(client):
    from nnbcd.dask import DaskNNBCD

    with pytest.raises(ValueError, match="refit_output"):
        DaskNNBCD((16,), client=client, refit_output=True, compress={1: Prune(0.5)}, max_iter=1).fit(X, Y)
    with pytest.raises(TypeError, match="refit_output"):
        DaskNNBCD((16,), client=client, refit_output="yes", max_iter=1).fit(X, Y)
