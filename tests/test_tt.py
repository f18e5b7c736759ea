"""TT operators against tensorly, numpy.linalg and the Oseledets bound; the spec's rank tables."""
import inspect
import math

import numpy as np
import pytest

from nnbcd.compress import TT, compression_ratios
from nnbcd.ops import tt

HAR = [  # layer shape, modes, realised ranks, P_TT (spec §3.3, r = 80)
    ((1024, 561), (6, 22, 34, 2, 2, 2, 2, 2, 2, 2), [1, 6, 80, 80, 64, 32, 16, 8, 4, 2, 1], 243_896),
    ((1024, 1024), (4,) * 10, [1, 4, 16, 64, 80, 80, 80, 64, 16, 4, 1], 100_896),
    ((512, 1024), (4,) * 9 + (2,), [1, 4, 16, 64, 80, 80, 80, 32, 8, 2, 1], 87_380),
    ((512, 512), (4,) * 9, [1, 4, 16, 64, 80, 80, 64, 16, 4, 1], 75_296),
]
CNN = [((26, 26, 4, 4, 4, 4, 4, 2, 2, 2), 40, [1, 26, 40, 40, 40, 40, 32, 8, 4, 2, 1], 53_144),
       ((26, 26, 4, 4, 4, 4, 4, 2, 2, 2), 220, [1, 26, 220, 220, 220, 128, 32, 8, 4, 2, 1], 666_728),
       ((4,) * 10, 220, [1, 4, 16, 64, 220, 220, 220, 64, 16, 4, 1], 508_576)]


@pytest.mark.parametrize("shape,modes,ranks,p", HAR)
def test_har_rank_table(shape, modes, ranks, p):
    assert math.prod(modes) == shape[0] * shape[1]
    assert tt.tt_ranks(modes, 80) == ranks
    assert tt.tt_n_params(modes, ranks) == p


@pytest.mark.parametrize("modes,r,ranks,p", CNN)
def test_cnn_rank_table(modes, r, ranks, p):
    assert tt.tt_ranks(modes, r) == ranks and tt.tt_n_params(modes, ranks) == p


def _ratios(widths, compressed, r, shapes):
    L = len(widths) - 1
    params = {i: tt.tt_n_params(shapes[i], tt.tt_ranks(shapes[i], r)) for i in compressed}
    return compression_ratios([(widths[i + 1], widths[i]) for i in range(L)], params)


def test_har_compression_ratios_exact():
    m = {0: HAR[0][1], 1: HAR[1][1], 2: HAR[1][1], 3: HAR[2][1], 4: HAR[3][1]}
    r4 = _ratios((561, 1024, 1024, 1024, 512, 6), [0, 1, 2, 3], 80, m)
    assert round(r4["cr_1"], 5) == 0.16760 and round(r4["cr_2"], 5) == 0.16680
    assert r4["cr_1"] == 536_140 / 3_198_976 and r4["cr_2"] == 533_068 / 3_195_904
    r5 = _ratios((561, 1024, 1024, 1024, 512, 512, 6), [0, 1, 2, 3, 4], 80, m)
    assert round(r5["cr_1"], 5) == 0.17666 and round(r5["cr_2"], 5) == 0.17593


@pytest.mark.parametrize("r,cr2,cr1", [(40, 0.01282, 0.01435), (80, 0.03702, 0.03851), (140, 0.08783, 0.08925),
                                       (220, 0.17844, 0.17972), (300, 0.28070, 0.28181)])
def test_cnn_compression_ratios(r, cr2, cr1):
    shapes = {1: CNN[0][0], 2: CNN[2][0]}  # W_2 1024×5408, W_3 1024×1024; the conv kernel is layer 0
    out = compression_ratios([(32, 9), (1024, 5408), (1024, 1024), (10, 1024)],
                             {i: tt.tt_n_params(shapes[i], tt.tt_ranks(shapes[i], r)) for i in (1, 2)},
                             conv_layers=(0,))
    assert round(out["cr_2"], 5) == cr2 and round(out["cr_1"], 5) == cr1


