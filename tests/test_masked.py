"""The exact W-block on a fixed support, against least squares on the explicit linear map."""
from __future__ import annotations

import numpy as np
import pytest

from nnbcd.compress.masked import BiasTerm, masked_weight_update

RHO, ALPHA, ALPHA_B = 0.7, 0.3, 1.9


def problem(rng, d_out, d_in, n, density, dtype=np.float64):
    U = rng.standard_normal((d_out, n))
    V = rng.standard_normal((d_in, n))
    Wk = rng.standard_normal((d_out, d_in))
    bk = rng.standard_normal(d_out)
    mask = rng.random((d_out, d_in)) < density
    mask[0] = False  # an empty row
    mask[-1] = True  # a full row
    return [a.astype(dtype) for a in (U, V, Wk, bk)] + [mask]


def lstsq_oracle(U, V, Wk, bk, mask, with_bias):
    """Stack √ρ(WV + b1ᵀ) against √ρU and the prox rows; build the map column by column; solve."""
    d_out, n = U.shape
    idx = np.argwhere(mask)
    cols = []
    for j, l in idx:
        E = np.zeros_like(Wk)
        E[j, l] = 1.0
        prox = np.zeros(len(idx))
        prox[len(cols)] = np.sqrt(ALPHA)
        cols.append(np.concatenate([np.sqrt(RHO) * (E @ V).ravel(), prox, np.zeros(d_out)]))
    if with_bias:
        for j in range(d_out):
            E = np.zeros((d_out, n))
            E[j] = 1.0
            e = np.zeros(d_out)
            e[j] = np.sqrt(ALPHA_B)
            cols.append(np.concatenate([np.sqrt(RHO) * E.ravel(), np.zeros(len(idx)), e]))
    A = np.array(cols).T
    y = np.concatenate([np.sqrt(RHO) * U.ravel(), np.sqrt(ALPHA) * Wk[mask], np.sqrt(ALPHA_B) * bk])
    if not with_bias:
        A, y = A[: -d_out], y[: -d_out]
    x = np.linalg.lstsq(A, y, rcond=None)[0]
    W = np.zeros_like(Wk)
    W[mask] = x[: len(idx)]
    return W, (x[len(idx):] if with_bias else None)


def objective(U, V, W, Wk, b, bk):
    r = U - W @ V - (0 if b is None else b[:, None])
    out = RHO / 2 * (r * r).sum() + ALPHA / 2 * ((W - Wk) ** 2).sum()
    return out + (0 if b is None else ALPHA_B / 2 * ((b - bk) ** 2).sum())


def run(U, V, Wk, bk, mask, with_bias, backend):
    bias = BiasTerm(bk, V.sum(axis=1), U.sum(axis=1), U.shape[1], ALPHA_B) if with_bias else None
    return masked_weight_update(U @ V.T, V @ V.T, Wk, mask, RHO, ALPHA, bias=bias, backend=backend)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("d_out, d_in, n, density", [
    (9, 12, 7, 0.4),    # N < support sizes: the prox keeps the systems SPD
    (6, 10, 30, 0.7),
    (4, 80, 12, 0.9),   # supports of ~72 > 64: the row-by-row Cholesky path
])
def test_matches_lstsq_on_the_explicit_map(backend, rng, with_bias, d_out, d_in, n, density):
    U, V, Wk, bk, mask = problem(rng, d_out, d_in, n, density)
    res = run(U, V, Wk, bk, mask, with_bias, backend)
    W, b = lstsq_oracle(U, V, Wk, bk, mask, with_bias)
    np.testing.assert_allclose(res.W, W, rtol=0, atol=1e-10)
    assert not res.W[~mask].any() and not res.W[0].any()
    if with_bias:
        np.testing.assert_allclose(res.b, b, rtol=0, atol=1e-10)
    else:
        assert res.b is None


@pytest.mark.parametrize("with_bias", [False, True])
def test_no_random_perturbation_does_better(rng, with_bias):
    U, V, Wk, bk, mask = problem(rng, 8, 15, 20, 0.5)
    res = run(U, V, Wk, bk, mask, with_bias, "numpy")
    best = objective(U, V, res.W, Wk, res.b, bk)
    for scale in (1e-4, 1e-2, 1.0):
        for _ in range(20):
            dW = rng.standard_normal(mask.shape) * mask * scale
            db = None if res.b is None else res.b + rng.standard_normal(8) * scale
            assert best <= objective(U, V, res.W + dW, Wk, db, bk) + 1e-12 * best


