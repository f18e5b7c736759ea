"""Backend-agnostic math: pure functions on arrays (TT-SVD, top-k, EVBMF, ReLU prox, im2col).

Every function here that takes arrays also takes a keyword-only ``backend=None``: by default the backend
of its array inputs (a CuPy array runs on ``"cupy"``, anything else on ``"numpy"``), else the name or
:class:`~nnbcd.backend.Backend` given (:func:`nnbcd.backend.infer_backend`). The functions on shapes
and host scalars (``tt_ranks``, ``n_keep``, ``conv_output_shape``, ...) take none.

Every function checks its arguments before any array work (:mod:`nnbcd._validation`,
:meth:`nnbcd.backend.Backend.as_real_array`): a wrong kind is a ``TypeError`` and a wrong value a
``ValueError`` whose message starts with the argument's name. Arrays follow one dtype rule: float32 and
float64 are kept, integers are computed in float64, and bool, float16, complex, object and string arrays
are refused; NaN/Inf are refused where they would make the result silently wrong (TT-SVD, EVBMF, top-k
ranks), with :class:`~nnbcd._validation.NonFiniteError`.

The names below are the public ones. Three of them (``vbmf``, ``relu_prox``, ``im2col``) are also
the names of the submodules that define them, so ``nnbcd.ops.vbmf`` is the function; the submodules'
other names stay importable with ``from nnbcd.ops.vbmf import tau_lower``.
"""
from .im2col import conv_output_shape, im2col
from .prune import effective_sparsity, hard_threshold, n_keep, topk_mask, true_sparsity
from .relu_prox import relu_prox
from .tt import (
    SVD_METHODS,
    factor_shape,
    matrix_to_tt_tensor,
    tt_matrix_apply,
    tt_matrix_cores,
    tt_n_params,
    tt_ranks,
    tt_svd,
    tt_tensor_to_matrix,
    tt_to_tensor,
    tt_truncation_bound,
)
from .vbmf import VBMFResult, evbmf, evbmf_batch, evbmf_from_singular_values, tau_lower, vbmf

__all__ = [
    "SVD_METHODS",
    "VBMFResult",
    "conv_output_shape",
    "effective_sparsity",
    "evbmf",
    "evbmf_batch",
    "evbmf_from_singular_values",
    "factor_shape",
    "hard_threshold",
    "im2col",
    "matrix_to_tt_tensor",
    "n_keep",
    "relu_prox",
    "tau_lower",
    "topk_mask",
    "true_sparsity",
    "tt_matrix_apply",
    "tt_matrix_cores",
    "tt_n_params",
    "tt_ranks",
    "tt_svd",
    "tt_tensor_to_matrix",
    "tt_to_tensor",
    "tt_truncation_bound",
    "vbmf",
]
