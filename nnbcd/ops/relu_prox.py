r"""The exact ReLU prox as an array function: :math:`\arg\min_u \tfrac12 (v - \max(u, 0))^2 + \tfrac\beta2 (u - a)^2`.

The formula (a four-row table, with its derivation and source) is written once, in
:mod:`nnbcd.backend.relu_prox_kernel`, where the backends compile it into their fused U-block kernels;
this is its public array form.
"""
from __future__ import annotations

from typing import Any

from .._validation import check_positive
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
    v : array_like, float32, float64 or integer
        The new activations :math:`v`, any shape broadcastable with ``a``. Integers are computed in
        float64 (e.g. ``v = [3]``, ``a = [1]``, β = 0.5 gives 7/3), as every op does.
    a : array_like, float32, float64 or integer
        The prox centres :math:`a`.
    beta : float
        Prox weight :math:`\beta > 0`, finite.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``v`` and ``a`` (see :func:`nnbcd.backend.infer_backend`).

    Returns
    -------
    array
        :math:`u^*`, the broadcast shape of ``v`` and ``a``, on the backend, in the wider of their
        floating dtypes. NaN in ``v`` or ``a`` gives NaN in that entry only (the formula is entrywise).

    Raises
    ------
    ValueError
        If ``beta`` is not a positive finite number, or ``v`` and ``a`` do not broadcast.
    TypeError
        If ``beta`` is not a real number, or ``v`` or ``a`` is not an array of real numbers (bool,
        float16, complex, object); the message names the argument.
    """
    beta = check_positive(beta, "beta")
    be = infer_backend(v, a, backend=backend)
    v, a = be.as_real_array(v, "v"), be.as_real_array(a, "a")
    try:
        be.xp.broadcast_shapes(v.shape, a.shape)
    except ValueError:
        raise ValueError(f"v of shape {tuple(v.shape)} and a of shape {tuple(a.shape)} do not broadcast") from None
    dtype = be.xp.result_type(v, a)
    return relu_prox_vectorized(v.astype(dtype, copy=False), a.astype(dtype, copy=False), beta, be.xp)
