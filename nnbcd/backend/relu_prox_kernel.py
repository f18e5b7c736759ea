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

Evaluated form. Rows 1 and 3 are divided by :math:`1+\beta > 0`, which keeps every comparison and keeps
every intermediate bounded: with :math:`p = 1/(1+\beta)`, :math:`q = \beta/(1+\beta)` and
:math:`k = (\beta - c)/(1+\beta) = -\beta/((\beta + c)(1+\beta))`,

* :math:`u_+ = p\,v + q\,a` is a convex combination: it cannot overflow, where :math:`v + \beta a` does for
  large :math:`\beta` or :math:`|a|`;
* row 1 tests :math:`u_+ < 0` and row 3 tests :math:`k v \le q a`; :math:`k` comes from the rationalised
  :math:`\beta - c = -\beta/(\beta + c)`, because :math:`\beta - \sqrt{\beta(\beta+1)}` cancels
  catastrophically (in float32 it is 0 instead of −1/2 from β ≈ 1e7 on, which picks :math:`a` where
  :math:`u_+` is the minimiser), and :math:`c` itself overflows float64 from β ≈ 1e154.

The constants are computed once per call in float64 and cast to the arrays' precision, where they stay
in [−1/2, 1]: any finite β > 0 is safe in float32 too.

**Over-relaxed, safeguarded** (NN-BCD's ``relaxation`` = ω ≠ 1, beyond the paper): the step from the
block's previous value :math:`u^k` becomes :math:`u_\omega = u^k + \omega(u^* - u^k)` where that does not
raise the entry's sub-problem, :math:`\phi(u_\omega) \le \phi(u^k)` with
:math:`\phi(u) = \tfrac12(v - \max(u,0))^2 + \tfrac\beta2(u-a)^2` (which holds the α-prox, so the
block keeps the exact step's sufficient decrease), and :math:`u^*` otherwise. φ is not convex (its two
pieces meet at a kink), so unlike the quadratic blocks the relaxed step is tested entry by entry;
compared as :math:`2\phi/(1+\beta) = p(v - \max(u,0))^2 + q(u-a)^2`, whose weights stay in [0, 1].

The formula lives in the backend layer because the backends compile it: :func:`relu_prox_scalar` is the
single source, which the numba CPU kernel inlines into a parallel loop and the CUDA kernel compiles as a
device function; :func:`relu_prox_vectorized` is the same table read as array expressions (numpy, CuPy),
used by the numpy backend and by the public :func:`nnbcd.ops.relu_prox`.
"""
from __future__ import annotations

import math
from typing import Any


def relu_prox_constants(beta: float) -> tuple:
    r"""The per-call constants of :func:`relu_prox_scalar`, computed in float64 without overflow.

    Parameters
    ----------
    beta : float
        Prox weight :math:`\beta > 0`, finite.

    Returns
    -------
    tuple of float
        ``(p, q, k)``: :math:`p = 1/(1+\beta)`, :math:`q = \beta/(1+\beta)`,
        :math:`k = -\beta/((\beta + c)(1+\beta))` with :math:`c = \sqrt\beta\sqrt{\beta+1}` (the module's
        evaluated form); each in [−1/2, 1].
    """
    beta = float(beta)
    c = math.sqrt(beta) * math.sqrt(beta + 1.0)
    return 1.0 / (1.0 + beta), beta / (1.0 + beta), -(beta / (beta + c)) / (1.0 + beta)


def relu_prox_scalar(v, a, p, q, k):  # type: ignore[no-untyped-def]
    r"""Scalar ReLU prox :math:`\arg\min_u \frac12(v-\max(u,0))^2 + \frac\beta2(u-a)^2` (the module's table,
    in its evaluated form).

    Untyped on purpose: numba compiles it for float32 and float64 alike.

    Parameters
    ----------
    v, a : float
        The new activation and the prox centre.
    p, q, k : float
        From :func:`relu_prox_constants`, in the same precision as ``v`` and ``a`` (constant over a whole
        array, and free of literals so that float32 kernels stay in float32).

    Returns
    -------
    float
        :math:`u^*`.
    """
    u_plus = p * v + q * a  # (v + βa)/(1 + β)
    if u_plus < 0:
        return a if a < 0 else 0 * a
    if a >= 0 or k * v <= q * a:
        return u_plus
    return a


def relu_prox_relaxed_scalar(v, a, uk, star, omega, p, q):  # type: ignore[no-untyped-def]
    r"""The safeguarded over-relaxed ReLU prox step (the module's over-relaxation paragraph):
    :math:`u^k + \omega(u^* - u^k)` if it does not raise :math:`\phi` above :math:`\phi(u^k)`, else :math:`u^*`.

    Parameters
    ----------
    v, a, p, q : float
        As :func:`relu_prox_scalar`.
    uk : float
        The entry's previous value :math:`u^k` (the start of the step).
    star : float
        :math:`u^*`, :func:`relu_prox_scalar`'s value (passed in, so that the compiled kernels inline both).
    omega : float
        ω, in the same precision.

    Returns
    -------
    float
    """
    u = uk + omega * (star - uk)
    zero = 0 * v
    du = v - max(u, zero)
    dk = v - max(uk, zero)
    if p * du * du + q * (u - a) * (u - a) <= p * dk * dk + q * (uk - a) * (uk - a):
        return u
    return star


def relu_prox_vectorized(v: Any, a: Any, beta: float, xp: Any) -> Any:
    r"""The table of :func:`relu_prox_scalar` as array expressions of ``xp`` (allocates temporaries).

    Parameters
    ----------
    v, a : array
        The new activations and the prox centres, broadcastable, of one floating dtype, on ``xp``.
    beta : float
        Prox weight :math:`\beta > 0`; the constants are cast to ``a``'s dtype.
    xp : module
        The array module of ``v`` and ``a`` (numpy or cupy).

    Returns
    -------
    array
        :math:`u^*` entrywise, of the broadcast shape.
    """
    p, q, k = (a.dtype.type(x) for x in relu_prox_constants(beta))
    u_plus = p * v + q * a
    take_plus = (a >= 0) | (k * v <= q * a)
    return xp.where(u_plus < 0, xp.minimum(a, 0), xp.where(take_plus, u_plus, a))


def relu_prox_relaxed_vectorized(v: Any, a: Any, uk: Any, omega: float, beta: float, xp: Any) -> Any:
    r""":func:`relu_prox_relaxed_scalar` as array expressions of ``xp`` (``uk`` the previous values)."""
    p, q, _ = (a.dtype.type(x) for x in relu_prox_constants(beta))
    star = relu_prox_vectorized(v, a, beta, xp)
    u = uk + a.dtype.type(omega) * (star - uk)

    def phi(x: Any) -> Any:
        d = v - xp.maximum(x, 0)
        return p * d * d + q * (x - a) * (x - a)
    return xp.where(phi(u) <= phi(uk), u, star)
