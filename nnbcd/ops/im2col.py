r"""Patch matrices for a convolution written as a matrix product (spec §3.5).

For inputs of shape (N, C, H, W), a k_h×k_w kernel with stride δ and no padding gives
:math:`H' = \lfloor (H-k_h)/\delta\rfloor + 1` (and :math:`W'` likewise). The patch matrix
:math:`\hat X \in \mathbb R^{(N H' W')\times P}`, :math:`P = C k_h k_w`, has rows ordered sample-major
then patch :math:`p = h W' + w`, and columns ordered :math:`(c, k_y, k_x)` row-major, so a PyTorch kernel
of shape (F, C, k_h, k_w) reshaped to (F, P) gives the convolution as :math:`\hat X K^T`.
"""
from __future__ import annotations

from typing import Any, Tuple


def conv_output_shape(hw: Tuple[int, int], kernel: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """:math:`(H', W')` of a valid (unpadded) convolution."""
    (h, w), (kh, kw) = hw, kernel
    return (h - kh) // stride + 1, (w - kw) // stride + 1


def patches_t(x: Any, kernel: Tuple[int, int], stride: int, xp: Any) -> Any:
    r""":math:`\hat X^T \in \mathbb R^{P\times(N H' W')}` (C-ordered) from ``x`` of shape (N, C, H, W).

    Built with a strided view (no Python loop over patches) and one copy into the transposed
    layout that the solver's GEMMs read.
    """
    n, c, h, w = x.shape
    kh, kw = kernel
    ho, wo = conv_output_shape((h, w), kernel, stride)
    s0, s1, s2, s3 = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x, shape=(c, kh, kw, n, ho, wo), strides=(s1, s2, s3, s0, s2 * stride, s3 * stride)
    )
    return xp.ascontiguousarray(view).reshape(c * kh * kw, n * ho * wo)
