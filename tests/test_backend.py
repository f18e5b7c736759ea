"""Backend layer: linear algebra against numpy.linalg, dtype discipline, errors; the ``backend=``
argument of every public op (inference, keyword-only) and the public names."""
import inspect

import numpy as np
import pytest

from nnbcd import ops
from nnbcd.backend import BackendUnavailableError, available_backends, get_backend, infer_backend
from nnbcd.compress import TT, Prune


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


@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_gram_is_exactly_symmetric_across_mirror_tiles(rng, name, dtype, layout):
    """700 rows: five whole 128-tiles of the mirror and a partial one, diagonal and off-diagonal."""
    be = get_backend(name)
    v = rng.standard_normal((700, 300)).astype(dtype)
    if layout == "F":
        v = np.asfortranarray(v)
    g = be.gram(v)
    assert g.shape == (700, 700) and g.dtype == np.dtype(dtype) and g.flags.c_contiguous
    np.testing.assert_array_equal(g, g.T)
    ref = v.astype(np.float64) @ v.T.astype(np.float64)
    tol = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(g, ref, rtol=tol, atol=tol * np.abs(ref).max())


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
    # the squared step of a block: a d×N pair (the fused kernel where the backend has one) and a 1-d pair
    np.testing.assert_allclose(backend.sq_dist(backend.asarray(x), backend.asarray(y)), ((x - y) ** 2).sum(), rtol=1e-12)
    np.testing.assert_allclose(backend.sq_dist(backend.asarray(b), backend.asarray(b[::-1].copy())),
                               ((b - b[::-1]) ** 2).sum(), rtol=1e-12)


def test_asarray_dtype_rules(backend):
    """The one dtype rule: float32/float64 kept, integers promoted to float64 (exactly: 2**53 - 1 survives),
    bool/float16/complex/object refused even when a dtype is asked for (a cast would invent values)."""
    with pytest.raises(ValueError, match="dtype"):
        backend.asarray(np.ones(3), dtype="float16")
    big = backend.asarray(np.array([2 ** 53 - 1, -3], dtype=np.int64))
    assert big.dtype == np.float64 and backend.to_numpy(big).tolist() == [2.0 ** 53 - 1, -3.0]
    assert backend.asarray(np.ones(3, dtype=np.uint8), dtype="float32").dtype == np.float32
    for bad in (np.ones(3, dtype=bool), np.ones(3, dtype=np.float16), np.ones(3, dtype=complex),
                np.array([1.0, None]), ["a", "b"], [[1.0], [1.0, 2.0]]):
        with pytest.raises(TypeError, match="^x "):
            backend.asarray(bad)
        with pytest.raises(TypeError, match="^x "):
            backend.asarray(bad, dtype="float64")
    assert backend.asarray(np.ones(3), dtype="float32").dtype == np.float32
    assert backend.asarray(np.ones(3, dtype=np.float32)).dtype == np.float32


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


# ---- the backend argument: inference and the keyword-only convention -------------------------------
def test_infer_backend_from_arrays_and_names():
    numpy_be = get_backend("numpy")
    assert infer_backend() is numpy_be
    assert infer_backend(np.ones(3), None, [1.0]) is numpy_be
    assert infer_backend(np.ones(3), backend="numba") is get_backend("numba")
    assert infer_backend(np.ones(3), backend=get_backend("numba")) is get_backend("numba")  # object unchanged
    with pytest.raises(ValueError, match="backend='jax'"):
        infer_backend(np.ones(3), backend="jax")
    with pytest.raises(TypeError, match="backend must be"):
        infer_backend(np.ones(3), backend=np)


def test_infer_backend_recognises_cupy_arrays():
    """Any array whose type lives in the cupy package selects the cupy backend (found by module name,
    so inferring never imports cupy); without a GPU that is a clear BackendUnavailableError."""
    fake = type("ndarray", (), {"__module__": "cupy._core.core"})()
    if "cupy" in available_backends():
        assert infer_backend(np.ones(2), fake) is get_backend("cupy")
    else:
        with pytest.raises(BackendUnavailableError, match="cupy"):
            infer_backend(np.ones(2), fake)


