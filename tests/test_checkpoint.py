"""Checkpoint / resume (issue 12): a resumed run equals the uninterrupted run bit for bit; bad checkpoints are
refused by name; the file is written atomically and holds no pickle."""
import json
import os
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_digits

from nnbcd import NNBCD, TT, Prune
from nnbcd.bcd import checkpoint as ckpt
from nnbcd.schedules import Constant

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:240] / 16.0, y[:240], X[240:300] / 16.0, y[240:300]


CONFIGS = {
    "dense": dict(),
    # τ on a schedule, a projection TT layer, biases, thinned monitoring, validation metrics
    "tt-schedule": dict(bias=True, compress={1: TT(4)}, monitor_every=3,
                        tau={"type": "geometric", "start": 0.1, "factor": 2.0, "ceiling": 5.0}),
    # exact blocks (pruning mask, TT cores) in float32, the tol rule armed
    "exact-float32": dict(compress={0: Prune(0.5, block="masked"), 1: TT(4, block="cores")}, tol=1e-12,
                          dtype="float32"),
    # ranks re-estimated every sweep, kept in the compressed copy's info
    "evbmf": dict(compress={1: TT("evbmf")}, tau=1.0),
}


def _stop_at(sweep):
    def callback(r):
        if r.nit == sweep:
            raise KeyboardInterrupt
    return callback


def _model(**kw):
    return NNBCD(**{"hidden_layer_sizes": (16, 16), "random_state": 0, "max_iter": 10, **kw})


def _assert_same_run(a, b):
    """Every block, compressed copy and history column (but wall times) equal, bit for bit."""
    assert a.n_iter_ == b.n_iter_ and a.result_.status == b.result_.status
    for name in ("W", "b", "U", "V"):
        for x, y in zip(getattr(a.state_, name), getattr(b.state_, name)):
            assert (x is None and y is None) or np.array_equal(x, y), name
    assert a.state_.Wt.keys() == b.state_.Wt.keys()
    for i, c in a.state_.Wt.items():
        d = b.state_.Wt[i]
        assert np.array_equal(c.dense, d.dense) and c.info == d.info and c.n_params == d.n_params
        assert (c.support is None) == (d.support is None)
        if c.support is not None:
            assert np.array_equal(c.support, d.support)
        fa = c.factors if isinstance(c.factors, list) else [c.factors]
        fb = d.factors if isinstance(d.factors, list) else [d.factors]
        assert all(np.array_equal(x, y) for x, y in zip(fa, fb)) and len(fa) == len(fb)
    ha, hb = a.result_.history, b.result_.history
    assert list(ha) == list(hb)
    for key in ha:
        if not key.startswith("time"):
            assert np.array_equal(ha[key], hb[key], equal_nan=True), key
    assert a.result_.fun == b.result_.fun or (np.isnan(a.result_.fun) and np.isnan(b.result_.fun))


@pytest.mark.parametrize("name", CONFIGS)
def test_resumed_run_equals_the_uninterrupted_run(data, name, tmp_path, caplog):
    X, y, Xv, yv = data
    kw = CONFIGS[name]
    reference = _model(**kw).fit(X, y, X_val=Xv, y_val=yv)  # 10 sweeps, never stopped
    stopped = _model(**kw, checkpoint_every=5, checkpoint_dir=tmp_path).fit(X, y, X_val=Xv, y_val=yv,
                                                                              callback=_stop_at(7))
    assert stopped.result_.status == 4 and stopped.n_iter_ == 7  # Ctrl-C after sweep 7: checkpoint at 5
    assert ckpt.load(tmp_path).iterate.sweep == 5
    resumed = _model(**kw, checkpoint_every=5, checkpoint_dir=tmp_path).fit(X, y, X_val=Xv, y_val=yv,
                                                                              resume=tmp_path)
    _assert_same_run(reference, resumed)
    np.testing.assert_array_equal(reference.predict(X), resumed.predict(X))
    assert ckpt.load(tmp_path).iterate.sweep == 10


def test_resume_stops_where_the_uninterrupted_run_converges(data, tmp_path):
    X, y, _, _ = data
    reference = _model(tol=0.1, max_iter=50).fit(X, y)
    n = reference.n_iter_
    assert reference.result_.status == 0 and n > 4  # the stopping rule compares across the checkpoint
    every = n - 2
    _model(tol=0.1, max_iter=50, checkpoint_every=every, checkpoint_dir=tmp_path).fit(X, y, callback=_stop_at(n - 1))
    resumed = _model(tol=0.1, max_iter=50).fit(X, y, resume=tmp_path)
    _assert_same_run(reference, resumed)


def test_resume_may_run_longer_than_the_checkpointed_run(data, tmp_path):
    X, y, _, _ = data
    _model(max_iter=4, checkpoint_every=2, checkpoint_dir=tmp_path).fit(X, y)
    _assert_same_run(_model(max_iter=9).fit(X, y), _model(max_iter=9).fit(X, y, resume=tmp_path / "checkpoint.npz"))


