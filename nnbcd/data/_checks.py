"""Argument checks shared by every loader: each message names the argument that is wrong."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_int, check_real


def check_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a real floating numpy dtype.

    Features are scaled to [0, 1] or standardised, so an integer or bool dtype would truncate them
    (pixels become 0/1) and a complex one is meaningless: both are refused.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype={dtype!r} is not a numpy dtype; use 'float32' or 'float64'") from None
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"dtype={dtype!r} is not a real floating dtype (features are scaled to [0, 1] or "
                        "standardised and would be truncated); use 'float32' or 'float64'")
    return dt


def check_test_size(test_size: Any) -> float:
    """``test_size`` as a float in the open interval (0, 1) (the fraction held out for testing)."""
    return check_real(test_size, "test_size", 0.0, 1.0, low_open=True, high_open=True)


def check_fraction(fraction: Any) -> float:
    """``fraction`` as a float in (0, 1] (the share of a split that is kept)."""
    return check_real(fraction, "fraction", 0.0, 1.0, low_open=True)


def check_seed(seed: Any) -> int:
    """``seed`` as a non-negative integer (numpy's and scikit-learn's seeds must be ≥ 0)."""
    return int(check_int(seed, "seed", minimum=0))  # type: ignore[arg-type]