def _public_calls():
    """One valid call of every public array function of nnbcd.ops / nnbcd.compress: (name, fn, args)."""
    rng = np.random.default_rng(0)
    t = rng.standard_normal((4, 3, 5))
    cores = ops.tt_svd(t, 2)
    cores4 = ops.tt_matrix_cores(ops.tt_svd(rng.standard_normal((6, 6)), 2), (2, 3), (3, 2))
    w = rng.standard_normal((6, 8))
    return [
        ("tt_svd", ops.tt_svd, (t, 2)),
        ("tt_to_tensor", ops.tt_to_tensor, (cores,)),
        ("tt_matrix_apply", ops.tt_matrix_apply, (cores4, rng.standard_normal((6, 4)))),
        ("tt_tensor_to_matrix", ops.tt_tensor_to_matrix, (rng.standard_normal((6, 6)), (2, 3), (3, 2))),
        ("hard_threshold", ops.hard_threshold, ([w], 0.5)),
        ("topk_mask", ops.topk_mask, (np.abs(w).ravel(), 5)),
        ("evbmf", ops.evbmf, (w,)),
        ("evbmf_batch", ops.evbmf_batch, ([w, w.T],)),
        ("vbmf", ops.vbmf, (w, 1.0, 1.0)),
        ("relu_prox", ops.relu_prox, (w, -w, 2.0)),
        ("im2col", ops.im2col, (rng.standard_normal((2, 3, 5, 5)), (2, 2), 1)),
        ("TT.project", TT(rank=2).project, (w,)),
        ("TT.initial", TT(rank=2).initial, (w,)),
        ("Prune.project", Prune(0.5).project, (w,)),
        ("Prune.initial", Prune(0.5).initial, (w,)),
    ]


@pytest.mark.parametrize("case", range(len(_public_calls())), ids=[c[0] for c in _public_calls()])
def test_backend_is_keyword_only_everywhere(case):
    """Default, name and object give the same result; a positional backend is a TypeError (not a
    confusing AttributeError deep inside), and an unknown name is a ValueError naming ``backend``."""
    name, fn, args = _public_calls()[case]
    param = inspect.signature(fn).parameters["backend"]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is None, name
    base = fn(*args)
    for backend in ("numpy", get_backend("numpy"), "numba"):
        got = fn(*args, backend=backend)
        assert type(got) is type(base), name
    with pytest.raises(TypeError):
        fn(*args, "numpy")
    with pytest.raises(ValueError, match="backend='jax'"):
        fn(*args, backend="jax")


def test_no_public_op_takes_a_positional_backend():
    """Every public callable of nnbcd.ops: a ``backend`` parameter, where there is one, is keyword-only
    with default None, and no parameter is called ``be`` or ``xp``."""
    for name in ops.__all__:
        fn = getattr(ops, name)
        if not inspect.isfunction(fn):
            continue
        params = inspect.signature(fn).parameters
        assert not {"be", "xp"} & set(params), name
        if "backend" in params:
            assert params["backend"].kind is inspect.Parameter.KEYWORD_ONLY and params["backend"].default is None


