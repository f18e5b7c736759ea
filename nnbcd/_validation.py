"""Validation at the API boundary: every message names the argument that is wrong."""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Tuple

import numpy as np


def check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    """A finite number > 0 (or ≥ 0).

    Parameters
    ----------
    value : Any
    name : str
        The argument's name, for the message.
    allow_zero : bool
        Accept 0.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a number.
    ValueError
        If it is not finite or out of range.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_choice(value: Any, choices: Tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``.

    Raises
    ------
    ValueError
        Naming ``name`` and the choices.
    """
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}")
    return value


def check_int(value: Any, name: str, minimum: int = 1, optional: bool = False) -> Optional[int]:
    """An integer ≥ ``minimum`` (``None`` too when ``optional``).

    Raises
    ------
    ValueError
        Naming ``name``; booleans are not integers here.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def check_hidden_layer_sizes(value: Any, name: str = "hidden_layer_sizes") -> Tuple[int, ...]:
    """Hidden widths: an int or a sequence of positive ints (possibly empty: no hidden layer).

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        Naming ``name``.
    """
    sizes = (value,) if isinstance(value, (int, np.integer)) else value
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in sizes):
        raise ValueError(f"{name} must hold positive integer widths, got {value!r}")
    return tuple(int(d) for d in sizes)


def to_host(x: Any) -> Any:
    """A CuPy array as a numpy array; anything else unchanged (for sklearn's validation to read)."""
    return x.get() if hasattr(x, "__cuda_array_interface__") else x


def check_real(value: Any, name: str, low: float, high: float, *, low_open: bool = False,
               high_open: bool = False) -> float:
    """``value`` as a float in the interval from ``low`` to ``high`` (each end open where asked).

    Raises
    ------
    TypeError
        Naming ``name``: a bool, a string or another non-real object.
    ValueError
        Naming ``name`` and the interval: NaN or a value outside it.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not (v > low if low_open else v >= low) or not (v < high if high_open else v <= high):  # NaN fails both
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v
