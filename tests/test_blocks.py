"""Each closed-form block against numpy.linalg.lstsq / zero gradient of its sub-problem (spec §11.2)."""
import numpy as np
import pytest

from nnbcd.backend import get_backend
from nnbcd.bcd import blocks
from nnbcd.bcd.state import BCDState, Hyper
from nnbcd.compress.base import Compressed, Compression

HP = Hyper(gamma=0.7, rho=1.3, alpha=0.9, alpha_w=1.1, alpha_b=0.6, kappa=1.0)


class _Fixed(Compression):
    """A compression whose copy is a given matrix: isolates the τ-coupling in the W block."""

    def __init__(self, wt):
        self.wt = wt

    def project(self, W, *, backend=None, weights=None):
        return Compressed(dense=self.wt, n_params=self.wt.size)


def _state(rng, widths=(5, 7, 4, 3), n=9, bias=False, tau=None):
    L = len(widths) - 1
    W = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(L)]
    st = BCDState(
        W=W,
        b=[rng.standard_normal(widths[i + 1]) if bias else None for i in range(L)],
        U=[rng.standard_normal((widths[i + 1], n)) for i in range(L)],
        V=[rng.standard_normal((widths[i + 1], n)) for i in range(L)],
        X=rng.standard_normal((widths[0], n)),
        Y=np.eye(widths[-1])[:, rng.integers(0, widths[-1], n)],
    )
    if tau:
        for i, t in tau.items():
            st.compress[i] = _Fixed(rng.standard_normal(W[i].shape))
            st.tau[i] = t
            st.Wt[i] = st.compress[i].project(W[i])
    return st


def _copy(st):
    return BCDState(W=[w.copy() for w in st.W], b=[None if b is None else b.copy() for b in st.b],
                    U=[u.copy() for u in st.U], V=[v.copy() for v in st.V], X=st.X, Y=st.Y,
                    compress=st.compress, tau=st.tau, Wt=st.Wt)


def _run(st, fn, i, v_solve="auto", w_solve="auto"):
    be = get_backend("numpy")
    fn(st, i, HP, be, blocks.Workspace(st, be, v_solve, w_solve), False)
    return st


def test_output_v_zero_gradient(rng):
    st = _state(rng)
    old = st.V[-1].copy()
    _run(st, blocks.update_output_v, 2)
    g = (st.V[-1] - st.Y) + HP.gamma * (st.V[-1] - st.U[-1]) + HP.alpha * (st.V[-1] - old)
    assert np.abs(g).max() < 1e-12


@pytest.mark.parametrize("bias", [False, True])
def test_output_u_zero_gradient(rng, bias):
    st = _state(rng, bias=bias)
    _run(st, blocks.update_output_u, 2)
    lin = st.W[2] @ st.V[1] + (0 if not bias else st.b[2][:, None])
    g = HP.gamma * (st.U[2] - st.V[2]) + HP.rho * (st.U[2] - lin)
    assert np.abs(g).max() < 1e-12


