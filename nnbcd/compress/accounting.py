r"""Compression ratios as the NN-BCD reference defines them (kept fractions: smaller = more compressed).

With :math:`n_i = d_i d_{i-1}`, :math:`P_i` the stored numbers of compressed layer :math:`i\in C` and FC
the fully connected layers (a conv kernel is excluded from both ratios):

.. math::

    CR_1 = \frac{\sum_{i\in C} P_i + \sum_{i\notin C,\,FC} n_i}{\sum_{FC} n_i},\qquad
    CR_2 = \frac{\sum_{i\in C} P_i}{\sum_{i\in C} n_i}.

``cr_honest`` counts every number the deployed model stores (biases, the conv kernel, sparse indices)
over the same count for the dense model.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence


def compression_ratios(
    shapes: Sequence[tuple],
    params: Mapping[int, int],
    stored: Mapping[int, int] | None = None,
    n_biases: int = 0,
    conv_layers: Sequence[int] = (),
) -> Dict[str, float]:
    """``cr_1``, ``cr_2`` and ``cr_honest``.

    Parameters
    ----------
    shapes : list of (d_out, d_in)
        Every weight matrix (code index 0..L-1).
    params : {layer: int}
        :math:`P_i` (the paper's count) of each compressed layer.
    stored : {layer: int}, optional
        Numbers actually stored for each compressed layer (e.g. values + indices); default ``params``.
    n_biases : int
        Bias entries of the network (0 without biases).
    conv_layers : sequence of int
        Layers that are conv kernels: excluded from CR_1 / CR_2, counted in ``cr_honest``.

    Returns
    -------
    dict
        ``{"cr_1": float, "cr_2": float, "cr_honest": float}`` (``cr_2`` is 1 with no compressed layer).

    Raises
    ------
    ValueError
        If ``shapes`` holds no fully connected layer (the ratios would divide by zero), or a key of
        ``params`` / ``stored`` is not a layer ``0..L-1``.
    """
    stored = dict(params if stored is None else stored)
    sizes = [int(a) * int(b) for a, b in shapes]
    for name, counts in (("params", params), ("stored", stored)):
        outside = [k for k in counts if k not in range(len(sizes))]
        if outside:
            raise ValueError(f"{name} has keys {outside} that are not layers 0..{len(sizes) - 1}")
    fc = [i for i in range(len(sizes)) if i not in conv_layers]
    if not fc:
        raise ValueError(f"shapes must hold at least one fully connected layer, got {list(shapes)!r} "
                         f"(conv_layers {list(conv_layers)!r})")
    dense_fc = sum(sizes[i] for i in fc)
    kept_fc = sum(params[i] if i in params else sizes[i] for i in fc)
    comp_dense = sum(sizes[i] for i in params)
    out = {"cr_1": kept_fc / dense_fc, "cr_2": (sum(params.values()) / comp_dense) if params else 1.0}
    kept_all = sum(stored[i] if i in stored else sizes[i] for i in range(len(sizes))) + n_biases
    out["cr_honest"] = kept_all / (sum(sizes) + n_biases)
    return out
