"""Top-k pruning against a full sort, sparsity counts, the pruning spec."""
import numpy as np
import pytest
import scipy.sparse

from nnbcd.compress import Prune
from nnbcd.ops.prune import effective_sparsity, hard_threshold, n_keep, topk_mask, true_sparsity


@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.999])
def test_topk_is_the_largest(backend, rng, q):
    w = rng.standard_normal((37, 23))
    s = backend.to_numpy(hard_threshold([backend.asarray(w)], q, backend=backend)[0])
    k = n_keep(w.size, q)
    assert np.count_nonzero(s) == k
    order = np.argsort(-np.abs(w).ravel(), kind="stable")  # oracle: full sort, ties by lower index
    expect = np.zeros(w.size)
    expect[order[:k]] = w.ravel()[order[:k]]
    np.testing.assert_array_equal(s.ravel(), expect)


def test_ties_by_lower_flat_index(backend):
    a = backend.asarray(np.array([1.0, 3.0, 2.0, 2.0, 2.0, 0.5]))
    mask = backend.to_numpy(topk_mask(a, 3, backend=backend))
    np.testing.assert_array_equal(mask, [False, True, True, True, False, False])


def test_global_scope_is_one_threshold(backend, rng):
    ws = [rng.standard_normal((10, 8)), 3 * rng.standard_normal((6, 10))]
    got = hard_threshold([backend.asarray(w) for w in ws], 0.7, backend=backend)
    joint = np.concatenate([w.ravel() for w in ws])
    k = n_keep(joint.size, 0.7)
    keep = np.zeros(joint.size, bool)
    keep[np.argsort(-np.abs(joint), kind="stable")[:k]] = True
    np.testing.assert_array_equal(np.concatenate([backend.to_numpy(g).ravel() != 0 for g in got]), keep)


def test_flare_true_sparsity():
    """40-300-100-2 with 90 % on W_1, W_2: 37,800 zeros of 42,200 weights (spec §6)."""
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((300, 40)), rng.standard_normal((100, 300)), rng.standard_normal((2, 100))]
    pruned = [hard_threshold([w], 0.9)[0] for w in ws[:2]] + [ws[2]]
    assert [np.count_nonzero(p) for p in pruned[:2]] == [1200, 3000]
    assert true_sparsity(pruned) == 37_800 / 42_200


def test_effective_sparsity_counts_dead_units():
    w1 = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]])  # unit 1 has no input
    w2 = np.array([[1.0, 5.0, 0.0]])                       # unit 2 has no output
    # true zeros: 4 of 9; dead unit 1 kills w2[0,1]; dead unit 2 kills w1[2,0]: 6 of 9
    assert true_sparsity([w1, w2]) == 4 / 9
    assert effective_sparsity([w1, w2]) == pytest.approx(6 / 9, abs=1e-15)
    assert effective_sparsity([w1, w2], [np.array([0.0, 1.0, 0.0]), None]) == pytest.approx(5 / 9, abs=1e-15)


def test_prune_spec(backend, rng):
    w = backend.asarray(rng.standard_normal((20, 15)))
    c = Prune(0.8).project(w, backend=backend)
    assert c.n_params == n_keep(300, 0.8) == 60 and abs(c.info["sparsity"] - 0.8) < 1e-12
    sp = Prune(0.8).export(c)
    assert isinstance(sp, scipy.sparse.csr_array) and sp.nnz == 60
    np.testing.assert_array_equal(sp.toarray(), backend.to_numpy(c.dense))
    assert Prune(mode="projected").replaces_weight and not Prune().replaces_weight


@pytest.mark.parametrize("kwargs,match", [(dict(sparsity=1.0), "sparsity"), (dict(sparsity=-0.1), "sparsity"),
                                          (dict(scope="net"), "scope"), (dict(mode="soft"), "mode")])
def test_prune_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Prune(**kwargs)
