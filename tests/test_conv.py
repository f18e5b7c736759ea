"""Convolutional first layer: im2col against loops and torch, the kernel block against lstsq, descent."""
import numpy as np
import pytest

import nnbcd
from nnbcd.backend import get_backend
from nnbcd.bcd import blocks
from nnbcd.bcd.conv import InputConv2d
from nnbcd.bcd.state import Hyper

HP = Hyper(gamma=0.7, rho=1.3, alpha=0.9, alpha_w=1.1, alpha_b=0.6, kappa=1.0)


def _conv_loops(x, kernel, stride):
    """Direct convolution, x (N, C, H, W), kernel (F, C, kh, kw) -> (N, F, H', W')."""
    n, c, h, w = x.shape
    f, _, kh, kw = kernel.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, f, ho, wo))
    for a in range(ho):
        for b in range(wo):
            patch = x[:, :, a * stride:a * stride + kh, b * stride:b * stride + kw]
            out[:, :, a, b] = np.einsum("nckl,fckl->nf", patch, kernel)
    return out


@pytest.mark.parametrize("shape,k,stride", [((1, 8, 8), 3, 1), ((2, 9, 7), (3, 2), 2), ((1, 28, 28), 3, 2)])
def test_conv_product_matches_direct_convolution(backend, rng, shape, k, stride):
    conv = InputConv2d(shape, filters=4, kernel=k, stride=stride)
    n = 5
    x = rng.standard_normal((n,) + shape)
    z = rng.standard_normal((4, conv.patch_size))  # W_1 = Z^T, rows = filters
    kernel = z.reshape((4, shape[0]) + conv.kernel)
    ref = _conv_loops(x, kernel, stride)  # (N, F, H', W')
    # feature index p·F + f with p = h·W' + w (spec §3.5)
    ref_features = ref.transpose(0, 2, 3, 1).reshape(n, -1).T
    xb = backend.asarray(x.reshape(n, -1).T)
    got = conv.to_features(backend.matmul(backend.asarray(z), conv.patches(xb, backend)))
    np.testing.assert_allclose(backend.to_numpy(got), ref_features, rtol=1e-12, atol=1e-12)
    back = conv.to_patch_layout(got)
    np.testing.assert_array_equal(backend.to_numpy(conv.to_features(back)), backend.to_numpy(got))


def test_conv_matches_torch(rng):
    torch = pytest.importorskip("torch")
    conv = InputConv2d((3, 10, 10), filters=5, kernel=3, stride=2)
    x = rng.standard_normal((4, 3, 10, 10))
    z = rng.standard_normal((5, conv.patch_size))
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(z.reshape(5, 3, 3, 3)), stride=2).numpy()
    be = get_backend("numpy")
    got = conv.to_features(be.matmul(z, conv.patches(x.reshape(4, -1).T.copy(), be)))
    np.testing.assert_allclose(got, ref.transpose(0, 2, 3, 1).reshape(4, -1).T, rtol=1e-12, atol=1e-12)


def _conv_model(bias, **kw):
    if bias:  # alpha_b without biases has no effect, and fit warns
        kw["alpha_b"] = 0.6
    return nnbcd.NNBCD((12,), conv=InputConv2d((1, 8, 8), 6, 3, stride=2), gamma=0.7, rho=1.3, alpha=0.9,
                       alpha_w=1.1, bias=bias, dtype="float64", random_state=0, **kw)


@pytest.fixture(scope="module")
def small_digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X[:60] / 16.0, y[:60]


