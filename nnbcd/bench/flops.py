"""FLOPs of one NN-BCD sweep, counted as spec §9 counts them, and its largest product.

The GEMM floor of a sweep is ``sweep_flops / gemm_rate``: the time the sweep would take if every FLOP ran
at the BLAS GEMM peak measured in the same run (:func:`nnbcd.bench.timing.gemm_rate`).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from ..bcd.conv import InputConv2d


def _first_layer(widths: Sequence[int], n: int, conv: Optional[InputConv2d]) -> Tuple[int, int, int]:
    """(d_out, d_in, columns) of layer 0's products: a conv layer multiplies its F × P kernel by the
    P × N·H'W' patch matrix."""
    if conv is None:
        return widths[1], widths[0], n
    return conv.filters, conv.patch_size, n * conv.n_patches


def block_flops(widths: Sequence[int], n: int, conv: Optional[InputConv2d] = None) -> Dict[str, float]:
    r"""FLOPs of one sweep with the forms the solver picks, per block kind (``"U"``, ``"W"``, ``"V"``).

    Counted per spec §9: GEMM :math:`2mnk`, SYRK :math:`n^2k`, Cholesky :math:`n^3/3`, two triangular
    solves :math:`2n^2p`. Per layer ``i`` (:math:`W_i` is :math:`d_{out}\times d_{in}`, N columns):

    * U block: the product :math:`W_iV_{i-1}`, :math:`2d_{out}d_{in}N`;
    * W block (direct form, :math:`N \ge d_{in}`): Gram :math:`d_{in}^2N` and Cholesky :math:`d_{in}^3/3`
      (layer 0's factor is cached: 0), :math:`UV^T` :math:`2d_{out}d_{in}N`, solves :math:`2d_{in}^2d_{out}`;
    * V block of a hidden layer with :math:`W_{i+1}` (:math:`d'\times d`): push-through when
      :math:`2d' < 3d` (an :math:`s\times s` system, :math:`s=\min(d,d')`, :math:`b=\max(d,d')`:
      :math:`s^2b + s^3/3 + 2s^2b`, then two GEMMs :math:`4d'dN`), else direct (Gram :math:`d^2d'`,
      :math:`W^TU` :math:`2dd'N`, Cholesky :math:`d^3/3`, solves :math:`2d^2N`).

    The output layer's V block is elementwise (0 FLOPs counted). A conv first layer's U and W products are
    its F × P kernel times the P × N·H'W' patches. Elementwise work (the ReLU prox, the conv layout copies)
    is not counted: a block's time over its floor measures it along with the BLAS calls' distance from the
    GEMM rate.

    Parameters
    ----------
    widths : sequence of int
        :math:`(d_0, \dots, d_L)`; with ``conv``, :math:`d_1` is the conv layer's output width F·H'·W'.
    n : int
        N, the number of samples.
    conv : InputConv2d, optional
        The convolutional first layer.

    Returns
    -------
    dict of str to float
        FLOPs of the U, W and V blocks of one sweep.

    Raises
    ------
    ValueError
        If ``n`` is below a layer's input width (the solver then takes the push-through W form, which this
        count does not model).
    """
    L = len(widths) - 1
    out = {"U": 0.0, "W": 0.0, "V": 0.0}
    for i in range(L):
        d_out, d_in, cols = _first_layer(widths, n, conv) if i == 0 else (widths[i + 1], widths[i], n)
        if cols < d_in:
            raise ValueError(f"n={n} is below layer {i}'s input width {d_in}: the count assumes the direct "
                             "W form (N >= d_in)")
        out["U"] += 2 * d_out * d_in * cols
        gram = 0 if i == 0 else d_in * d_in * cols + d_in ** 3 / 3
        out["W"] += gram + 2 * d_out * d_in * cols + 2 * d_in * d_in * d_out
        if i < L - 1:  # V block of layer i's output, with W_{i+1} (d_next × d)
            d, d_next = widths[i + 1], widths[i + 2]
            if 2 * d_next < 3 * d:
                small, big = min(d, d_next), max(d, d_next)
                out["V"] += small ** 2 * big + small ** 3 / 3 + 2 * small ** 2 * big + 4 * d_next * d * n
            else:
                out["V"] += d ** 2 * d_next + 2 * d * d_next * n + d ** 3 / 3 + 2 * d ** 2 * n
    return out


def sweep_flops(widths: Sequence[int], n: int, conv: Optional[InputConv2d] = None) -> float:
    """FLOPs of one sweep: the sum of :func:`block_flops` (same parameters, conventions and errors)."""
    return sum(block_flops(widths, n, conv).values())


def largest_gemm(widths: Sequence[int], n: int, conv: Optional[InputConv2d] = None) -> Tuple[int, int, int]:
    """The shape (m, k, columns) of the sweep's largest product :math:`W_iV_{i-1}`.

    Parameters
    ----------
    widths, n, conv
        As :func:`sweep_flops`.

    Returns
    -------
    (int, int, int)
        The layer's (d_out, d_in, N) (for a conv layer 0: (F, P, N·H'W')) with the largest
        :math:`d_{out}d_{in}N`: the shape the GEMM rate of the floor is measured at, and the size the BLAS
        thread policy (:func:`nnbcd.backend.threads.blas_threads`) is given.
    """
    shapes = [_first_layer(widths, n, conv)] + [(widths[i + 1], widths[i], n) for i in range(1, len(widths) - 1)]
    return max(shapes, key=lambda s: s[0] * s[1] * s[2])
