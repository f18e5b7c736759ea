"""UCI-HAR (human activity recognition): 561 features in [-1, 1], 6 classes, 7352 train / 2947 test.

Read from a local copy of the original archive's folder (no extra scaling, as the NN-BCD reference)."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ._paths import find_dataset, open_maybe_gz

LAYOUT = """  <root>/UCI HAR Dataset/train/X_train.txt   (whitespace-separated, 561 columns)
  <root>/UCI HAR Dataset/train/y_train.txt   (labels 1..6)
  <root>/UCI HAR Dataset/test/X_test.txt
  <root>/UCI HAR Dataset/test/y_test.txt"""
FILES = ("train/X_train.txt", "train/y_train.txt", "test/X_test.txt", "test/y_test.txt")


def load_har(path: Optional[str] = None, dtype: Any = "float32") -> Tuple[np.ndarray, ...]:
    """``(X_train, y_train, X_test, y_test)``: samples as rows, labels 0..5."""
    root = find_dataset("UCI-HAR", ["UCI HAR Dataset"], FILES, path, LAYOUT)
    out = []
    for f in FILES:
        with open_maybe_gz(root / f) as fh:
            arr = np.loadtxt(fh, ndmin=2 if f.split("/")[1].startswith("X") else 1)
        if f.split("/")[1].startswith("y"):
            labels = arr.astype(np.int64) - 1
            if labels.min() < 0 or labels.max() > 5:
                raise ValueError(f"{root / f}: labels must be 1..6, found {labels.min() + 1}..{labels.max() + 1}")
            out.append(labels)
        else:
            if arr.shape[1] != 561:
                raise ValueError(f"{root / f}: expected 561 feature columns, found {arr.shape[1]}")
            out.append(arr.astype(dtype))
    for (x, y), part in ((out[:2], "train"), (out[2:], "test")):
        if len(x) != len(y):
            raise ValueError(f"UCI-HAR {part}: {len(x)} feature rows but {len(y)} labels")
    return tuple(out)
