"""Exact blocks on the compressed form inside NN-BCD (Prune(block="masked"), TT(block="cores")), the
statistics seam of the W-blocks, and hyperparameter schedules in the solver."""
import numpy as np
import pytest
import tensorly as tl
from tensorly.tt_tensor import tt_to_tensor as tl_tt_to_tensor

import nnbcd
from nnbcd import InputConv2d, Prune, TT
from nnbcd.backend import get_backend
from nnbcd.bcd import blocks
from nnbcd.bcd.state import BCDState, Hyper
from nnbcd.convergence import rate, sufficient_decrease
from nnbcd.schedules import Constant, Geometric, Piecewise

tl.set_backend("numpy")
ALPHA = 0.8


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))[:240]
    return X[idx] / 16.0, y[idx]


def _fit(digits, compress=None, it=12, **kw):
    X, y = digits
    base = dict(gamma=0.5, rho=0.5, alpha=ALPHA, dtype="float64", random_state=0, compress=compress, max_iter=it)
    base.update(kw)
    return nnbcd.NNBCD((24, 16), **base).fit(X, y)


def _non_increasing(phi, rtol=1e-10):
    return bool(np.all(np.diff(phi) <= rtol * np.abs(phi[1:])))


def _tt_matrix(cores, shape, layout):
    """Oracle reconstruction of exported cores with tensorly (TT-matrix cores interleave (o, c) pairs)."""
    if layout == "reshape":
        return tl_tt_to_tensor(cores).reshape(shape)
    m = len(cores)
    full = tl_tt_to_tensor([c.reshape(c.shape[0], -1, c.shape[-1]) for c in cores])
    pairs = full.reshape([k for c in cores for k in c.shape[1:3]])
    return pairs.transpose([2 * t for t in range(m)] + [2 * t + 1 for t in range(m)]).reshape(shape)