@pytest.mark.parametrize("max_iter", [4, 2])
def test_resume_at_or_past_max_iter_runs_no_sweep(data, tmp_path, max_iter):
    """A checkpoint at sweep 4 resumed with max_iter 4 or 2 returns the checkpointed run, with a warning."""
    X, y, _, _ = data
    first = _model(max_iter=4, checkpoint_every=4, checkpoint_dir=tmp_path).fit(X, y)
    with pytest.warns(UserWarning, match=f"max_iter={max_iter} but the resumed iterate has 4 sweeps"):
        again = _model(max_iter=max_iter).fit(X, y, resume=tmp_path)
    _assert_same_run(first, again)


@pytest.fixture
def saved(data, tmp_path):
    X, y, _, _ = data
    _model(max_iter=2, checkpoint_every=1, checkpoint_dir=tmp_path).fit(X, y)
    return tmp_path / ckpt.FILENAME


@pytest.mark.parametrize("change,named", [
    (dict(gamma=0.7), "gamma"), (dict(hidden_layer_sizes=(16, 8)), "hidden_layer_sizes"),
    (dict(compress={1: TT(4)}, tau=1.0), "compress"), (dict(random_state=1), "random_state"),
    (dict(dtype="float32"), "float32"),
])
def test_a_checkpoint_of_other_parameters_is_refused(data, saved, change, named):
    X, y, _, _ = data
    with pytest.raises(ValueError, match=rf"resume.*{named}"):
        _model(**change).fit(X, y, resume=saved)


def test_a_checkpoint_of_other_data_is_refused(data, saved):
    X, y, Xv, yv = data
    for args, kw in [((X[:-1], y[:-1]), {}), ((X + 1e-12, y), {}), ((X, (y + 1) % 10), {}),
                     ((X, y), dict(X_val=Xv, y_val=yv))]:
        with pytest.raises(ValueError, match="resume.*other data"):
            _model().fit(*args, resume=saved, **kw)


@pytest.mark.parametrize("alpha", [1, 1.0, Constant(1.0), {"type": "piecewise", "pieces": [[1, 1.0]]},
                                   {"type": "geometric", "start": 1, "factor": 1.0}])
def test_the_same_value_spelled_otherwise_resumes(data, tmp_path, alpha):
    """α = 1.0 (the default) is α = 1, a constant schedule, one piece or a factor of 1: the resume is accepted and
    continues the run exactly; another value is refused with both values shown as numbers."""
    X, y, _, _ = data
    _model(max_iter=2, checkpoint_every=2, checkpoint_dir=tmp_path).fit(X, y)
    _assert_same_run(_model(max_iter=3).fit(X, y), _model(max_iter=3, alpha=alpha).fit(X, y, resume=tmp_path))
    with pytest.raises(ValueError, match=r"alpha: checkpoint 1\.0, now 1\.5"):
        _model(max_iter=3, alpha=1.5).fit(X, y, resume=tmp_path)


def test_parameters_that_change_no_iterate_may_differ(data, saved, tmp_path):
    X, y, _, _ = data
    m = _model(max_iter=3, n_jobs=1, verbose=False, checkpoint_every=2, checkpoint_dir=tmp_path / "new")
    assert m.fit(X, y, resume=saved).n_iter_ == 3


def _rewrite(path, mutate):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    mutate(arrays)
    np.savez(path, **arrays)


def _write_npy(path, array):
    with open(path, "wb") as fh:  # np.save would append ".npy" to a path
        np.save(fh, array)


def _with_meta(**changes):
    def mutate(arrays):
        meta = json.loads(arrays["meta"].tobytes())
        meta.update(changes)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return mutate


def test_a_checkpoint_from_before_a_parameter_existed_resumes_at_its_default(data, tmp_path):
    """A checkpoint whose parameters lack ``relaxation`` (written before it existed) resumes as relaxation = 1.0,
    the algorithm that wrote it, and is refused for another value with both values shown."""
    X, y, _, _ = data
    _model(max_iter=2, checkpoint_every=2, checkpoint_dir=tmp_path).fit(X, y)
    path = tmp_path / ckpt.FILENAME

    def drop(arrays):
        meta = json.loads(arrays["meta"].tobytes())
        del meta["params"]["relaxation"]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    _rewrite(path, drop)
    assert "relaxation" not in ckpt.load(path, columns=False).params
    _assert_same_run(_model(max_iter=3).fit(X, y), _model(max_iter=3).fit(X, y, resume=tmp_path))
    with pytest.raises(ValueError, match=r"relaxation: checkpoint 1\.0, now 1\.5"):
        _model(max_iter=3, relaxation=1.5).fit(X, y, resume=tmp_path)


