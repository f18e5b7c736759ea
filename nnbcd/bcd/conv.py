r"""A convolutional first layer for NN-BCD, written as a dense layer on patch samples (spec §3.5).

With the patch matrix :math:`\hat X` (rows = (sample, patch) pairs) and the kernel :math:`Z\in\mathbb
R^{P\times F}`, the conv output is :math:`\hat X Z`. Stored as :math:`W_1 = Z^T` (F × P) acting on
:math:`\hat X^T` (P × N H'W'), the layer is exactly a dense layer whose "samples" are the N·H'W'
patches, so the W-block update is the dense one with :math:`V = \hat X^T` (Gram :math:`\hat X^T\hat X`
constant, factored once) and :math:`U` rearranged to F × N H'W':

.. math:: Z^T \leftarrow (\alpha Z^{kT} + \rho U_1'^T \hat X)(\alpha I + \rho \hat X^T\hat X)^{-1}.

Between the network and this layer the pre-activations are rearranged: :math:`U_1 \in \mathbb
R^{(H'W'F)\times N}` with feature index :math:`p\cdot F + f` (patch-major, filter-minor, as the reference
flattens) and :math:`U_1' \in \mathbb R^{F\times N H'W'}` with column :math:`n\cdot H'W' + p`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

from ..ops.im2col import conv_output_shape, patches_t


@dataclass(frozen=True)
class Conv2d:
    """First-layer convolution: ``filters`` kernels of size ``kernel``, ``stride``, no padding.

    Parameters
    ----------
    in_shape : (C, H, W)
        Shape of one input sample; ``X`` rows hold the C·H·W pixels in that (row-major) order.
    filters : int
    kernel : int or (k_h, k_w)
    stride : int
    """

    in_shape: Tuple[int, int, int]
    filters: int
    kernel: Any = 3
    stride: int = 1

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.in_shape)
        kernel = (self.kernel, self.kernel) if isinstance(self.kernel, int) else tuple(self.kernel)
        object.__setattr__(self, "in_shape", shape)
        object.__setattr__(self, "kernel", tuple(int(k) for k in kernel))
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"Conv2d in_shape must be (C, H, W) with positive sizes, got {self.in_shape!r}")
        if len(self.kernel) != 2 or min(self.kernel) < 1 or self.kernel[0] > shape[1] or self.kernel[1] > shape[2]:
            raise ValueError(f"Conv2d kernel={self.kernel!r} must be positive and fit in (H, W) = {shape[1:]}")
        if int(self.filters) < 1 or int(self.stride) < 1:
            raise ValueError(f"Conv2d filters and stride must be ≥ 1, got {self.filters!r}, {self.stride!r}")

    @property
    def out_hw(self) -> Tuple[int, int]:
        return conv_output_shape(self.in_shape[1:], self.kernel, self.stride)

    @property
    def n_patches(self) -> int:
        h, w = self.out_hw
        return h * w

    @property
    def patch_size(self) -> int:
        return self.in_shape[0] * self.kernel[0] * self.kernel[1]

    @property
    def n_in(self) -> int:
        c, h, w = self.in_shape
        return c * h * w

    @property
    def n_out(self) -> int:
        return self.n_patches * self.filters

    def patches(self, x_cols: Any, be: Any) -> Any:
        r""":math:`\hat X^T` (P × N H'W') from column-sample inputs ``x_cols`` (C·H·W × N)."""
        n = x_cols.shape[1]
        images = be.xp.ascontiguousarray(x_cols.T).reshape((n,) + self.in_shape)
        return patches_t(images, self.kernel, self.stride, be.xp)

    def to_features(self, prod: Any, out: Optional[Any] = None) -> Any:
        """F × (N·H'W') patch-sample layout -> (H'W'·F) × N feature layout (into ``out``)."""
        f, m = prod.shape
        n = m // self.n_patches
        view = prod.reshape(f, n, self.n_patches).transpose(2, 0, 1)
        if out is None:
            return view.reshape(self.n_out, n) if view.flags.c_contiguous else view.copy().reshape(self.n_out, n)
        out.reshape(self.n_patches, f, n)[...] = view
        return out

    def to_patch_layout(self, u: Any) -> Any:
        """(H'W'·F) × N feature layout -> F × (N·H'W') patch-sample layout (a copy)."""
        n = u.shape[1]
        view = u.reshape(self.n_patches, self.filters, n).transpose(1, 2, 0)
        return view.copy().reshape(self.filters, n * self.n_patches)

    def bias_rows(self, b: Any, xp: Any) -> Any:
        """Per-filter bias repeated over patches: the bias of each feature row."""
        return xp.tile(b, self.n_patches)
