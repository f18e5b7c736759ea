"""DaskNNBCD on a 2-worker LocalCluster: the same iterates as the single-process NNBCD (the oracle), for
dense, TT and pruned layers, biases, a conv first layer and any sharding; bad inputs; a lost worker."""
import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from sklearn.datasets import load_digits  # noqa: E402

from nnbcd import NNBCD, InputConv2d, Prune, TT  # noqa: E402
from nnbcd.dask import DaskNNBCD  # noqa: E402
from nnbcd.result import Status  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    # not the default client: a test checks the error without one
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _assert_same_iterates(a, b, rtol=1e-10):
    """Weights (deployed and trained), biases and objective of two fits agree to ``rtol`` relative."""
    assert a.n_iter_ == b.n_iter_ and a.result_.status == b.result_.status
    for name in ("W", "W_deployed"):
        for wa, wb in zip(a.result_.x[name], b.result_.x[name]):
            assert np.abs(wa - wb).max() <= rtol * np.abs(wa).max(), name
    for ba, bb in zip(a.intercepts_, b.intercepts_):
        assert (ba is None) == (bb is None)
        if ba is not None:
            assert np.abs(ba - bb).max() <= rtol * max(np.abs(ba).max(), 1e-300)
    for key in ("objective", "loss", "acc", "bacc", "prox_step_sq"):
        np.testing.assert_allclose(b.result_.history[key], a.result_.history[key], rtol=rtol, err_msg=key)


CASES = {
    "dense": lambda: {},
    "tt": lambda: {"compress": {0: TT(rank=4)}, "tau": 2.0},
    "tt-cores": lambda: {"compress": {0: TT(rank=4, block="cores")}},
    "prune-split": lambda: {"compress": {0: Prune(0.8), 1: Prune(0.5)}, "tau": 2.0},
    "prune-masked": lambda: {"compress": {0: Prune(0.8, block="masked"), 1: Prune(0.5, block="masked")}},
}


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", list(CASES))
def test_same_iterates_as_nnbcd(client, digits, case, bias):
    X, y = digits[0][:300], digits[1][:300]
    params = dict(hidden_layer_sizes=(24, 16), max_iter=5, random_state=0, bias=bias, **CASES[case]())
    a = NNBCD(**params).fit(X, y)
    b = DaskNNBCD(client=client, n_shards=3, **params).fit(X, y)
    _assert_same_iterates(a, b)
    assert b.n_shards_ == 3 and b.coefs_[0].shape == a.coefs_[0].shape
    np.testing.assert_array_equal(b.predict(X), a.predict(X))


def test_conv_first_layer(client, digits):
    X, y = digits[0][:200], digits[1][:200]
    params = dict(hidden_layer_sizes=(16,), conv=InputConv2d((1, 8, 8), filters=3, kernel=3, stride=2), bias=True,
                  max_iter=5, random_state=1)
    _assert_same_iterates(NNBCD(**params).fit(X, y), DaskNNBCD(client=client, n_shards=2, **params).fit(X, y))


@pytest.mark.parametrize("chunks,n_shards", [((70, 150, 80), None), (None, 1), (None, 5)],
                         ids=["unequal-dask-chunks", "one-shard", "more-shards-than-workers"])
def test_any_sharding_gives_the_same_iterates(client, digits, chunks, n_shards):
    X, y = digits[0][:300], digits[1][:300]
    params = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=2, bias=True, loss_scale="mean")
    a = NNBCD(**params).fit(X, y)
    if chunks is not None:
        b = DaskNNBCD(client=client, **params).fit(da.from_array(X, chunks=(chunks, 64)), da.from_array(y, chunks=chunks))
        assert b.n_shards_ == len(chunks)
        assert b.predict(da.from_array(X, chunks=(chunks, 64))).compute().tolist() == a.predict(X).tolist()
    else:
        b = DaskNNBCD(client=client, n_shards=n_shards, **params).fit(X, y)
        assert b.n_shards_ == n_shards
    _assert_same_iterates(a, b)


def test_same_test_accuracy_after_50_sweeps(client, digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(32,), max_iter=50, monitor_every=25, random_state=0)
    a = NNBCD(**params).fit(X[:1200], y[:1200])
    b = DaskNNBCD(client=client, **params).fit(da.from_array(X[:1200], chunks=(400, 64)),
                                                da.from_array(y[:1200], chunks=400))
    assert a.score(X[1200:], y[1200:]) > 0.75  # learnt something (0.80): the point is the equality below
    assert b.score(X[1200:], y[1200:]) == a.score(X[1200:], y[1200:])
    # the history says what moved: weights out to the shards, statistics back, per sweep
    h = b.result_.history
    assert (h["bytes_sent"][1:] > 0).all() and (h["bytes_received"] > 0).all()


