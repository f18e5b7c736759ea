"""Validation at the API boundary: every message names the argument that is wrong."""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np


def check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    """``value`` as a float > 0 (or ≥ 0), finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_matrix(x: Any, name: str) -> np.ndarray:
    """A finite 2-D float array (rows are samples) on the host."""
    if hasattr(x, "get") and not isinstance(x, np.ndarray):
        x = x.get()
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} NaN/Inf value(s)")
    return arr


def check_targets(y: Any, n_samples: int, n_classes: int, name: str = "y") -> Tuple[np.ndarray, np.ndarray]:
    """Integer labels (n,) or one-hot (n, K) -> (labels, one-hot float64 (K, n))."""
    if hasattr(y, "get") and not isinstance(y, np.ndarray):
        y = y.get()
    arr = np.asarray(y)
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} samples but X has {n_samples}")
    if arr.ndim == 2:
        if arr.shape[1] != n_classes:
            raise ValueError(f"{name} is one-hot with {arr.shape[1]} columns but the last layer has {n_classes}")
        if not (np.isin(arr, (0, 1)).all() and (arr.sum(axis=1) == 1).all()):
            raise ValueError(f"{name} is 2-D but not one-hot (each row must hold a single 1)")
        labels = arr.argmax(axis=1)
    elif arr.ndim == 1:
        if not (np.issubdtype(arr.dtype, np.integer) or (np.issubdtype(arr.dtype, np.floating)
                                                         and np.all(np.mod(arr, 1) == 0))):
            raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
        labels = arr.astype(np.int64)
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(
                f"{name} has labels in [{labels.min()}, {labels.max()}] but the last layer has "
                f"{n_classes} classes (labels must be 0..{n_classes - 1})"
            )
    else:
        raise ValueError(f"{name} must be 1-D labels or 2-D one-hot, got shape {arr.shape}")
    onehot = np.zeros((n_classes, n_samples))
    onehot[labels, np.arange(n_samples)] = 1.0
    return labels, onehot


def check_layers(layers: Any, name: str = "layers") -> Tuple[int, ...]:
    """At least two positive integer widths (d_0, ..., d_L)."""
    try:
        widths = tuple(int(d) for d in layers)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of integer widths, got {layers!r}") from None
    if len(widths) < 2 or any(d < 1 for d in widths) or any(int(d) != d for d in layers):
        raise ValueError(f"{name} must hold ≥ 2 positive integer widths (d_0, ..., d_L), got {layers!r}")
    return widths


def check_choice(value: Any, choices: Tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}")
    return value


def check_int(value: Any, name: str, minimum: int = 1, optional: bool = False) -> Optional[int]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)
