r"""Solar-flare (M class) data of Liu et al. 2019 ("LSTM-flare"): normalised CSVs with 40 features.

Each row: the flare class label in column 0, then bookkeeping columns, and from column 5 on the 40
normalised SHARP features. A row is positive when its class is M or X (M-class-and-above prediction)
and negative otherwise (N, B, C); labels given as 0/1 are used as they are. The training set is the
training and validation files together with the negatives undersampled (seeded) to the number of
positives (8,114 = 4,057 + 4,057 in the reference); the test set is left imbalanced (44,689 rows,
1,278 positive)."""
from __future__ import annotations

import csv
from typing import Any, Optional, Tuple

import numpy as np

from ._checks import check_dtype, check_seed
from ._paths import find_dataset, open_maybe_gz

FILES = ("normalized_training.csv", "normalized_validation.csv", "normalized_testing.csv")
LAYOUT = """  <root>/flare/normalized_training.csv
  <root>/flare/normalized_validation.csv
  <root>/flare/normalized_testing.csv
  (label in column 0: N/B/C negative, M/X positive, or 0/1; features in columns 5..44)"""
N_FEATURES = 40


def _read(path: Any) -> Tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    with open_maybe_gz(path, "rt") as fh:
        for k, row in enumerate(csv.reader(fh)):
            if not row:
                continue
            label = row[0].strip().upper()
            if k == 0 and label and not label[0].isdigit() and label[0] not in "NBCMX":
                continue  # a header line
            if label[:1] in ("M", "X") or label == "1":
                labels.append(1)
            elif label[:1] in ("N", "B", "C", "A") or label == "0":
                labels.append(0)
            else:
                raise ValueError(f"{path}: row {k + 1} has label {row[0]!r}; expected a flare class or 0/1")
            feats = row[5:5 + N_FEATURES]
            if len(feats) != N_FEATURES:
                raise ValueError(f"{path}: row {k + 1} has {len(row)} columns; need 5 + {N_FEATURES}")
            try:
                rows.append([float(v) for v in feats])
            except ValueError as err:
                raise ValueError(f"{path}: row {k + 1}: {err}") from None
    return np.array(rows, dtype=np.float64).reshape(len(rows), N_FEATURES), np.array(labels, dtype=np.int64)


def load_flare(path: Optional[str] = None, dtype: Any = "float64", seed: int = 0) -> Tuple[np.ndarray, ...]:
    """Solar-flare data as ``(X_train, y_train, X_test, y_test)``, training data balanced.

    Parameters
    ----------
    path : str, optional
        Directory holding ``flare/`` (or the three CSVs); default ``$NNBCD_DATA``, then the cache directory.
    dtype : real floating dtype
        Dtype of the features.
    seed : int ≥ 0
        Seed of ``numpy.random.default_rng`` choosing the negatives kept.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features ``(n, 40)``; labels ``(n,)`` int64, 1 for M/X flares. Training: every positive row of the
        training and validation files and as many negatives drawn without replacement (original order);
        test: the testing file as it is.

    Raises
    ------
    FileNotFoundError
        No copy found (the message lists the paths searched and the layout).
    ValueError
        An unknown label, a short row, a non-numeric feature, no positive training row, or a bad ``seed``.
    TypeError
        A non-floating ``dtype``.
    """
    dt, rng_seed = check_dtype(dtype), check_seed(seed)
    root = find_dataset("solar flare", ["flare"], FILES, path, LAYOUT)
    parts = [_read(root / f) for f in FILES]
    x = np.concatenate([parts[0][0], parts[1][0]])
    y = np.concatenate([parts[0][1], parts[1][1]])
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0:
        raise ValueError(f"{root}: the training files hold no positive (M/X) rows")
    rng = np.random.default_rng(rng_seed)
    keep = np.sort(np.concatenate([pos, rng.choice(neg, size=min(len(pos), len(neg)), replace=False)]))
    return x[keep].astype(dt), y[keep], parts[2][0].astype(dt), parts[2][1]
