"""Exact rescaling by a power of two, so that squared quantities (Gram matrices) stay inside the dtype's range."""
from __future__ import annotations

import math
from typing import Any, Tuple

from ..backend import Backend


def prescaled(x: Any, be: Backend) -> Tuple[Any, float]:
    r"""``(x / 2^e, 2^e)`` with :math:`2^e \le \max|x| < 2^{e+1}` (``(x, 1.0)`` for a zero array).

    Dividing by a power of two is exact, and it keeps the Gram matrices of an SVD by eigenvalues inside
    the dtype's range: unscaled, a float32 matrix with entries ~1e-30 has a Gram that underflows to 0 and
    one with entries ~1e18 overflows (float64: beyond ~1e±154). Rank decisions and subspaces are then
    independent of the input's scale, as the methods are in exact arithmetic.

    Parameters
    ----------
    x : array, float32 or float64, finite, not empty
    be : Backend
        ``x``'s backend.

    Returns
    -------
    (array, float)
        The rescaled array (``x``'s dtype) and the factor :math:`2^e` as a Python float.
    """
    peak = float(be.xp.abs(x).max())
    if peak == 0.0:
        return x, 1.0
    scale = math.ldexp(1.0, math.frexp(peak)[1] - 1)
    return x / x.dtype.type(scale), scale
