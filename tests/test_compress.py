"""Compression blocks inside NN-BCD: descent with exact projections, the τ coupling, accounting, export."""
import numpy as np
import pytest

import nnbcd
from nnbcd.compress import TT, Prune
from nnbcd.ops import tt


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))[:300]
    return X[idx] / 16.0, y[idx]


def _fit(digits, compress, tau=5.0, it=25, **kw):
    X, y = digits
    base = dict(gamma=0.5, rho=0.5, alpha=1.0, dtype="float64", random_state=0, compress=compress, tau=tau,
                max_iter=it)
    base.update(kw)
    return nnbcd.NNBCD((40, 30), **base).fit(X, y)


@pytest.mark.parametrize("make", [
    lambda: {0: Prune(0.8), 1: Prune(0.7)},
    lambda: {0: Prune(0.8, scope="global"), 1: None},
    lambda: {0: TT(rank=6, shape=(40, 64)), 1: TT(rank=5, shape=(30, 40))},  # m = 2: exact projection
], ids=["prune-layer", "prune-global", "tt-m2"])
def test_exact_projection_blocks_never_increase_phi(digits, make):
    comp = make()
    if comp.get(1, 0) is None:
        comp[1] = comp[0]  # one spec object shared by two layers: one global threshold
    m = _fit(digits, comp, bias=True)
    h = m.result_.history
    assert np.all(np.diff(h["objective"]) <= 1e-10 * np.abs(h["objective"][1:]))
    assert h["comp_0"][-1] > 0 and h["comp_1"][-1] > 0  # the split keeps S ≠ W: τ term is live


def test_global_pruning_counts_over_the_group(digits):
    spec = Prune(0.75, scope="global")
    m = _fit(digits, {0: spec, 1: spec}, it=3)
    n = 64 * 40 + 40 * 30
    kept = sum(np.count_nonzero(m.coefs_[i]) for i in (0, 1))
    assert kept == n - round(0.75 * n)


def test_projected_pruning_is_the_reference_alias(digits):
    m = _fit(digits, {0: Prune(0.8, mode="projected"), 1: Prune(0.8, mode="projected")}, it=5)
    st = m.state_
    for i in (0, 1):
        np.testing.assert_array_equal(st.W[i], st.Wt[i].dense)  # S ≡ W
        assert np.count_nonzero(st.W[i]) == st.W[i].size - round(0.8 * st.W[i].size)
    h = m.result_.history
    assert np.all(h["comp_0"] == 0) and np.all(h["comp_1"] == 0)


def test_flare_true_sparsity_after_one_iteration():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 40))
    y = (X[:, 0] + 0.3 * rng.standard_normal(200) > 0).astype(int)
    spec = {0: Prune(0.9), 1: Prune(0.9)}
    m = nnbcd.NNBCD((300, 100), gamma=100, rho=1, alpha=1, tau=200, compress=spec, random_state=0,
                    max_iter=1).fit(X, y)
    assert m.result_.history["true_sparsity"][0] == pytest.approx(37_800 / 42_200, abs=1e-15)


def test_tt_ratios_recorded_and_export_rebuilds_the_network(digits):
    X, y = digits
    comp = {0: TT(rank=4, layout="matrix"), 1: TT(rank=5, shape=(5, 6, 8, 5))}
    m = _fit(digits, comp, it=3, bias=True)
    h = m.result_.history
    p1 = sum(c.size for c in m.state_.Wt[0].factors)
    p2 = tt.tt_n_params((5, 6, 8, 5), m.result_.compression[1]["ranks"])
    dense = 64 * 40 + 40 * 30 + 30 * 10
    assert h["cr_1"][-1] == pytest.approx((p1 + p2 + 300) / dense, rel=1e-15)
    assert h["cr_2"][-1] == pytest.approx((p1 + p2) / (64 * 40 + 40 * 30), rel=1e-15)
    assert h["cr_honest"][-1] == pytest.approx((p1 + p2 + 300 + 80) / (dense + 80), rel=1e-15)
    out = m.export()
    rows, cols = comp[0]._row_col((40, 64))
    assert [c.shape[1:3] for c in out["layers"][0]] == list(zip(rows, cols))
    w1 = tt.tt_tensor_to_matrix(tt.tt_to_tensor([c.reshape(c.shape[0], -1, c.shape[-1]) for c in out["layers"][0]]),
                                rows, cols)
    w2 = tt.tt_to_tensor(out["layers"][1]).reshape(30, 40)
    h_ = X.T
    for i, (w, b) in enumerate(zip([w1, w2, out["layers"][2]], out["biases"])):
        h_ = w @ h_ + b[:, None]
        h_ = np.maximum(h_, 0) if i < 2 else h_
    np.testing.assert_allclose(h_.T, m.decision_function(X), rtol=1e-9, atol=1e-10)


def test_digits_tt_close_to_dense():
    """TT-matrix compression of both hidden layers at CR_1 ≤ 0.3 stays within 2 points of dense."""
    from nnbcd.data import load_digits

    Xtr, ytr, Xte, yte = load_digits()
    kw = dict(gamma=0.5, rho=0.5, alpha=1.0, backend="numba", dtype="float32", random_state=0, monitor_every=200)
    dense = nnbcd.NNBCD((256, 256), max_iter=60, **kw).fit(Xtr, ytr)
    comp = {0: TT(rank=24, layout="matrix", rank_initial=400), 1: TT(rank=24, layout="matrix", rank_initial=400)}
    tt_model = nnbcd.NNBCD((256, 256), compress=comp, tau=20.0, max_iter=200, **kw).fit(Xtr, ytr)
    assert tt_model.result_.history["cr_1"][-1] <= 0.3
    assert tt_model.score(Xte, yte) >= dense.score(Xte, yte) - 0.02


def test_compress_errors(digits):
    with pytest.raises(ValueError, match="TT shape"):
        _fit(digits, {0: TT(rank=3, shape=(8, 8, 8))})
    with pytest.raises(TypeError, match="Compression"):
        _fit(digits, {0: "tt"})
    with pytest.raises(ValueError, match="tau has keys"):
        _fit(digits, {0: Prune(0.5)}, tau={2: 1.0})


def test_breast_cancer_pruned_keeps_balanced_accuracy():
    """90 % split pruning of W_1, W_2 keeps the balanced accuracy within 3 points of the dense net."""
    from nnbcd.data.embedded import load_breast_cancer

    Xtr, ytr, Xte, yte = load_breast_cancer()
    kw = dict(gamma=1.0, rho=1.0, alpha=1.0, dtype="float64", random_state=0, monitor_every=300, max_iter=300)

    def bacc(m):
        pred = m.predict(Xte)
        return np.mean([np.mean(pred[yte == c] == c) for c in (0, 1)])

    dense = nnbcd.NNBCD((300, 100), **kw).fit(Xtr, ytr)
    pruned = nnbcd.NNBCD((300, 100), compress={0: Prune(0.9), 1: Prune(0.9)}, tau=200.0, **kw)
    pruned.fit(Xtr, ytr)
    assert np.count_nonzero(pruned.coefs_[0]) == 900 and np.count_nonzero(pruned.coefs_[1]) == 3000
    assert bacc(pruned) >= bacc(dense) - 0.03