def test_public_names_are_importable():
    import nnbcd
    import nnbcd.compress

    for name in ("NNBCD", "solve", "SolveResult", "History", "TT", "Prune", "tt_svd", "tt_to_tensor", "evbmf",
                 "vbmf", "get_backend", "available_backends", "infer_backend"):
        assert name in nnbcd.__all__ and hasattr(nnbcd, name), name
    assert nnbcd.tt_svd is ops.tt_svd and nnbcd.TT is nnbcd.compress.TT and nnbcd.evbmf is ops.evbmf
    for name in ("tt_svd", "tt_to_tensor", "tt_ranks", "tt_n_params", "tt_matrix_apply", "tt_matrix_cores",
                 "matrix_to_tt_tensor", "tt_tensor_to_matrix", "factor_shape", "hard_threshold", "topk_mask",
                 "n_keep", "true_sparsity", "effective_sparsity", "evbmf", "evbmf_batch", "vbmf", "relu_prox",
                 "im2col", "conv_output_shape"):
        assert name in ops.__all__ and callable(getattr(ops, name)), name
    assert set(nnbcd.compress.__all__) == {"TT", "Prune", "Compression", "Compressed", "compression_ratios"}


@pytest.mark.parametrize("call,exc,match", [
    (lambda: ops.tt_svd(np.ones((3, 4), dtype=complex), 2), TypeError, "tensor has dtype"),
    (lambda: ops.tt_svd(np.ones((3, 4)), 2, svd="lanczos"), ValueError, "svd='lanczos'"),
    (lambda: ops.tt_to_tensor([np.ones((2, 2))]), ValueError, r"cores\[0\]"),
    (lambda: ops.tt_to_tensor([np.ones((1, 2, 3)), np.ones((2, 2, 1))]), ValueError, r"cores\[1\]"),
    (lambda: ops.tt_matrix_apply([np.ones((1, 2, 3, 1))], np.ones((2, 5))), ValueError, "x must have shape"),
    (lambda: ops.matrix_to_tt_tensor(np.ones((6, 4)), (2, 3), (2, 3)), ValueError, "w has shape"),
    (lambda: ops.hard_threshold([], 0.5), ValueError, "weights"),
    (lambda: ops.hard_threshold([np.ones(4)], 1.0), ValueError, "sparsity"),
    (lambda: ops.topk_mask(np.ones((2, 2)), 1), ValueError, "absval"),
    (lambda: ops.relu_prox(np.ones(3), np.ones(3), -1.0), ValueError, "beta"),
    (lambda: ops.relu_prox(np.ones(3), np.ones(3, dtype=bool), 1.0), TypeError, "a has dtype"),
    (lambda: ops.im2col(np.ones((2, 3, 4)), (2, 2), 1), ValueError, "x must be a 4-D"),
    (lambda: ops.im2col(np.ones((1, 1, 4, 4)), (5, 2), 1), ValueError, "kernel"),
    (lambda: Prune(0.5, scope="global").project(np.ones((2, 2)), weights=[np.ones((2, 2))]), ValueError,
     "weights must contain W"),
])
def test_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_expression_kernels_in_row_blocks_equal_whole_arrays(rng, monkeypatch):
    """The numpy backend's array-expression kernels run in row blocks (bounded temporaries): with blocks of
    2 rows of a 5 × 3 problem (a last, shorter block), the results equal the whole-array formulas."""
    from nnbcd.backend.relu_prox_kernel import relu_prox_vectorized

    be = get_backend("numpy")
    monkeypatch.setattr(be, "expression_block", 7)  # 7 // 3 = 2 rows per block
    assert [r.indices(5) for r in be._row_blocks((5, 3))] == [(0, 2, 1), (2, 4, 1), (4, 5, 1)]
    p, u, v = (rng.standard_normal((5, 3)) for _ in range(3))
    b = rng.standard_normal(5)
    rho, alpha, gamma = 0.7, 0.3, 1.9
    expected = relu_prox_vectorized(v, (rho * (p + b[:, None]) + alpha * u) / (rho + alpha), (rho + alpha) / gamma, np)
    out = be.relu_prox_update(p.copy(), u.copy(), v, b, rho, alpha, gamma)
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    np.testing.assert_allclose(be.relu_gap_sq(v, u), ((v - np.maximum(u, 0)) ** 2).sum(), rtol=1e-14)
    np.testing.assert_allclose(be.lin_gap_sq(u, p, b), ((u - p - b[:, None]) ** 2).sum(), rtol=1e-14)