@pytest.mark.parametrize("modes,r", [((6, 22, 34, 2, 2, 2), 12), ((4, 4, 4, 4, 4), 7), ((3, 50, 7), 5)])
def test_tt_svd_matches_tensorly(backend, rng, modes, r):
    import tensorly as tl
    from tensorly.decomposition import tensor_train

    x = rng.standard_normal(modes)
    ranks = tt.tt_ranks(modes, r)
    ref = tl.tt_to_tensor(tensor_train(x, rank=ranks))
    for method in ("full", "gram"):
        cores = tt.tt_svd(backend.asarray(x), r, svd=method, backend=backend)
        assert [c.shape[0] for c in cores] + [1] == ranks
        got = backend.to_numpy(tt.tt_to_tensor(cores, backend=backend))
        assert np.linalg.norm(got - ref) <= 1e-6 * np.linalg.norm(x), method


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["full", "gram"])
def test_oseledets_bound_and_exact_when_uncapped(backend, rng, dtype, method):
    modes = (4, 6, 5, 3, 4)
    # a decaying spectrum, like trained weights
    x = (rng.standard_normal(modes) * np.exp(-np.arange(np.prod(modes)) / 80).reshape(modes)).astype(dtype)
    for r in (3, 9, 10**6):
        cores = tt.tt_svd(backend.asarray(x), r, svd=method, backend=backend)
        assert all(c.dtype == np.dtype(dtype) for c in cores)
        err = np.linalg.norm(backend.to_numpy(tt.tt_to_tensor(cores, backend=backend)).astype(float) - x)
        bound = tt.tt_truncation_bound(x.astype(float), tt.tt_ranks(modes, r))
        tol = (1e-4 if dtype == "float32" else 1e-10) * np.linalg.norm(x)
        assert err <= bound + tol
        if r == 10**6:
            assert err <= (1e-5 if dtype == "float32" else 1e-12) * np.linalg.norm(x)


def test_two_modes_is_truncated_svd(backend, rng):
    w = rng.standard_normal((30, 20))
    for method in ("full", "gram"):
        got = backend.to_numpy(tt.tt_to_tensor(tt.tt_svd(backend.asarray(w), 6, svd=method, backend=backend),
                                               backend=backend))
        u, s, vt = np.linalg.svd(w)
        np.testing.assert_allclose(got, (u[:, :6] * s[:6]) @ vt[:6], atol=1e-10)


def test_matrix_layout_round_trip_and_contraction(backend, rng):
    w = rng.standard_normal((24, 30))
    rows, cols = (2, 3, 4), (5, 3, 2)
    t = tt.matrix_to_tt_tensor(backend.asarray(w), rows, cols)
    np.testing.assert_array_equal(backend.to_numpy(tt.tt_tensor_to_matrix(t, rows, cols, backend=backend)), w)
    cores = tt.tt_svd(t, 4, backend=backend)
    dense = backend.to_numpy(tt.tt_tensor_to_matrix(tt.tt_to_tensor(cores, backend=backend), rows, cols,
                                                    backend=backend))
    x = rng.standard_normal((30, 7))
    got = tt.tt_matrix_apply(tt.tt_matrix_cores(cores, rows, cols), backend.asarray(x), backend=backend)
    np.testing.assert_allclose(backend.to_numpy(got), dense @ x, rtol=1e-10, atol=1e-10)


