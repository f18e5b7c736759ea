r"""Patch matrices for a convolution written as a matrix product (spec §3.5).

For inputs of shape (N, C, H, W), a k_h×k_w kernel with stride δ and no padding gives
:math:`H' = \lfloor (H-k_h)/\delta\rfloor + 1` (and :math:`W'` likewise). The patch matrix
:math:`\hat X \in \mathbb R^{(N H' W')\times P}`, :math:`P = C k_h k_w`, has rows ordered sample-major
then patch :math:`p = h W' + w`, and columns ordered :math:`(c, k_y, k_x)` row-major, so a PyTorch kernel
of shape (F, C, k_h, k_w) reshaped to (F, P) gives the convolution as :math:`\hat X K^T`.
"""
from __future__ import annotations

from typing import Any, Tuple

from .._validation import check_int, check_int_sequence
from ..backend import Backend, infer_backend


def _check_geometry(hw: Any, kernel: Any, stride: Any) -> Tuple[Tuple[int, int], Tuple[int, int], int]:
    """``hw`` and ``kernel`` as pairs of positive ints with the kernel inside the image, ``stride`` ≥ 1."""
    hw = check_int_sequence(hw, "hw", length=2)
    kernel = check_int_sequence(kernel, "kernel", length=2)
    stride = int(check_int(stride, "stride"))  # type: ignore[arg-type]
    if kernel[0] > hw[0] or kernel[1] > hw[1]:
        raise ValueError(f"kernel={kernel} must be between (1, 1) and the image size {hw}")
    return hw, kernel, stride  # type: ignore[return-value]


def conv_output_shape(hw: Tuple[int, int], kernel: Tuple[int, int], stride: int) -> Tuple[int, int]:
    r""":math:`(H', W')` of a valid (unpadded) convolution.

    Parameters
    ----------
    hw : (int, int)
        Input height and width :math:`(H, W)`.
    kernel : (int, int)
        Kernel size :math:`(k_h, k_w)`.
    stride : int
        Stride :math:`\delta` (both directions).

    Returns
    -------
    (int, int)
        :math:`(\lfloor (H-k_h)/\delta\rfloor + 1, \lfloor (W-k_w)/\delta\rfloor + 1)`.

    Raises
    ------
    ValueError, TypeError
        If ``hw`` or ``kernel`` is not a pair of positive ints, the kernel is larger than the image, or
        ``stride`` is not an int ≥ 1 (the message names the argument).
    """
    (h, w), (kh, kw), stride = _check_geometry(hw, kernel, stride)
    return (h - kh) // stride + 1, (w - kw) // stride + 1


def im2col(x: Any, kernel: Tuple[int, int], stride: int, *, backend: "str | Backend | None" = None) -> Any:
    r"""The transposed patch matrix :math:`\hat X^T \in \mathbb R^{P\times(N H' W')}` of a batch of images.

    Column :math:`(n, h, w)` (sample-major, then patch row-major) holds the patch at output position
    :math:`(h, w)` of image :math:`n`, flattened in the order :math:`(c, k_y, k_x)`; so the convolution
    with a kernel :math:`K` of shape (F, C, k_h, k_w) is :math:`K_{(F, P)} \hat X^T` (valid padding, as
    ``torch.nn.functional.conv2d``). Built with a strided view (no Python loop over patches) and one
    copy into the layout the solver's GEMMs read.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        The images, any numeric dtype (kept: this is a copy, no arithmetic).
    kernel : (int, int)
        Kernel size :math:`(k_h, k_w)`, at most :math:`(H, W)`.
    stride : int
        Stride :math:`\delta \ge 1`.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``x``.

    Returns
    -------
    array, shape (C k_h k_w, N H' W'), C-ordered, ``x``'s dtype
        :math:`H', W'` from :func:`conv_output_shape`.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, or ``kernel``/``stride`` are not positive ints that fit its height and width.
    TypeError
        If ``x`` is not an array of numbers (object, strings).
    """
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 4:
        raise ValueError(f"x must be a 4-D array (N, C, H, W), got shape {shape}")
    if getattr(x, "dtype", None) is None or x.dtype.kind not in "biufc":
        raise TypeError(f"x must be an array of numbers, got dtype {getattr(x, 'dtype', None)}")
    n, c, h, w = shape
    if h < 1 or w < 1:
        raise ValueError(f"x has images without pixels (shape {tuple(shape)})")
    (h, w), kernel, stride = _check_geometry((h, w), kernel, stride)
    kh, kw = kernel
    xp = infer_backend(x, backend=backend).xp
    x = xp.asarray(x)
    ho, wo = conv_output_shape((h, w), kernel, stride)
    s0, s1, s2, s3 = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x, shape=(c, kh, kw, n, ho, wo), strides=(s1, s2, s3, s0, s2 * stride, s3 * stride)
    )
    return xp.ascontiguousarray(view).reshape(c * kh * kw, n * ho * wo)
