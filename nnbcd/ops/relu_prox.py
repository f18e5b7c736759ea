r"""The exact ReLU prox as an array function: :math:`\arg\min_u \tfrac12 (v - \max(u, 0))^2 + \tfrac\beta2 (u - a)^2`.

The formula (a four-row table, with its derivation and source) is written once, in
:mod:`nnbcd.backend.relu_prox_kernel`, where the backends compile it into their fused U-block kernels;
this is its public array form.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from ..backend import Backend, infer_backend
from ..backend.relu_prox_kernel import relu_prox_vectorized


def relu_prox(v: Any, a: Any, beta: float, *, backend: "str | Backend | None" = None) -> Any:
    r"""Entrywise exact ReLU prox :math:`u^* = \arg\min_u \tfrac12 (v - \max(u,0))^2 + \tfrac\beta2 (u-a)^2`.

    With :math:`c = \sqrt{\beta(\beta+1)}` and :math:`u_+ = (v + \beta a)/(1+\beta)`, top to bottom:
    :math:`v + \beta a < 0 \Rightarrow \min(a, 0)`; :math:`a \ge 0 \Rightarrow u_+`;
    :math:`v(\beta - c) \le \beta a \Rightarrow u_+`; otherwise :math:`a` (ties pick :math:`u_+`).
    This is the U-block of NN-BCD (Li et al., arXiv 2303.06815; Zeng et al., ICML 2019).

    Parameters
    ----------
    v : array, float32 or float64
        The new activations :math:`v`, any shape broadcastable with ``a``.
    a : array, float32 or float64
        The prox centres :math:`a`; the result has ``a``'s dtype.
    beta : float
        Prox weight :math:`\beta > 0`.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``v`` and ``a`` (see :func:`nnbcd.backend.infer_backend`).

    Returns
    -------
    array
        :math:`u^*`, the broadcast shape of ``v`` and ``a``, on the backend.

    Raises
    ------
    ValueError
        If ``beta`` is not a positive finite number.
    TypeError
        If ``v`` or ``a`` is not a floating-point array.
    """
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    be = infer_backend(v, a, backend=backend)
    for name, x in (("v", v), ("a", a)):
        if getattr(getattr(x, "dtype", None), "kind", None) != "f":
            raise TypeError(f"{name} must be a floating-point array, got {type(x).__name__}"
                            f"{'' if not hasattr(x, 'dtype') else f' of dtype {x.dtype}'}")
    return relu_prox_vectorized(be.xp.asarray(v), be.xp.asarray(a), beta, be.xp)
