r"""Top-k hard thresholding and sparsity measures for pruning (spec §3.3, §6).

:math:`H_q(W)` keeps the :math:`k = n - \mathrm{round}(q n)` entries of largest magnitude and zeroes the
rest; ties at the threshold are broken by lower flat index, so exactly :math:`k` entries survive. It is
the exact Euclidean projection onto :math:`\{S : \|S\|_0 \le k\}`. The threshold comes from a
partial sort (``partition``, O(n)), not a quantile.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence


def n_keep(n: int, sparsity: float) -> int:
    """:math:`k = n - \\mathrm{round}(q n)` (halves rounded up)."""
    return n - int(math.floor(sparsity * n + 0.5))


def topk_mask(absval: Any, k: int, xp: Any) -> Any:
    """Boolean mask of the ``k`` largest entries of the flat array ``absval`` (ties: lower index first)."""
    n = absval.size
    if k >= n:
        return xp.ones(n, dtype=bool)
    if k <= 0:
        return xp.zeros(n, dtype=bool)
    thr = xp.partition(absval, n - k)[n - k]  # the k-th largest value
    mask = absval > thr
    missing = k - int(mask.sum())
    ties = xp.flatnonzero(absval == thr)[:missing]
    mask[ties] = True
    return mask


def hard_threshold(weights: Sequence[Any], sparsity: float, xp: Any) -> List[Any]:
    """:math:`H_q` applied jointly to ``weights`` (one threshold over all of them; pass one matrix for a
    per-layer threshold). Returns new arrays of the same shapes and dtypes."""
    flat = xp.concatenate([xp.abs(w).ravel() for w in weights])
    mask = topk_mask(flat, n_keep(flat.size, sparsity), xp)
    out, start = [], 0
    for w in weights:
        m = mask[start:start + w.size].reshape(w.shape)
        out.append(xp.where(m, w, xp.zeros((), dtype=w.dtype)))
        start += w.size
    return out


def true_sparsity(weights: Sequence[Any]) -> float:
    """Zeros in all weight matrices / all weights."""
    total = sum(w.size for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total


def effective_sparsity(weights: Sequence[Any], biases: Optional[Sequence[Optional[Any]]] = None) -> float:
    r"""Sparsity counting also weights made useless by dead units, iterated to a fixed point.

    A hidden unit j of layer i is dead when its incoming row of :math:`W_i` and its bias are zero (it
    outputs ReLU(0) = 0), or when its outgoing column of :math:`W_{i+1}` is zero (nothing reads it);
    the weights into or out of a dead unit are then counted as zero. ``weights`` on the host (numpy).
    """
    import numpy as np

    alive = [np.asarray(w) != 0 for w in weights]
    biases = list(biases) if biases is not None else [None] * len(weights)
    changed = True
    while changed:
        changed = False
        for i in range(len(alive) - 1):
            b = biases[i]
            no_input = ~alive[i].any(axis=1) & (True if b is None else np.asarray(b) == 0)
            no_output = ~alive[i + 1].any(axis=0)
            dead = no_input | no_output
            if alive[i][dead].any() or alive[i + 1][:, dead].any():
                alive[i][dead] = False
                alive[i + 1][:, dead] = False
                changed = True
    total = sum(a.size for a in alive)
    return 1.0 - sum(int(a.sum()) for a in alive) / total