def test_mixed_support_sizes_and_groups(rng):
    """Rows of every support size 0..d_in at once (several padded groups and the large-row path)."""
    d_in = 70
    U, V, Wk, bk, _ = problem(rng, d_in + 1, d_in, 9, 0.5)
    mask = np.arange(d_in)[None, :] < np.arange(d_in + 1)[:, None]
    mask = np.take_along_axis(mask, rng.permuted(np.tile(np.arange(d_in), (d_in + 1, 1)), axis=1), axis=1)
    res = run(U, V, Wk, bk, mask, False, "numpy")
    # the dense closed form of each row on its own support
    M = RHO * (V @ V.T) + ALPHA * np.eye(d_in)
    F = RHO * (U @ V.T) + ALPHA * Wk
    for j in range(d_in + 1):
        S = np.flatnonzero(mask[j])
        ref = np.zeros(d_in)
        if S.size:
            ref[S] = np.linalg.solve(M[np.ix_(S, S)], F[j, S])
        np.testing.assert_allclose(res.W[j], ref, rtol=0, atol=1e-10)


def test_float32_keeps_dtype_and_matches_float64(rng):
    U, V, Wk, bk, mask = problem(rng, 12, 20, 25, 0.5)
    ref = run(U, V, Wk, bk, mask, True, "numpy")
    res = run(*[a.astype(np.float32) for a in (U, V, Wk, bk)], mask, True, "numba")
    assert res.W.dtype == np.float32 and res.b.dtype == np.float32
    np.testing.assert_allclose(res.W, ref.W, rtol=0, atol=1e-4 * np.abs(ref.W).max())
    np.testing.assert_allclose(res.b, ref.b, rtol=0, atol=1e-4 * np.abs(ref.b).max())


def test_errors(rng):
    U, V, Wk, bk, mask = problem(rng, 5, 6, 7, 0.5)
    R, G = U @ V.T, V @ V.T
    with pytest.raises(ValueError, match="mask must be a boolean array"):
        masked_weight_update(R, G, Wk, mask.astype(float), RHO, ALPHA)
    with pytest.raises(ValueError, match="mask must be a boolean array of shape"):
        masked_weight_update(R, G, Wk, mask[:, :3], RHO, ALPHA)
    with pytest.raises(ValueError, match="rho must be finite and > 0"):
        masked_weight_update(R, G, Wk, mask, 0.0, ALPHA)
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        masked_weight_update(R, G, Wk, mask, RHO, float("nan"))
    with pytest.raises(ValueError, match="G d_in × d_in"):
        masked_weight_update(R, G[:3], Wk, mask, RHO, ALPHA)
    with pytest.raises(TypeError, match="one dtype"):
        masked_weight_update(R, G.astype(np.float32), Wk, mask, RHO, ALPHA)
    with pytest.raises(ValueError, match="bias: b, u must have shape"):
        masked_weight_update(R, G, Wk, mask, RHO, ALPHA, bias=BiasTerm(bk[:2], V.sum(1), U.sum(1), 7, 1.0))
    with pytest.raises(ValueError, match="alpha_b must be finite and > 0"):
        masked_weight_update(R, G, Wk, mask, RHO, ALPHA, bias=BiasTerm(bk, V.sum(1), U.sum(1), 7, 0.0))


@pytest.mark.parametrize("exact_from", [1, 3])
def test_masked_block_refuses_a_global_scope(exact_from):
    # the masked block keeps one support per layer; a threshold over the group is the projection block's
    from nnbcd import Prune
    from nnbcd.runners.nnbcd import check

    with pytest.raises(ValueError, match="scope='global' cannot be combined with block='masked'"):
        Prune(0.9, scope="global", block="masked", exact_from=exact_from)
    preset = {"method": "nnbcd", "compress": [dict(type="prune", layers=[0, 1], sparsity=0.9, scope="global",
                                                   block="masked")]}
    with pytest.raises(ValueError, match="scope='global' cannot be combined"):
        check(preset)
    assert Prune(0.9, scope="global").scope == "global" and Prune(0.9, block="masked").scope == "layer"


@pytest.mark.parametrize("with_bias", [False, True])
def test_prune_exact_update_over_relaxes_weight_and_bias(rng, with_bias):
    """Prune(block="masked").exact_update(relaxation=ω) = (W^k, b^k) + ω·(lstsq solution − (W^k, b^k)),
    on the same support."""
    from nnbcd import Prune

    U, V, Wk, bk, _ = problem(rng, 7, 11, 9, 0.5)
    spec = Prune(0.5, block="masked")
    current = spec.project(Wk)
    mask = np.asarray(current.support)
    bias = BiasTerm(bk, V.sum(axis=1), U.sum(axis=1), U.shape[1], ALPHA_B) if with_bias else None
    out = spec.exact_update(current, U @ V.T, V @ V.T, RHO, ALPHA, bias=bias, relaxation=1.7)
    W, b = lstsq_oracle(U, V, current.dense, bk, mask, with_bias)
    np.testing.assert_allclose(out.compressed.dense, current.dense + 1.7 * (W - current.dense), rtol=0, atol=1e-10)
    assert not out.compressed.dense[~mask].any()
    if with_bias:
        np.testing.assert_allclose(out.b, bk + 1.7 * (b - bk), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match=r"relaxation must be in \[1, 2\)"):
        spec.exact_update(current, U @ V.T, V @ V.T, RHO, ALPHA, bias=bias, relaxation=2.5)