def test_weights_travel_once_per_worker(client, digits):
    """5 shards on 2 workers: each sweep sends every layer's new weights once to each of the 2 workers (they
    are scattered, not embedded in each shard's task), so a steady sweep moves 2 × Σ W_i's bytes out."""
    X, y = digits
    m = DaskNNBCD((32, 16), client=client, n_shards=5, max_iter=4, monitor_every=10, random_state=0).fit(X[:500], y[:500])
    weights = sum(w.nbytes for w in m.coefs_)
    np.testing.assert_array_equal(m.result_.history["bytes_sent"][1:], 2 * weights)


def test_dask_follows_the_alpha_schedule(client, digits):
    """A scheduled α (issue 11) reaches the shards' blocks and the client's: NNBCD's iterates and α history."""
    from nnbcd.schedules import Piecewise

    X, y = digits[0][:300], digits[1][:300]
    params = dict(hidden_layer_sizes=(24, 16), alpha=Piecewise([(1, 1.0), (3, 0.1)]), bias=True, max_iter=5,
                  random_state=0)
    b = DaskNNBCD(client=client, n_shards=2, **params).fit(X, y)
    a = NNBCD(**params).fit(X, y)
    assert list(b.result_.history["alpha"]) == [1.0, 1.0, 0.1, 0.1, 0.1]
    _assert_same_iterates(a, b)


@pytest.mark.parametrize("case", ["dense", "tt-cores", "prune-masked"])
def test_dask_over_relaxes_as_nnbcd(client, digits, case):
    """relaxation = ω reaches the shards' U/V blocks and the client's W-blocks: NNBCD's iterates."""
    X, y = digits[0][:300], digits[1][:300]
    params = dict(hidden_layer_sizes=(24, 16), relaxation=1.7, bias=True, max_iter=4, random_state=0, **CASES[case]())
    a = NNBCD(**params).fit(X, y)
    b = DaskNNBCD(client=client, n_shards=2, **params).fit(X, y)
    _assert_same_iterates(a, b)
    plain = NNBCD(**dict(params, relaxation=1.0)).fit(X, y)
    assert a.result_.history["objective"][-1] != plain.result_.history["objective"][-1]


def test_an_explicit_client_is_shared_by_clones_and_left_out_of_pickles(client, digits):
    """clone (scikit-learn's model selection) shares a live client instead of deep-copying it (it failed: sockets
    and an event loop do not copy); a pickle leaves it out, and the unpickled model predicts the same."""
    import pickle

    from sklearn.base import clone

    X, y = digits[0][:200], digits[1][:200]
    m = DaskNNBCD((8,), client=client, max_iter=2, random_state=0)
    twin = clone(m)
    assert twin is not m and twin.client is client and twin.get_params()["max_iter"] == 2
    m.fit(X, y)
    back = pickle.loads(pickle.dumps(m))
    assert back.client is None and (back.predict(X) == m.predict(X)).all()


def test_empty_row_chunks_are_no_shards(client, digits):
    """A dask array with an empty row chunk (a filter leaves them): the empty chunk is skipped (it crashed inside
    a worker's GEMM), the run equals NNBCD on the rows."""
    X, y = digits[0][:200], digits[1][:200]
    b = DaskNNBCD((8,), client=client, max_iter=3, random_state=0).fit(
        da.from_array(X, chunks=((0, 120, 0, 80), (64,))), da.from_array(y, chunks=((0, 120, 0, 80),)))
    assert b.n_shards_ == 2
    a = NNBCD((8,), max_iter=3, random_state=0).fit(X, y)
    _assert_same_iterates(a, b)
    Xd, yd = da.from_array(X, chunks=((0, 120, 0, 80), (64,))), da.from_array(y, chunks=((0, 120, 0, 80),))
    np.testing.assert_array_equal(b.predict(Xd).compute(), a.predict(X))  # and so do predict / score
    assert b.score(Xd, yd) == a.score(X, y)