EXACT = {
    "masked": lambda: {0: Prune(0.8, block="masked"), 1: Prune(0.6, block="masked")},
    "cores": lambda: {0: TT(rank=5, block="cores"), 1: TT(rank=4, block="cores")},
    "cores-matrix": lambda: {1: TT(rank=3, layout="matrix", block="cores")},
    "mixed": lambda: {0: Prune(0.7, block="masked"), 1: TT(rank=4, block="cores"), 2: Prune(0.5)},
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", list(EXACT))
def test_exact_blocks_never_increase_phi_and_decrease_sufficiently(digits, name, bias):
    m = _fit(digits, EXACT[name](), bias=bias, tau=2.0 if name == "mixed" else 0.0)
    r = m.result_
    h = r.history
    exact = [i for i, s in m.state_.compress.items() if s.exact]
    if name != "mixed":  # a projection block (the TT-SVD / top-k copy) is not an exact minimiser of Φ
        assert _non_increasing(h["objective"])
        # Φ^k − Φ^{k+1} ≥ α/2 · (prox-block steps): the cores' steps are summed, each a prox step
        check = sufficient_decrease(r, ALPHA)
        assert check.ok and check.n_checked == len(h["objective"]) - 1
    assert r.constant_from == 1
    for i in exact:
        assert np.all(h[f"comp_{i}"] == 0.0)
        assert f"tau_{i}" not in h
    assert np.isfinite(h["objective"]).all() and h["acc"][-1] > 0.3


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", ["dense", "masked", "cores", "cores-matrix"])
def test_over_relaxed_blocks_keep_phi_decreasing_sufficiently(digits, name, bias):
    """relaxation = ω ∈ (0, 2): every quadratic block steps to X^k + ω(X* − X^k), which still lowers Φ, by
    at least α/ω ≥ α/2 times the squared step in the prox blocks; and the iterates differ from ω = 1."""
    compress = None if name == "dense" else EXACT[name]()
    relaxed = _fit(digits, compress, bias=bias, relaxation=1.8).result_
    assert _non_increasing(relaxed.history["objective"])
    check = sufficient_decrease(relaxed, ALPHA)
    assert check.ok and check.n_checked == len(relaxed.history["objective"]) - 1
    plain = _fit(digits, None if name == "dense" else EXACT[name](), bias=bias).result_
    # the chain of auxiliary blocks relaxes faster: a lower Φ after the same sweeps
    assert relaxed.history["objective"][-1] < 0.9 * plain.history["objective"][-1]
    assert list(relaxed.history["relaxation"]) == [1.8] * 12 and "relaxation" not in plain.history


def test_masked_deployed_weights_are_on_the_support(digits):
    m = _fit(digits, EXACT["masked"](), bias=True)
    st = m.state_
    for i, q in ((0, 0.8), (1, 0.6)):
        n = m.coefs_[i].size
        kept = n - int(np.floor(q * n + 0.5))
        assert np.count_nonzero(m.coefs_[i]) == kept == int(st.Wt[i].support.sum())
        np.testing.assert_array_equal(m.coefs_[i], st.W[i])  # the trained W is the deployed W
        assert not np.any(m.coefs_[i][~st.Wt[i].support])
        assert m.export()["layers"][i].nnz == kept
        assert m.result_.history[f"sparsity_{i}"][-1] == q


def test_masked_block_is_the_supported_minimiser(digits, rng):
    """One W_exact step: on the support, the gradient of ρ/2‖U−WV−b1ᵀ‖² + α_W/2‖W−W^k‖² + α_b/2‖b−b^k‖² is 0."""
    m = _fit(digits, {1: Prune(0.6, block="masked")}, bias=True, it=2)
    st, be = m.state_, m.backend_
    st.U[1] = st.U[1] + 0.3 * rng.standard_normal(st.U[1].shape)  # move the data away from the last solve
    hp = Hyper(gamma=0.5, rho=0.7, alpha=0.9, alpha_w=1.1, alpha_b=0.6, kappa=1.0)
    w_k, b_k, mask = st.W[1].copy(), st.b[1].copy(), st.Wt[1].support
    blocks.update_weight_exact(st, 1, hp, be, blocks.Workspace(st, be), False)
    resid = st.U[1] - st.W[1] @ st.V[0] - st.b[1][:, None]
    grad_w = -hp.rho * resid @ st.V[0].T + hp.alpha_w * (st.W[1] - w_k)
    grad_b = -hp.rho * resid.sum(axis=1) + hp.alpha_b * (st.b[1] - b_k)
    scale = np.abs(hp.rho * st.U[1] @ st.V[0].T).max()
    assert np.abs(grad_w[mask]).max() < 1e-10 * scale and np.abs(grad_b).max() < 1e-10 * scale
    assert not np.any(st.W[1][~mask])


@pytest.mark.parametrize("layout", ["reshape", "matrix"])
def test_tt_cores_deployed_weight_is_the_stored_tt(digits, layout):
    m = _fit(digits, {0: TT(rank=5, layout=layout, block="cores"), 1: TT(rank=4, layout=layout, block="cores")})
    exported = m.export()["layers"]
    for i in (0, 1):
        np.testing.assert_allclose(_tt_matrix(exported[i], m.coefs_[i].shape, layout), m.coefs_[i],
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(m.coefs_[i], m.state_.W[i])
        ranks = m.result_.compression[i]["ranks"]
        assert max(ranks) <= (5 if i == 0 else 4)
        assert m.result_.compression[i]["n_params"] == sum(c.size for c in exported[i])
    h = m.result_.history
    assert h["cr_2"][-1] == pytest.approx(sum(c.size for e in exported[:2] for c in e) / (24 * 64 + 16 * 24))


def test_cores_default_column_modes_largest_first():
    assert TT(rank=4, block="cores").modes((10, 12)) == (2, 5, 4, 3)
    assert TT(rank=4).modes((10, 12)) == (2, 5, 3, 4)


def test_exact_blocks_behind_a_conv_first_layer():
    rng = np.random.default_rng(1)
    X = rng.random((60, 64))
    y = rng.integers(0, 3, 60)
    m = nnbcd.NNBCD((16,), conv=InputConv2d((1, 8, 8), 4, 3, stride=2), dtype="float64", random_state=0,
                    bias=True, alpha=ALPHA, compress={1: TT(rank=3, block="cores")}, max_iter=8).fit(X, y)
    assert _non_increasing(m.result_.history["objective"])
    assert sufficient_decrease(m.result_, ALPHA).ok


@pytest.mark.parametrize("make_default,make_explicit", [
    (lambda: {0: Prune(0.8), 1: Prune(0.6)}, lambda: {0: Prune(0.8, block="projection"), 1: Prune(0.6, block="projection")}),
    (lambda: {0: TT(rank=5), 1: TT(rank=4)}, lambda: {0: TT(rank=5, block="projection"), 1: TT(rank=4, block="projection")}),
])
def test_paper_algorithm_is_the_default_bit_for_bit(digits, make_default, make_explicit):
    a = _fit(digits, make_default(), tau=3.0, bias=True)
    b = _fit(digits, make_explicit(), tau=Constant(3.0), gamma=Constant(0.5), rho={"type": "constant", "value": 0.5},
             bias=True)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(wa, wb)
    for key in a.result_.history:
        if not key.startswith("time"):
            np.testing.assert_array_equal(a.result_.history[key], b.result_.history[key], err_msg=key)


# ---- the statistics seam ---------------------------------------------------------------------------

def _state(rng, n, bias):
    widths = (9, 7, 4)
    return BCDState(
        W=[rng.standard_normal((widths[i + 1], widths[i])) for i in range(2)],
        b=[rng.standard_normal(widths[i + 1]) if bias else None for i in range(2)],
        U=[rng.standard_normal((widths[i + 1], n)) for i in range(2)],
        V=[rng.standard_normal((widths[i + 1], n)) for i in range(2)],
        X=rng.standard_normal((widths[0], n)),
        Y=np.eye(widths[-1])[:, rng.integers(0, widths[-1], n)],
    )


def _columns(st, cols):
    return BCDState(W=st.W, b=st.b, U=[u[:, cols] for u in st.U], V=[v[:, cols] for v in st.V], X=st.X[:, cols],
                    Y=st.Y[:, cols])


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("layer", [0, 1])
def test_weight_statistics_are_sums_over_sample_shards(rng, bias, layer):
    """The N-sized statistics of shards of the columns add up to the whole's, and the dense W-block solved
    from the summed statistics is the W-block (the seam of a sharded solver)."""
    be = get_backend("numpy")
    st = _state(rng, 30, bias)
    u, v = st.U[layer], st.v_in(layer)
    whole = blocks.weight_statistics(st, layer, be, blocks.Workspace(st, be))
    np.testing.assert_allclose(whole.R, u @ v.T, rtol=1e-12)
    np.testing.assert_allclose(whole.G, v @ v.T, rtol=1e-12)
    assert whole.n == 30
    shards = [blocks.weight_statistics(s, layer, be, blocks.Workspace(s, be))
              for s in (_columns(st, slice(0, 11)), _columns(st, slice(11, 30)))]
    summed = blocks.WeightStatistics(*(sum(getattr(sh, f) for sh in shards) if getattr(shards[0], f) is not None
                                       else None for f in ("R", "G", "u", "s", "n")))
    for f in ("R", "G", "u", "s"):
        if getattr(whole, f) is None:
            assert not bias and getattr(summed, f) is None
        else:
            np.testing.assert_allclose(getattr(summed, f), getattr(whole, f), rtol=1e-12, atol=1e-12)
    hp = Hyper(gamma=0.7, rho=1.3, alpha=0.9, alpha_w=1.1, alpha_b=0.6, kappa=1.0)
    w, b = blocks.dense_weight_solve(summed, hp.alpha_w * st.W[layer], st.b[layer], hp.alpha_w, hp.rho,
                                     hp.alpha_b, be)
    blocks.update_weight(st, layer, hp, be, blocks.Workspace(st, be, w_solve="direct"), False)
    np.testing.assert_allclose(w, st.W[layer], rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(b, st.b[layer], rtol=1e-10, atol=1e-12)


# ---- support reselection, schedules ------------------------------------------------------------------

class _CountingPrune(Prune):
    """Counts the projections: the masked block projects only when it re-chooses the support."""

    calls = 0

    def project(self, W, **kw):
        type(self).calls += 1
        return super().project(W, **kw)


def test_masked_support_reselected_then_frozen(digits):
    spec = _CountingPrune(0.8, block="masked", reselect_every=2, freeze_after=7)
    assert [spec.reselects(k) for k in range(1, 11)] == [False, True, False, True, False, True] + [False] * 4
    assert spec.constant_from == 6
    calls = []
    X, y = digits
    m = nnbcd.NNBCD((24, 16), alpha=ALPHA, dtype="float64", random_state=0, compress={0: spec}, max_iter=12).fit(
        X, y, callback=lambda res: calls.append(_CountingPrune.calls))
    r = m.result_
    assert np.diff([1] + calls).tolist() == [0, 1, 0, 1, 0, 1] + [0] * 6  # after the initial copy
    assert r.constant_from == 6
    assert _non_increasing(r.history["objective"][5:])  # from the frozen support on: exact BCD
    check = sufficient_decrease(r, ALPHA)  # starts at constant_from
    assert check.ok and check.n_checked == 12 - 6 and np.isnan(check.margins[:5]).all()
    assert np.count_nonzero(m.coefs_[0]) == 24 * 64 - round(0.8 * 24 * 64)


def test_sparsity_schedule_prunes_gradually_by_magnitude(digits):
    """A growing sparsity re-chooses the support (the top-k of the dense step) when it changes: the support
    shrinks (gradual magnitude pruning) and the kept count follows the schedule."""
    supports = []
    X, y = digits
    q = Geometric(0.2, 2.0, ceiling=0.8, every=3)  # 0.2, 0.4, 0.8 from sweeps 1, 4, 7
    m = nnbcd.NNBCD((24, 16), alpha=ALPHA, dtype="float64", random_state=0, max_iter=9,
                    compress={1: Prune(q, block="masked")}).fit(X, y, callback=lambda r: supports.append(
                        r.x["Wt"][1].support.copy()))
    kept = [int(sup.sum()) for sup in supports]
    n = 16 * 24
    assert kept == [n - round(0.2 * n)] * 3 + [n - round(0.4 * n)] * 3 + [n - round(0.8 * n)] * 3
    assert np.all(supports[3] <= supports[2]) and np.all(supports[6] <= supports[5])
    assert m.result_.constant_from == 7 and _non_increasing(m.result_.history["objective"][6:])


def test_scheduled_values_are_recorded_and_set_constant_from(digits):
    tau = Geometric(1.0, 2.0, ceiling=8.0)  # 1, 2, 4, 8, 8, ...: constant from sweep 4
    rank = Geometric(12, 0.5, every=2, floor=3, integer=True)  # 12, 12, 6, 6, 3, ...: constant from sweep 5
    q = Piecewise([(1, 0.5), (3, 0.8)])
    m = _fit(digits, {0: TT(rank=5), 1: TT(rank=rank, block="cores"), 2: Prune(q, block="masked")}, tau={0: tau},
             gamma=Piecewise([(1, 0.3), (2, 0.5)]), it=9)
    h, r = m.result_.history, m.result_
    np.testing.assert_array_equal(h["tau_0"], [1, 2, 4, 8, 8, 8, 8, 8, 8])
    np.testing.assert_array_equal(h["gamma"], [0.3] + [0.5] * 8)
    np.testing.assert_array_equal(h["rho"], [0.5] * 9)
    np.testing.assert_array_equal(h["rank_1"], [12, 12, 6, 6, 3, 3, 3, 3, 3])
    np.testing.assert_array_equal(h["rank_0"], [5] * 9)
    np.testing.assert_array_equal(h["sparsity_2"], [0.5, 0.5] + [0.8] * 7)
    assert r.constant_from == 5
    assert max(r.compression[1]["ranks"]) <= 3
    assert np.count_nonzero(m.coefs_[2]) == 10 * 16 - round(0.8 * 10 * 16)
    # checks start at constant_from; the rate counts sweeps from there
    assert sufficient_decrease(r, ALPHA).n_checked == 9 - 5
    assert rate(r).k[0] == 5


def test_tol_is_checked_only_once_the_schedules_are_constant(digits):
    # a slowly growing τ: successive Φ differ little while it grows, but the run may not stop then
    m = _fit(digits, {0: TT(rank=5)}, tau=Geometric(1.0, 1.0001, ceiling=1.0001 ** 20), tol=0.5, it=40)
    assert m.result_.constant_from == 21 and m.result_.status == 0 and m.n_iter_ >= 22


def test_never_constant_schedule_voids_the_checks(digits):
    m = _fit(digits, {0: Prune(0.8, block="masked", reselect_every=3)}, it=6)
    assert m.result_.constant_from is None
    with pytest.raises(ValueError, match="never became constant"):
        sufficient_decrease(m.result_, ALPHA)
    assert sufficient_decrease(m.result_, ALPHA, start=4).n_checked == 2


# ---- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: TT(rank=4, block="masked"), "block"),
    (lambda: Prune(0.5, block="cores"), "block"),
    (lambda: Prune(0.0, block="masked"), "sparsity > 0"),
    (lambda: Prune(0.5, scope="global", block="masked"), "scope"),
    (lambda: Prune(0.5, reselect_every=2), "reselect_every"),
    (lambda: Prune(0.5, block="masked", freeze_after=3), "freeze_after"),
    (lambda: Prune(0.5, block="masked", reselect_every=0), "reselect_every"),
    (lambda: Prune({"type": "geometric", "start": 0.5, "factor": 2.0, "ceiling": 1.5}), "sparsity"),
    (lambda: TT(rank={"type": "geometric", "start": 0, "factor": 0.5, "floor": 1}), "rank"),
    (lambda: TT(rank=Geometric(8.5, 0.5, floor=2.0)), "rank"),  # an integer schedule needs integral values
    (lambda: TT(rank="svd"), "rank"),
    (lambda: TT(rank=4, block="cores", rank_initial=8), "rank_initial"),
    (lambda: TT(rank=4, reselect_every=2), "reselect_every"),
])
def test_bad_compression_arguments_name_the_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_a_float_rank_schedule_becomes_an_integer_one():
    assert TT(rank=Geometric(8.0, 0.5, floor=2.0)).rank == Geometric(8, 0.5, floor=2, integer=True)


@pytest.mark.parametrize("kw,match", [
    (dict(tau={"type": "geometric", "start": -1.0, "factor": 2.0}), "tau"),
    (dict(compress={0: TT(rank=4)}, tau={0: {"type": "geometric", "start": 1.0, "factor": 2.0,
                                             "ceiling": float("inf")}}), r"tau\[0\]"),
    (dict(gamma={"type": "geometric", "start": 0.5, "factor": float("nan")}), "gamma"),
    (dict(rho={"type": "piecewise", "pieces": [[1, 0.5], [3, -1.0]]}), "rho"),
    (dict(rho={"type": "linear", "start": 1.0}), "rho"),
    (dict(gamma=True), "gamma"),
    (dict(compress={0: TT(rank="evbmf", shape=(24 * 64,))}), r"compress\[0\]: rank='evbmf'"),
    (dict(compress={0: TT(rank="evbmf", shape=(1, 24 * 64))}), r"compress\[0\]: rank='evbmf'"),
    (dict(compress={0: Prune(0.5, block="masked")}, tau={0: 2.0}), "exact block"),
])
def test_bad_schedules_and_layouts_name_the_argument(digits, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _fit(digits, it=1, **kw)


def test_preset_with_schedule_tables_and_exact_blocks(tmp_path):
    """TOML tables for τ, γ, a rank cap and a sparsity; block and reselection keys in [[compress]]."""
    import json
    import tomllib

    from nnbcd.runners import nnbcd as runner

    config = tomllib.loads("""
method = "nnbcd"
name = "schedules"
[data]
name = "digits"
[model]
hidden_layer_sizes = [32, 32, 16]
dtype = "float64"
random_state = 0
tau = {type = "geometric", start = 1.0, factor = 2.0, ceiling = 4.0}
gamma = {type = "piecewise", pieces = [[1, 0.3], [3, 0.5]]}
[[compress]]
type = "tt"
layers = [0]
block = "cores"
rank = {type = "geometric", start = 8, factor = 0.5, floor = 4}
[[compress]]
type = "prune"
layers = [1]
block = "masked"
sparsity = {type = "piecewise", pieces = [[1, 0.5], [2, 0.8]]}
reselect_every = 2
freeze_after = 4
[[compress]]
type = "tt"
layers = [2]
rank = 3
[fit]
max_iter = 6
monitor_every = 1
""")
    summary = runner.run(config, tmp_path, quiet=True)
    res = json.loads((tmp_path / "result.json").read_text())
    h = res["history"]
    assert h["tau_2"] == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0] and "tau_0" not in h and "tau_1" not in h
    assert h["gamma"] == [0.3, 0.3] + [0.5] * 4
    assert h["rank_0"] == [8, 4, 4, 4, 4, 4] and h["sparsity_1"] == [0.5] + [0.8] * 5
    assert res["constant_from"] == summary["constant_from"] == 4
    assert max(res["compression"]["0"]["ranks"]) <= 4 and res["compression"]["1"]["sparsity"] == pytest.approx(0.8,
                                                                                                           abs=1e-3)
    assert "sufficient_decrease" not in summary  # layer 2 has the projection block


# ---- EVBMF-chosen TT ranks --------------------------------------------------------------------------

def _planted_tt(rng, modes, ranks, noise):
    cores = [rng.standard_normal((ranks[t], n, ranks[t + 1])) for t, n in enumerate(modes)]
    T = tl_tt_to_tensor(cores)
    T = T / np.linalg.norm(T)
    return T + noise * rng.standard_normal(T.shape) / np.sqrt(T.size)


@pytest.mark.parametrize("layout", ["reshape", "matrix"])
def test_evbmf_ranks_are_each_unfoldings_evbmf_rank(rng, layout):
    from nnbcd.ops import evbmf

    if layout == "reshape":
        spec, modes = TT(rank="evbmf", shape=(4, 8, 8, 4)), (4, 8, 8, 4)
        T = _planted_tt(rng, modes, (1, 3, 5, 3, 1), 0.05)
        W = T.reshape(32, 32)
    else:
        spec = TT(rank="evbmf", layout="matrix", row_shape=(4, 8), col_shape=(8, 4))
        modes = (32, 32)
        T = _planted_tt(rng, modes, (1, 6, 1), 0.05)
        W = T.reshape(4, 8, 8, 4).transpose(0, 2, 1, 3).reshape(32, 32)  # (o1, c1, o2, c2) -> rows, cols
    spec.validate(W.shape, "compress[0]")
    out = spec.project(W)
    expect = [1] + [evbmf(T.reshape(int(np.prod(modes[:t])), -1)).rank for t in range(1, len(modes))] + [1]
    assert out.info["ranks"] == expect == ([1, 3, 5, 3, 1] if layout == "reshape" else [1, 6, 1])
    assert np.linalg.norm(out.dense - W) < 0.1 * np.linalg.norm(W)  # the planted signal survives, the noise not


@pytest.mark.parametrize("block", ["projection", "cores"])
def test_evbmf_ranks_reestimated_on_schedule_then_frozen(digits, block):
    spec = TT(rank="evbmf", block=block, reselect_every=3, freeze_after=6)
    m = _fit(digits, {0: spec, 1: TT(rank="evbmf", block=block)}, tau=5.0 if block == "projection" else 0.0, it=9)
    h, r = m.result_.history, m.result_
    ranks = h["rank_0"]
    assert np.all(ranks[0:2] == ranks[0]) and np.all(ranks[3:5] == ranks[3]) and np.all(ranks[6:] == ranks[6])
    assert r.constant_from is None  # layer 1 re-estimates every sweep: never frozen
    assert max(r.compression[0]["ranks"]) == ranks[-1] and "cr_2" in h and 0 < h["cr_2"][-1] <= 1
    assert TT(rank="evbmf").reselect_every == 1 and spec.constant_from == 6


@pytest.mark.parametrize("make", [
    lambda: TT(rank=Piecewise([(1, 12), (4, 4)]), block="cores", exact_from=6),
    lambda: Prune(Piecewise([(1, 0.5), (4, 0.8)]), block="masked", exact_from=6),
])
def test_projection_warm_up_then_exact_block(digits, make):
    """exact_from: the paper's projection + τ (here with a scheduled cap / sparsity) until sweep 5, the exact
    block from sweep 6 on, its structure chosen then from the dense W-block's step."""
    spec = make()
    assert [spec.exact_at(k) for k in (1, 5, 6, 9)] == [False, False, True, True]
    assert spec.reselects(6) and not spec.reselects(7) and spec.constant_from == 6
    m = _fit(digits, {0: spec, 1: make()}, tau=Geometric(1.0, 2.0, ceiling=4.0), it=10)
    h, r = m.result_.history, m.result_
    assert np.all(h["comp_0"][:5] > 0) and np.all(h["comp_0"][5:] == 0)
    assert np.all(h["time_comp"][5:] == 0) and np.all(h["time_comp"][:5] > 0)
    assert r.constant_from == 6 and _non_increasing(h["objective"][5:])
    assert sufficient_decrease(r, ALPHA).ok
    np.testing.assert_array_equal(m.coefs_[0], m.state_.W[0])  # deployed = trained from the switch on
    if isinstance(spec, Prune):
        assert np.count_nonzero(m.coefs_[0]) == 24 * 64 - round(0.8 * 24 * 64)
    else:
        assert max(r.compression[0]["ranks"]) <= 4


def test_exact_from_arguments():
    with pytest.raises(ValueError, match="exact_from"):
        TT(rank=4, exact_from=3)
    with pytest.raises(ValueError, match="exact_from"):
        Prune(0.5, block="masked", exact_from=0)
    TT(rank=4, block="cores", rank_initial=30, exact_from=5)  # the warm-up's initial copy may be wider


@pytest.mark.parametrize("spec,warned", [
    (TT(rank=4), True),  # a projection block with τ = 0 never acts on the weights
    (TT(rank=4, block="cores", exact_from=3), False),  # an uncoupled warm-up before the exact block is meant
])
def test_tau_zero_warns_only_for_projection_blocks(digits, caplog, spec, warned):
    with caplog.at_level("WARNING", logger="nnbcd.bcd.estimator"):
        _fit(digits, compress={1: spec}, it=2, tau=0.0)
    assert ("tau is 0" in caplog.text) == warned