@pytest.mark.parametrize("bias", [False, True])
def test_kernel_block_matches_lstsq(small_digits, rng, bias):
    X, y = small_digits
    m = _conv_model(bias, max_iter=2).fit(X, y)
    st, be = m.state_, m.backend_
    st.U[0] = rng.standard_normal(st.U[0].shape)  # a generic point, not the forward pass
    if bias:
        st.b[0] = rng.standard_normal(st.b[0].shape)
    conv = st.conv
    # independent patch matrix from loops: row (n, p), column (c, ky, kx)
    imgs = X.reshape(-1, 1, 8, 8)
    rows = [imgs[n, :, a * 2:a * 2 + 3, b * 2:b * 2 + 3].ravel() for n in range(len(X))
            for a in range(3) for b in range(3)]
    xhat = np.array(rows)
    u1 = st.U[0].T.reshape(len(X) * conv.n_patches, conv.filters)  # U_1' = reshape(U_1^T)
    zk, bk = st.W[0].T.copy(), (None if not bias else st.b[0].copy())
    a_rows, rhs = [np.sqrt(HP.rho) * xhat], [np.sqrt(HP.rho) * u1]
    if bias:
        a_rows[0] = np.hstack([a_rows[0], np.sqrt(HP.rho) * np.ones((xhat.shape[0], 1))])
        d = np.r_[np.full(conv.patch_size, np.sqrt(HP.alpha_w)), np.sqrt(HP.alpha_b)]
        t = np.vstack([zk, bk[None, :]])
    else:
        d = np.full(conv.patch_size, np.sqrt(HP.alpha_w))
        t = zk
    a_rows.append(np.diag(d))
    rhs.append(d[:, None] * t)
    expect = np.linalg.lstsq(np.vstack(a_rows), np.vstack(rhs), rcond=None)[0]
    blocks.update_weight(st, 0, HP, be, blocks.Workspace(st, be), False)
    got = np.vstack([st.W[0].T, st.b[0][None, :]]) if bias else st.W[0].T
    np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-12)


def test_conv_net_descends_and_learns(small_digits):
    X, y = small_digits
    m = _conv_model(True, max_iter=25).fit(X, y, X_val=X, y_val=y)  # from chance (~0.1) to most of the train set
    phi = m.result_.history["objective"]
    assert np.all(np.diff(phi) <= 1e-10 * np.abs(phi[1:]))
    assert m.result_.history["acc"][-1] > 0.8
    np.testing.assert_allclose(m.score(X, y), m.result_.history["acc"][-1])


def test_conv_errors(small_digits):
    X, y = small_digits
    with pytest.raises(ValueError, match="in_shape"):
        InputConv2d((8, 8), 4)
    with pytest.raises(ValueError, match="kernel"):
        InputConv2d((1, 8, 8), 4, kernel=9)
    with pytest.raises(ValueError, match="layer 0 is the conv kernel, which is not compressed"):
        _conv_model(False, compress={0: object()}, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="expects 64"):
        _conv_model(False, max_iter=1).fit(X[:, :60], y)
    m = _conv_model(False, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="expecting 64"):
        m.predict(X[:, :60])
    with pytest.raises(TypeError, match="InputConv2d"):
        nnbcd.NNBCD((12,), conv=(1, 8, 8)).fit(X, y)


def test_conv_widths_come_from_the_layer(small_digits):
    X, y = small_digits
    conv = InputConv2d((1, 8, 8), 6, 3, stride=2)  # 3×3 outputs × 6 filters = 54 features
    m = nnbcd.NNBCD((12, 7), conv=conv, max_iter=1, bias=True).fit(X, y[:60] % 4)
    assert [c.shape for c in m.coefs_] == [(6, 9), (12, 54), (7, 12), (4, 7)]
    assert [b.shape for b in m.intercepts_] == [(6,), (12,), (7,), (4,)] and m.state_.U[0].shape == (54, 60)


def test_to_features_in_place_over_several_sample_blocks():
    # more samples than one copy block (256), the last block partial; oracle: the index formula
    # feature p*F + f of sample n = column n*P + p of filter f
    conv = InputConv2d(in_shape=(1, 7, 7), filters=3, kernel=3, stride=2)
    n, P, F = 600, conv.n_patches, conv.filters
    prod = np.random.default_rng(0).standard_normal((F, n * P))
    expected = np.empty((conv.n_out, n))
    for p in range(P):
        for f in range(F):
            expected[p * F + f] = prod[f, np.arange(n) * P + p]
    out = np.full((conv.n_out, n), np.nan)
    assert conv.to_features(prod, out) is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(conv.to_features(prod), expected)
    np.testing.assert_array_equal(conv.to_patch_layout(expected), prod)