@pytest.mark.parametrize("form", ["direct", "woodbury"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("widths", [(5, 7, 4, 3), (5, 3, 8, 2), (4, 6, 6, 2)])
def test_hidden_v_matches_lstsq(rng, form, bias, widths):
    st = _state(rng, widths=widths, bias=bias)
    i = 0
    r = np.maximum(st.U[i], 0)
    ubar = st.U[i + 1] - (0 if not bias else st.b[i + 1][:, None])
    a = np.vstack([np.sqrt(HP.gamma) * np.eye(st.W[i].shape[0]), np.sqrt(HP.rho) * st.W[i + 1]])
    rhs = np.vstack([np.sqrt(HP.gamma) * r, np.sqrt(HP.rho) * ubar])
    expect = np.linalg.lstsq(a, rhs, rcond=None)[0]
    _run(st, blocks.update_hidden_v, i, v_solve=form)
    np.testing.assert_allclose(st.V[i], expect, rtol=1e-10, atol=1e-12)


def _weight_oracle(st, i, tau, bias):
    """Stacked least squares for the joint (W, b) sub-problem."""
    v = st.v_in(i)
    n = v.shape[1]
    c = HP.alpha_w + tau
    target = (HP.alpha_w * st.W[i] + (tau * st.Wt[i].dense if tau else 0)) / c
    if bias:
        vt = np.vstack([v, np.ones((1, n))])
        dsq = np.sqrt(np.r_[np.full(v.shape[0], c), HP.alpha_b])
        t = np.hstack([target, st.b[i][:, None]])
    else:
        vt, dsq, t = v, np.sqrt(np.full(v.shape[0], c)), target
    a = np.vstack([np.sqrt(HP.rho) * vt.T, np.diag(dsq)])
    rhs = np.vstack([np.sqrt(HP.rho) * st.U[i].T, (t * dsq).T])
    return np.linalg.lstsq(a, rhs, rcond=None)[0].T


@pytest.mark.parametrize("form", ["direct", "woodbury"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("tau", [0.0, 2.5])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_weight_matches_lstsq(rng, form, bias, tau, layer):
    st = _state(rng, widths=(11, 7, 4, 3), n=6, bias=bias, tau={layer: tau} if tau else None)
    expect = _weight_oracle(st, layer, tau, bias)
    _run(st, blocks.update_weight, layer, w_solve=form)
    got = np.hstack([st.W[layer], st.b[layer][:, None]]) if bias else st.W[layer]
    np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-12)


def test_direct_and_woodbury_agree(rng):
    st = _state(rng, widths=(12, 10, 4, 3), n=8, bias=True)
    for fn, i, key in ((blocks.update_hidden_v, 0, "v_solve"), (blocks.update_weight, 0, "w_solve")):
        a, b = _copy(st), _copy(st)
        _run(a, fn, i, **{key: "direct"})
        _run(b, fn, i, **{key: "woodbury"})
        np.testing.assert_allclose(a.V[i] if key == "v_solve" else a.W[i],
                                   b.V[i] if key == "v_solve" else b.W[i], rtol=1e-12, atol=1e-12)


def test_hidden_u_is_elementwise_minimum(rng):
    st = _state(rng, bias=True)
    i = 1
    p = st.W[i] @ st.v_in(i) + st.b[i][:, None]
    uk = st.U[i].copy()
    _run(st, blocks.update_hidden_u, i)

    def f(u):
        return (0.5 * HP.gamma * (st.V[i] - np.maximum(u, 0)) ** 2 + 0.5 * HP.rho * (u - p) ** 2
                + 0.5 * HP.alpha * (u - uk) ** 2)

    grid = np.linspace(-8, 8, 16001)[:, None, None]
    fgrid = f(grid).min(axis=0)
    assert np.all(f(st.U[i]) <= fgrid + 1e-12)


class _Recording(Compression):
    """Records what each projection sees; its copy is a scaled W (a stand-in with a known answer)."""

    def __init__(self):
        self.seen = []

    def project(self, W, *, backend=None, weights=None):
        self.seen.append(None if weights is None else [w.copy() for w in weights])
        return Compressed(dense=0.5 * W, n_params=W.size)


@pytest.mark.parametrize("replaces", [False, True])
def test_compression_block_projects_the_group(rng, replaces):
    st = _state(rng, widths=(5, 7, 4, 3))
    shared, alone = _Recording(), _Recording()
    shared.replaces_weight = replaces
    st.compress = {0: shared, 1: alone, 2: shared}  # one spec object on layers 0 and 2: one group
    st.tau = {0: 1.0, 1: 1.0, 2: 1.0}
    st.Wt = {i: Compressed(dense=np.zeros_like(st.W[i]), n_params=0) for i in st.compress}
    assert [w is v for w, v in zip(st.group(0), [st.W[0], st.W[2]])] == [True, True]
    assert st.group(1) is None
    w0 = st.W[0].copy()
    step = blocks.update_compression(st, 0, HP, get_backend("numpy"), None, True)
    assert len(shared.seen[0]) == 2
    np.testing.assert_array_equal(shared.seen[0][0], w0)
    np.testing.assert_array_equal(shared.seen[0][1], st.W[2])
    np.testing.assert_array_equal(st.Wt[0].dense, 0.5 * w0)
    assert step == pytest.approx(np.sum((0.5 * w0) ** 2), rel=1e-12)
    # projected pruning overwrites W by its copy; the split form leaves W alone
    np.testing.assert_array_equal(st.W[0], 0.5 * w0 if replaces else w0)
    blocks.update_compression(st, 1, HP, get_backend("numpy"), None, False)
    assert alone.seen == [None]