@pytest.mark.parametrize("damage,match", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated or corrupt"),
    (lambda p: p.write_bytes(b"not a zip file"), "truncated or corrupt"),
    (lambda p: _write_npy(p, np.zeros(3)), "truncated or corrupt"),
    (lambda p: _rewrite(p, _with_meta(version=2)), "format version 2"),
    (lambda p: _rewrite(p, _with_meta(version="1")), "format version '1'"),
    (lambda p: _rewrite(p, _with_meta(format="other")), "not an nnbcd checkpoint"),
    (lambda p: _rewrite(p, lambda a: a.pop("V.0")), "incomplete"),
    (lambda p: _rewrite(p, lambda a: a.pop("history.0")), "incomplete"),
])
def test_a_damaged_checkpoint_is_refused(data, saved, damage, match):
    X, y, _, _ = data
    damage(saved)
    with pytest.raises(ValueError, match=rf"resume: .*{match}"):
        _model().fit(X, y, resume=saved)


def test_a_flipped_byte_is_caught_by_the_checksum(data, saved):
    X, y, _, _ = data
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("W.0.npy")
    raw = bytearray(saved.read_bytes())
    raw[info.header_offset + 200] ^= 0xFF  # inside W.0's data, past the local header and .npy header
    saved.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="resume: .*corrupt"):
        _model().fit(X, y, resume=saved)



def test_a_damaged_zip_directory_is_refused_by_name(data, saved):
    """A flipped bit in a central-directory entry's flags (bit 0: "encrypted") or compression method surfaces
    from zipfile as RuntimeError / NotImplementedError: each must be a ValueError naming ``resume``."""
    X, y, _, _ = data
    raw = saved.read_bytes()
    entries = [k for k in range(len(raw)) if raw.startswith(b"PK\x01\x02", k)]
    assert len(entries) > 2
    for entry in entries:
        for field, bit in ((8, 0x01), (10, 0x04)):  # general-purpose flags, compression method
            damaged = bytearray(raw)
            damaged[entry + field] ^= bit
            saved.write_bytes(bytes(damaged))
            with pytest.raises(ValueError, match="resume: .*corrupt"):
                _model(max_iter=3).fit(X, y, resume=saved)

def test_missing_checkpoint_and_bad_arguments(data, tmp_path):
    X, y, _, _ = data
    with pytest.raises(FileNotFoundError, match="resume"):
        _model().fit(X, y, resume=tmp_path / "none")
    with pytest.raises(TypeError, match="resume"):
        _model().fit(X, y, resume=5)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        _model(checkpoint_every=2).fit(X, y)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _model(checkpoint_every=0, checkpoint_dir=tmp_path).fit(X, y)
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="checkpoint_dir"):
        _model(checkpoint_every=1, checkpoint_dir=tmp_path / "file").fit(X, y)
    _model(max_iter=1, checkpoint_every=1, checkpoint_dir=tmp_path).fit(X, y)
    with pytest.raises(ValueError, match="resume and warm_start"):
        _model(warm_start=True).fit(X, y, resume=tmp_path)


def test_a_failed_save_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    X, y, _, _ = data
    _model(max_iter=2, checkpoint_every=2, checkpoint_dir=tmp_path).fit(X, y)
    before = (tmp_path / ckpt.FILENAME).read_bytes()

    def disk_full(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        _model(max_iter=2, checkpoint_every=2, checkpoint_dir=tmp_path).fit(X, y)
    assert (tmp_path / ckpt.FILENAME).read_bytes() == before
    assert os.listdir(tmp_path) == [ckpt.FILENAME]  # no temporary file left behind


def test_the_file_holds_plain_arrays_and_json(saved):
    with np.load(saved, allow_pickle=False) as npz:  # raises if any member needs pickle
        arrays = {k: npz[k] for k in npz.files}
    assert all(a.dtype != object for a in arrays.values())
    meta = json.loads(arrays["meta"].tobytes())
    assert meta["version"] == ckpt.FORMAT_VERSION and meta["sweep"] == 2 and meta["params"]["gamma"] == "0.5"


def test_the_data_digest_adds_over_any_split_of_the_rows(data):
    """The fingerprint a sharded run computes from its shards (any sharding) is the one of the whole data,
    and it still sees one changed value or two swapped rows."""
    X, y, _, _ = data
    whole = ckpt.row_digest(X, y)
    for cuts in ([100], [1, 239], [17, 80, 200]):
        edges = [0, *cuts, len(X)]
        parts = [ckpt.row_digest(X[a:b], y[a:b], a) for a, b in zip(edges[:-1], edges[1:])]
        assert np.array_equal(np.sum(parts, axis=0, dtype=np.uint64), whole)
    changed = X.copy()
    changed[5, 3] = np.nextafter(changed[5, 3], 1.0)
    swapped = X[[1, 0, *range(2, len(X))]]
    for other, labels in [(changed, y), (swapped, y), (X, np.roll(y, 1))]:
        assert not np.array_equal(ckpt.row_digest(other, labels), whole)
