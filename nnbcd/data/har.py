"""UCI-HAR (human activity recognition): 561 features in [-1, 1], 6 classes, 7352 train / 2947 test.

Read from a local copy of the original archive's folder (no extra scaling, as the NN-BCD reference)."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ._checks import check_dtype
from ._paths import find_dataset, open_maybe_gz

LAYOUT = """  <root>/UCI HAR Dataset/train/X_train.txt   (whitespace-separated, 561 columns)
  <root>/UCI HAR Dataset/train/y_train.txt   (labels 1..6)
  <root>/UCI HAR Dataset/test/X_test.txt
  <root>/UCI HAR Dataset/test/y_test.txt"""
FILES = ("train/X_train.txt", "train/y_train.txt", "test/X_test.txt", "test/y_test.txt")
N_FEATURES = 561


def load_har(path: Optional[str] = None, dtype: Any = "float32") -> Tuple[np.ndarray, ...]:
    """UCI-HAR as ``(X_train, y_train, X_test, y_test)``, samples as rows.

    Parameters
    ----------
    path : str, optional
        Directory holding ``UCI HAR Dataset/`` (or its contents); default ``$NNBCD_DATA``, then the cache
        directory.
    dtype : real floating dtype
        Dtype of the features (as stored, in [-1, 1]).

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features ``(n, 561)``; labels ``(n,)`` int64 in 0..5 (the file's 1..6 minus one).

    Raises
    ------
    FileNotFoundError
        No copy found (the message lists the paths searched and the layout).
    ValueError
        A feature file without 561 columns, a label that is not an integer in 1..6, or unequal counts.
    TypeError
        A non-floating ``dtype``.
    """
    dt = check_dtype(dtype)
    root = find_dataset("UCI-HAR", ["UCI HAR Dataset"], FILES, path, LAYOUT)
    out = []
    for f in FILES:
        is_x = f.split("/")[1].startswith("X")
        with open_maybe_gz(root / f) as fh:
            arr = np.loadtxt(fh, ndmin=2 if is_x else 1)
        if is_x:
            if arr.shape[1] != N_FEATURES:
                raise ValueError(f"{root / f}: expected {N_FEATURES} feature columns, found {arr.shape[1]}")
            out.append(arr.astype(dt))
        else:
            if not np.isin(arr, np.arange(1, 7)).all():
                bad = arr[~np.isin(arr, np.arange(1, 7))][0]
                raise ValueError(f"{root / f}: labels must be integers 1..6, found {bad!r}")
            out.append(arr.astype(np.int64) - 1)
    for (x, y), part in ((out[:2], "train"), (out[2:], "test")):
        if len(x) != len(y):
            raise ValueError(f"UCI-HAR {part}: {len(x)} feature rows but {len(y)} labels")
    return tuple(out)