def test_tt_spec(backend, rng):
    w = backend.asarray(rng.standard_normal((64, 36)))
    for spec in (TT(rank=5, shape=(8, 8, 6, 6)), TT(rank=5, layout="matrix", row_shape=(8, 8), col_shape=(6, 6)),
                 TT(rank=5)):
        spec.validate((64, 36), "compress[1]")
        c = spec.project(w, backend=backend)
        assert c.dense.shape == (64, 36) and c.n_params == sum(x.size for x in c.factors)
        assert c.info["ranks"][0] == c.info["ranks"][-1] == 1 and max(c.info["ranks"]) <= 5
        full = TT(rank=10**6, shape=spec.shape, layout=spec.layout, row_shape=spec.row_shape,
                  col_shape=spec.col_shape).project(w, backend=backend)
        np.testing.assert_allclose(backend.to_numpy(full.dense), backend.to_numpy(w), atol=1e-10)
    assert (TT(rank=3, rank_initial=50).initial(w, backend=backend).info["ranks"]
            != TT(rank=3).project(w, backend=backend).info["ranks"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(shape=(8, 8, 6)), "TT shape"), (dict(layout="matrix", row_shape=(8, 8), col_shape=(6, 5)), "row_shape"),
    (dict(rank=0), "rank"), (dict(rank=[1, 3, 2]), "rank list"), (dict(layout="tucker"), "layout"),
    (dict(svd="lanczos"), "svd"), (dict(rank_initial=0), "rank_initial"),
])
def test_tt_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TT(**kwargs).validate((64, 36), "compress[1]")


def test_factor_shape():
    assert tt.factor_shape(1024) == (4, 4, 4, 4, 4)
    assert math.prod(tt.factor_shape(561)) == 561 and math.prod(tt.factor_shape(97)) == 97


def _graded(rng, n, decades):
    """An n×n matrix with singular values 10^-linspace(0, decades, n) and random singular vectors."""
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (u * 10.0 ** -np.linspace(0, decades, n)) @ v.T


@pytest.mark.parametrize("svd", tt.SVD_METHODS)
def test_float32_best_rank_error_on_ill_conditioned_matrix(backend, rng, svd):
    """Issue 12's case: singular values 10^-linspace(0, 8, 64), rank 32, float32. The best rank-32 error
    (Eckart-Young, from numpy's SVD in float64) is 8.6e-5 relative; a Gram formed in float32 gave 2.2e-4."""
    a = _graded(rng, 64, 8)
    s = np.linalg.svd(a, compute_uv=False)
    best = np.sqrt((s[32:] ** 2).sum() / (s ** 2).sum())
    a32 = a.astype(np.float32)
    cores = tt.tt_svd(backend.asarray(a32), [1, 32, 1], svd=svd, backend=backend)
    approx = backend.to_numpy(tt.tt_to_tensor(cores, backend=backend)).astype(np.float64)
    err = np.linalg.norm(approx - a32) / np.linalg.norm(a32)
    assert cores[0].dtype == np.float32
    assert err <= best * 1.01 + 20 * np.finfo(np.float32).eps


@pytest.mark.parametrize("rank", [32, 40, 48])
@pytest.mark.parametrize("svd", tt.SVD_METHODS)
def test_float32_within_oseledets_bound_on_ill_conditioned_tensor(backend, rng, svd, rank):
    """The (8, 8, 8, 8) reading of a 64×64 matrix with graded spectrum, float32: the TT-SVD error stays
    within Oseledets' bound (computed in float64 from the unfoldings) up to float32 rounding."""
    t = _graded(rng, 64, 8).reshape(8, 8, 8, 8)
    t32 = t.astype(np.float32)
    cores = tt.tt_svd(backend.asarray(t32), rank, svd=svd, backend=backend)
    approx = backend.to_numpy(tt.tt_to_tensor(cores, backend=backend)).astype(np.float64)
    ranks = [1] + [c.shape[-1] for c in cores]
    bound = tt.tt_truncation_bound(t32.astype(np.float64), ranks)
    assert np.linalg.norm(approx - t32) <= bound + 20 * np.finfo(np.float32).eps * np.linalg.norm(t32)


def test_one_svd_default_for_tt_svd_and_tt():
    assert inspect.signature(tt.tt_svd).parameters["svd"].default == TT().svd == "gram"


def test_ops_infer_the_backend_and_keep_the_array_kind(backend, rng):
    """With no ``backend=``, the inputs decide: numpy arrays run on numpy, CuPy arrays on cupy, and the
    cores come back as the input's kind of array."""
    x = backend.asarray(rng.standard_normal((4, 5, 6)))
    cores = tt.tt_svd(x, 3)
    assert all(type(c) is type(x) for c in cores)
    assert type(tt.tt_to_tensor(cores)) is type(x)
