"""Validation at the API boundary: every message names the argument that is wrong.

This is the bottom layer; every public entry point checks its arguments with these functions before any
array work, so a bad input is a ``TypeError`` (wrong kind: a string for a number, a complex array, a list
where a mapping is expected) or a ``ValueError`` (right kind, wrong value: NaN, out of range, wrong shape)
whose message starts with the argument's name, never an error from deep inside a library or kernel.

Arrays follow one dtype rule (:func:`float_dtype`): float32 and float64 are kept, signed and unsigned
integers are promoted to float64 (exact up to :math:`2^{53}`; no integer arithmetic, so nothing is
truncated), and bool, float16, complex, object, string and date dtypes are refused. The array checks
themselves (conversion, NaN/Inf on a device) are :meth:`nnbcd.backend.Backend.as_real_array`, which uses
these functions.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np


class NonFiniteError(ValueError):
    """An array argument holds NaN or Inf where the result would otherwise be silently wrong.

    A ``ValueError``, so callers that check for bad values catch it; the solver catches this class to
    end a run whose iterate diverged with a status instead of an exception.
    """


def float_dtype(dtype: Any, name: str) -> np.dtype:
    """The floating dtype an array argument of ``dtype`` is computed in (the package's one dtype rule).

    Parameters
    ----------
    dtype : numpy.dtype
        The argument's dtype.
    name : str
        The argument's name, for the message.

    Returns
    -------
    numpy.dtype
        ``dtype`` itself for float32/float64; float64 for signed and unsigned integers.

    Raises
    ------
    TypeError
        For bool (a mask where numbers are expected), float16 (too coarse for the linear algebra:
        cast it yourself), complex (the methods are for real data; dropping the imaginary part would
        be silently wrong), object, string and date dtypes; the message names ``name``.
    """
    dt = np.dtype(dtype)
    if dt.kind == "f" and dt.itemsize in (4, 8):
        return dt
    if dt.kind in "iu":
        return np.dtype(np.float64)
    hint = {"b": "a boolean array is not a real matrix; cast it with .astype(float) if that is meant",
            "f": "cast it to float32 or float64", "c": "complex input is not supported (real data only)"}
    raise TypeError(f"{name} has dtype {dt}; expected real numbers (float32, float64, or integers, which are "
                    f"computed in float64){'; ' + hint[dt.kind] if dt.kind in hint else ''}")


def check_ndim(shape: Tuple[int, ...], name: str, ndim: Optional[int] = None, min_ndim: int = 0,
               allow_empty: bool = True) -> None:
    """Check an array argument's shape: exactly ``ndim`` (or at least ``min_ndim``) axes, and entries.

    Raises
    ------
    ValueError
        Naming ``name`` and the shape.
    """
    shape = tuple(shape)
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {shape}")
    if len(shape) < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axes, got shape {shape}")
    if not allow_empty and math.prod(shape) == 0:
        raise ValueError(f"{name} is empty (shape {shape})")


def check_array_sequence(value: Any, name: str, allow_empty: bool = False) -> List[Any]:
    """``value`` as a list, if it is a list or tuple (of arrays): not one bare array, not a mapping.

    A bare array would be iterated over its first axis (rows taken as separate arrays), which is never
    what a caller passing one matrix means.

    Raises
    ------
    TypeError
        If ``value`` is an array, a string, a mapping or not a sequence.
    ValueError
        If it is empty and ``allow_empty`` is false.
    """
    if hasattr(value, "shape") or isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list or tuple of arrays, got {type(value).__name__}"
                        f"{' (wrap one array in a list: [W])' if hasattr(value, 'shape') else ''}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must hold at least one array")
    return list(value)


def check_int_sequence(value: Any, name: str, minimum: int = 1, length: Optional[int] = None) -> Tuple[int, ...]:
    """A non-empty sequence of integers ≥ ``minimum`` (of ``length`` entries when given), as a tuple.

    Raises
    ------
    TypeError
        If ``value`` is not a sequence (a bare number, a string, a mapping).
    ValueError
        If it is empty, has the wrong length, or an entry is not an integer ≥ ``minimum`` (2.5, NaN, a
        bool); the message names the entry, e.g. ``modes[2]``.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of integers, got {type(value).__name__} {value!r}")
    if len(value) == 0 or (length is not None and len(value) != length):
        want = "non-empty" if length is None else f"of length {length}"
        raise ValueError(f"{name} must be a {want} sequence of integers, got {list(value)!r}")
    return tuple(int(check_int(v, f"{name}[{k}]", minimum=minimum))  # type: ignore[arg-type]
                 for k, v in enumerate(value))


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool (numpy's too); a string such as ``"no"`` is truthy, so it is refused.

    Raises
    ------
    TypeError
        Naming ``name``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or ≥ 0).

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
        If ``value`` is not a real number (strings such as ``"1.5"`` and bools are refused).
    ValueError
        If it is NaN, infinite or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
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


def check_int(value: Any, name: str, minimum: int = 1, optional: bool = False,
              maximum: Optional[int] = None) -> Optional[int]:
    """An integer ≥ ``minimum`` (and ≤ ``maximum`` when given; ``None`` too when ``optional``).

    Raises
    ------
    ValueError
        Naming ``name``: a float such as 2.5 or 3.0 (never truncated), NaN, a bool, a string, or an integer
        out of range.
    """
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
            or (maximum is not None and value > maximum)):
        bound = f"in {minimum}..{maximum}" if maximum is not None else f"≥ {minimum}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not (v > low if low_open else v >= low) or not (v < high if high_open else v <= high):  # NaN fails both
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def check_relaxation(value: Any, name: str = "relaxation") -> float:
    """An over-relaxation factor ω in [1, 2) (NN-BCD's ``relaxation``; the one place its range is written).

    Raises
    ------
    TypeError, ValueError
        As :func:`check_real`, naming ``name`` and the interval.
    """
    return check_real(value, name, 1.0, 2.0, high_open=True)


@contextlib.contextmanager
def named_errors(name: str) -> Iterator[None]:
    """Re-raise a library's ``ValueError``/``TypeError`` about argument ``name`` with ``name`` in its message.

    For checks done by another library (scikit-learn's ``validate_data``: "Complex data not supported",
    "Expected 2D array", "could not convert string to float"), whose messages do not say which argument
    is wrong. The exception keeps its type and its message (callers and scikit-learn's conformance checks
    match on both); a message that already names ``name`` is left as it is.

    Raises
    ------
    ValueError, TypeError
        The original exception's type, with the message ``"{name}: {original message}"``.
    """
    try:
        yield
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message):
            raise
        try:
            named = type(exc)(f"{name}: {message}")
        except Exception:  # an exception class whose constructor takes other arguments: keep the original
            raise exc from None
        raise named from exc


def writable_dir(path: "str | os.PathLike[str]", what: str) -> Path:
    """Create the directory ``path`` and make sure files can be written into it, before any work is done.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        How the error names the directory (``"checkpoint_dir 'x'"``, ``"results to 'x'"``).

    Returns
    -------
    Path

    Raises
    ------
    OSError
        The directory cannot be created or written to; the message starts with ``what``.
    """
    out = Path(path)
    try:  # a probe file now, not a failure after the work
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise OSError(f"{what} cannot be written to: {exc.strerror or exc}") from None
    return out