def test_bad_inputs_name_the_argument(client, digits):
    X, y = digits[0][:100], digits[1][:100]
    m = DaskNNBCD((8,), client=client, max_iter=1)
    with pytest.raises(ValueError, match="X is chunked along its columns"):
        m.fit(da.from_array(X, chunks=(50, 32)), da.from_array(y, chunks=50))
    with pytest.raises(ValueError, match="X and y have different row chunks"):
        m.fit(da.from_array(X, chunks=(50, 64)), da.from_array(y, chunks=25))
    with pytest.raises(TypeError, match="X and y must both be dask arrays"):
        m.fit(da.from_array(X, chunks=(50, 64)), y)
    with pytest.raises(ValueError, match="n_shards"):
        DaskNNBCD((8,), client=client, n_shards=2).fit(da.from_array(X, chunks=(50, 64)), da.from_array(y, chunks=50))
    with pytest.raises(ValueError, match="n_shards"):
        DaskNNBCD((8,), client=client, n_shards=0).fit(X, y)
    with pytest.raises(ValueError, match="w_solve"):
        DaskNNBCD((8,), client=client, w_solve="woodbury").fit(X, y)
    with pytest.raises(ValueError, match="client"):  # the module's client is not the default one
        DaskNNBCD((8,), max_iter=1).fit(X, y)
    with pytest.raises(TypeError, match="client"):
        DaskNNBCD((8,), client="tcp://localhost:8786").fit(X, y)
    closed = distributed.Client(distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None),
                                set_as_default=False)
    closed.cluster.close()
    closed.close()
    with pytest.raises(ValueError, match="client is closed"):
        DaskNNBCD((8,), client=closed).fit(X, y)
    bad = X.copy()
    bad[70, 3] = np.nan
    with pytest.raises(ValueError, match="X"):
        m.fit(da.from_array(bad, chunks=(50, 64)), da.from_array(y, chunks=50))


def test_lost_worker_stops_with_the_last_complete_iterate(digits, caplog):
    """A worker killed after sweep 2 ends the run with status 5 and sweep 2's weights (those of NNBCD's
    2-sweep run): its shard is gone and Dask cannot rebuild its U, V."""
    X, y = digits[0][:200], digits[1][:200]
    params = dict(hidden_layer_sizes=(16,), max_iter=6, random_state=0)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        victim = sorted(client.nthreads())[0]  # holds shard 0
        pid = client.run(os.getpid, workers=[victim])[victim]

        def kill_after_sweep_2(result):
            if result.nit == 2:
                os.kill(pid, signal.SIGKILL)

        m = DaskNNBCD(client=client, n_shards=2, **params)
        m.fit(X, y, callback=kill_after_sweep_2)
    assert m.result_.status == Status.WORKER_LOST == 5 and not m.result_.success
    assert m.n_iter_ == m.result_.history.n_iter == 3  # the failed sweep counts and keeps its record, as status 2
    assert "lost a worker after 2 complete sweeps" in caplog.text and "failed sweep 3" in caplog.text
    ref = NNBCD(**dict(params, max_iter=2)).fit(X, y)
    for wa, wb in zip(ref.coefs_, m.coefs_):
        assert np.abs(wa - wb).max() <= 1e-10 * np.abs(wa).max()


# ---- checkpoint / resume of a distributed run (issue 13 item 3) -----------------------------------------------
def _stop_at(sweep):
    def callback(r):
        if r.nit == sweep:
            raise KeyboardInterrupt
    return callback


def _assert_same_run(a, b, rtol=0.0):
    """Weights, biases, compressed copies and every history column but wall times and bytes moved equal:
    bit for bit with ``rtol=0`` (np.array_equal), else to ``rtol`` relative."""
    def same(x, y, what):
        if rtol == 0.0:
            assert np.array_equal(x, y, equal_nan=True), what
        else:
            np.testing.assert_allclose(y, x, rtol=rtol, atol=rtol * np.nanmax(np.abs(x)), err_msg=what)

    assert a.n_iter_ == b.n_iter_ and a.result_.status == b.result_.status
    for name in ("W", "b"):
        for i, (x, y) in enumerate(zip(getattr(a.state_, name), getattr(b.state_, name))):
            assert (x is None) == (y is None)
            if x is not None:
                same(x, y, f"{name}[{i}]")
    assert a.state_.Wt.keys() == b.state_.Wt.keys()
    for i in a.state_.Wt:
        same(a.state_.Wt[i].dense, b.state_.Wt[i].dense, f"Wt[{i}]")
    ha, hb = a.result_.history, b.result_.history
    keys = [k for k in ha if not k.startswith(("time", "bytes"))]
    assert keys == [k for k in hb if not k.startswith(("time", "bytes"))]
    for key in keys:
        same(ha[key], hb[key], key)


RESUME = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0, bias=True, monitor_every=3)


@pytest.fixture(scope="module")
def uninterrupted(client, digits):
    """10 sweeps of a 3-shard DaskNNBCD run, never stopped, per compression case."""
    X, y = digits[0][:300], digits[1][:300]
    return {case: DaskNNBCD(client=client, n_shards=3, **RESUME, **CASES[case]()).fit(X, y)
            for case in ("tt", "prune-masked")}


