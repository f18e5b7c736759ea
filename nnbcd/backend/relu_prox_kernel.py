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

On u ≥ 0 the minimiser is :math:`u_+` if :math:`u_+\ge 0`, else 0; on u ≤ 0 it is :math:`\min(a, 0)`. When
:math:`a < 0 \le v + \beta a`, :math:`u_+` wins iff :math:`\frac{\beta}{1+\beta}(v-a)^2 \le v^2`, the third row.
On exact ties the table picks :math:`u_+`, as the reference implementation does. Source: the U-block of
NN-BCD (Li et al., arXiv 2303.06815, spec §3.2 step 5), itself from the three-splitting BCD of Zeng, Lau,
Lin and Yao (ICML 2019).

The formula lives in the backend layer because the backends compile it: :func:`relu_prox_scalar` is the
single source, which the numba CPU kernel inlines into a parallel loop and the CUDA kernel compiles as a
device function; :func:`relu_prox_vectorized` is the same table read as array expressions (numpy, CuPy),
used by the numpy backend and by the public :func:`nnbcd.ops.relu_prox`.
"""
from __future__ import annotations

import math
from typing import Any


def relu_prox_constants(beta: float) -> tuple:
    r"""The per-call constants of :func:`relu_prox_scalar`.

    Parameters
    ----------
    beta : float
        Prox weight :math:`\beta > 0`.

    Returns
    -------
    tuple of float
        ``(beta, c, inv_1pb)`` with :math:`c = \sqrt{\beta(\beta+1)}` and ``inv_1pb`` :math:`= 1/(1+\beta)`.
    """
    return beta, math.sqrt(beta * (beta + 1.0)), 1.0 / (1.0 + beta)


def relu_prox_scalar(v, a, beta, c, inv_1pb):  # type: ignore[no-untyped-def]
    r"""Scalar ReLU prox :math:`\arg\min_u \frac12(v-\max(u,0))^2 + \frac\beta2(u-a)^2` (the module's table).

    Untyped on purpose: numba compiles it for float32 and float64 alike.

    Parameters
    ----------
    v, a : float
        The new activation and the prox centre.
    beta, c, inv_1pb : float
        From :func:`relu_prox_constants`, in the same precision as ``v`` and ``a`` (constant over a whole
        array, and free of literals so that float32 kernels stay in float32).

    Returns
    -------
    float
        :math:`u^*`.
    """
    s = v + beta * a
    if s < 0:
        return a if a < 0 else 0 * a
    if a >= 0 or v * (beta - c) <= beta * a:
        return s * inv_1pb
    return a


def relu_prox_vectorized(v: Any, a: Any, beta: float, xp: Any) -> Any:
    r"""The table of :func:`relu_prox_scalar` as array expressions of ``xp`` (allocates temporaries).

    Parameters
    ----------
    v, a : array
        The new activations and the prox centres, broadcastable, floating point, on ``xp``.
    beta : float
        Prox weight :math:`\beta > 0`; the constants are cast to ``a``'s dtype.
    xp : module
        The array module of ``v`` and ``a`` (numpy or cupy).

    Returns
    -------
    array
        :math:`u^*` entrywise, of the broadcast shape.
    """
    beta, c, inv_1pb = (a.dtype.type(x) for x in relu_prox_constants(float(beta)))
    s = v + beta * a
    u_plus = s * inv_1pb
    take_plus = (a >= 0) | (v * (beta - c) <= beta * a)
    return xp.where(s < 0, xp.minimum(a, 0), xp.where(take_plus, u_plus, a))
