r"""Exact proximal step of the ReLU coupling, written once as a scalar formula.

For one entry, with the new activation :math:`v`, the prox centre :math:`a` and weight :math:`\beta>0`,

.. math::

    u^\* = \arg\min_u \tfrac12 (v - \max(u, 0))^2 + \tfrac\beta2 (u - a)^2 .

With :math:`c = \sqrt{\beta(\beta+1)}` and :math:`u_+ = (v + \beta a)/(1+\beta)`, evaluated top to bottom:

==========================================  ===============
condition                                   :math:`u^\*`
==========================================  ===============
:math:`v + \beta a < 0`                     :math:`\min(a, 0)`
:math:`a \ge 0`                             :math:`u_+`
:math:`v(\beta - c) \le \beta a`            :math:`u_+`
otherwise                                   :math:`a`
==========================================  ===============

On exact ties the table picks :math:`u_+`, as the reference implementation does.

:func:`relu_prox_scalar` is the single source of this formula. The numba CPU kernel inlines it into a
parallel loop, the CUDA kernel compiles it as a device function, and :func:`relu_prox_array` is the
vectorised reading of the same table used by the numpy backend (and, through the tests, checked
against brute force like the others).
"""
from __future__ import annotations

import math

import numpy as np


def relu_prox_constants(beta: float) -> tuple:
    """The per-call constants of :func:`relu_prox_scalar`: ``(beta, c, 1/(1+beta))``."""
    return beta, math.sqrt(beta * (beta + 1.0)), 1.0 / (1.0 + beta)


def relu_prox_scalar(v, a, beta, c, inv_1pb):  # type: ignore[no-untyped-def]
    """Scalar ReLU prox :math:`\\arg\\min_u \\frac12(v-\\max(u,0))^2 + \\frac\\beta2(u-a)^2`.

    ``c`` :math:`=\\sqrt{\\beta(\\beta+1)}` and ``inv_1pb`` :math:`=1/(1+\\beta)` come from
    :func:`relu_prox_constants` (constant over a whole array, and free of literals so that float32
    kernels stay in float32).
    """
    s = v + beta * a
    if s < 0:
        return a if a < 0 else 0 * a
    if a >= 0 or v * (beta - c) <= beta * a:
        return s * inv_1pb
    return a


def relu_prox_array(v: np.ndarray, a: np.ndarray, beta: float) -> np.ndarray:
    """Vectorised :func:`relu_prox_scalar` (the reference; allocates temporaries). Works on any array
    that numpy's functions dispatch on (NEP 18), CuPy arrays included; constants in ``a``'s dtype."""
    beta, c, inv_1pb = (a.dtype.type(x) for x in relu_prox_constants(float(beta)))
    s = v + beta * a
    u_plus = s * inv_1pb
    take_plus = (a >= 0) | (v * (beta - c) <= beta * a)
    return np.where(s < 0, np.minimum(a, 0), np.where(take_plus, u_plus, a))