@pytest.mark.parametrize("case", ["tt", "prune-masked"])
def test_resume_on_the_same_shards_is_bit_for_bit(client, digits, uninterrupted, case, tmp_path):
    X, y = digits[0][:300], digits[1][:300]
    params = dict(RESUME, n_shards=3, checkpoint_every=5, checkpoint_dir=tmp_path, **CASES[case]())
    stopped = DaskNNBCD(client=client, **params).fit(X, y, callback=_stop_at(7))
    assert stopped.result_.status == Status.INTERRUPTED and stopped.n_iter_ == 7
    # the shards wrote their own columns; the client the weights, history and the ranges
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].name.startswith("shards-000005-")
    assert sorted(p.name for p in folders[0].iterdir()) == ["shard-0-100.npz", "shard-100-200.npz",
                                                            "shard-200-300.npz"]
    with np.load(tmp_path / "checkpoint.npz") as npz:
        assert not any(k.startswith(("U.", "V.")) for k in npz.files)
    resumed = DaskNNBCD(client=client, **params).fit(X, y, resume=tmp_path)
    _assert_same_run(uninterrupted[case], resumed)
    assert [p.name[:14] for p in tmp_path.iterdir() if p.is_dir()] == ["shards-000010-"]  # the older set is gone


@pytest.mark.parametrize("resume_on", ["2-shards", "dask-chunks"])
def test_resume_on_other_shards(client, digits, uninterrupted, resume_on, tmp_path):
    """Checkpointed on 3 shards, resumed on 2 (or 4 unequal dask chunks) over the 2 workers: each new shard
    reads its columns from the files that overlap it. The W-block's sums are then grouped differently
    (rounding), so the run equals the uninterrupted one to 1e-12 relative, not bit for bit."""
    X, y = digits[0][:300], digits[1][:300]
    params = dict(RESUME, checkpoint_every=5, checkpoint_dir=tmp_path, **CASES["tt"]())
    DaskNNBCD(client=client, n_shards=3, **params).fit(X, y, callback=_stop_at(6))
    if resume_on == "2-shards":
        resumed = DaskNNBCD(client=client, n_shards=2, **params).fit(X, y, resume=tmp_path)
    else:
        chunks = (40, 130, 90, 40)
        resumed = DaskNNBCD(client=client, **params).fit(da.from_array(X, chunks=(chunks, 64)),
                                                         da.from_array(y, chunks=chunks), resume=tmp_path)
    assert resumed.n_shards_ == (2 if resume_on == "2-shards" else 4)
    _assert_same_run(uninterrupted["tt"], resumed, rtol=1e-12)


def test_single_process_and_distributed_checkpoints_resume_each_other(client, digits, tmp_path):
    X, y = digits[0][:300], digits[1][:300]
    params = dict(RESUME, checkpoint_every=5, **CASES["tt"]())
    reference = NNBCD(**RESUME, **CASES["tt"]()).fit(X, y)
    NNBCD(**params, checkpoint_dir=tmp_path / "single").fit(X, y, callback=_stop_at(6))
    DaskNNBCD(client=client, n_shards=3, **params, checkpoint_dir=tmp_path / "dask").fit(X, y, callback=_stop_at(6))
    on_dask = DaskNNBCD(client=client, n_shards=2, **RESUME, **CASES["tt"]()).fit(X, y, resume=tmp_path / "single")
    on_one = NNBCD(**RESUME, **CASES["tt"]()).fit(X, y, resume=tmp_path / "dask")
    _assert_same_run(reference, on_dask, rtol=1e-10)  # NNBCD and DaskNNBCD differ by the sums' rounding
    _assert_same_run(reference, on_one, rtol=1e-10)


def test_a_shard_set_that_does_not_match_its_meta_is_refused(client, digits, tmp_path):
    X, y = digits[0][:300], digits[1][:300]
    params = dict(RESUME, n_shards=2, max_iter=2)
    DaskNNBCD(client=client, **params, checkpoint_every=1, checkpoint_dir=tmp_path / "a").fit(X, y)
    DaskNNBCD(client=client, **params, checkpoint_every=1, checkpoint_dir=tmp_path / "b").fit(X, y)
    with pytest.raises(ValueError, match="resume: .*other data"):  # the same samples in another order
        DaskNNBCD(client=client, **params).fit(X[::-1], y[::-1], resume=tmp_path / "a")
    (folder_a,) = [p for p in (tmp_path / "a").iterdir() if p.is_dir()]
    (folder_b,) = [p for p in (tmp_path / "b").iterdir() if p.is_dir()]
    # a shard file of another save (same sweep and range, other token): the set is not one checkpoint
    (folder_a / "shard-0-150.npz").write_bytes((folder_b / "shard-0-150.npz").read_bytes())
    for estimator in (DaskNNBCD(client=client, **params), NNBCD(**dict(RESUME, max_iter=2))):
        with pytest.raises(ValueError, match="resume: .*does not belong to this checkpoint.*token"):
            estimator.fit(X, y, resume=tmp_path / "a")
    (folder_b / "shard-150-300.npz").unlink()
    with pytest.raises(ValueError, match="resume: .*shard-150-300.npz.* is missing"):
        DaskNNBCD(client=client, **params).fit(X, y, resume=tmp_path / "b")
