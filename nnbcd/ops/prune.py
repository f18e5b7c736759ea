r"""Top-k hard thresholding and sparsity measures for pruning (spec §3.3, §6).

:math:`H_q(W)` keeps the :math:`k = n - \mathrm{round}(q n)` entries of largest magnitude and zeroes the
rest; ties at the threshold are broken by lower flat index, so exactly :math:`k` entries survive. It is
the exact Euclidean projection onto :math:`\{S : \|S\|_0 \le k\}`. The threshold comes from a
partial sort (``partition``, O(n)), not a quantile.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Sequence

import numpy as np

from ..backend import Backend, infer_backend


def n_keep(n: int, sparsity: float) -> int:
    r"""Number of entries :math:`H_q` keeps: :math:`k = n - \mathrm{round}(q n)` (halves rounded up).

    Parameters
    ----------
    n : int
        Number of entries.
    sparsity : float in [0, 1)
        The fraction :math:`q` to zero.

    Returns
    -------
    int
    """
    return n - int(math.floor(sparsity * n + 0.5))


def topk_mask(absval: Any, k: int, *, backend: "str | Backend | None" = None) -> Any:
    """Boolean mask of the ``k`` largest entries of a flat array (ties: lower index first).

    The threshold is the k-th largest value from one ``partition`` (O(n)); entries above it are kept
    and the remaining places go to the entries equal to it, lowest index first, so exactly
    ``min(max(k, 0), n)`` entries are set.

    Parameters
    ----------
    absval : array, shape (n,)
        The values to rank (magnitudes, for pruning).
    k : int
        How many to keep; ``k <= 0`` gives all False, ``k >= n`` all True.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``absval``.

    Returns
    -------
    array of bool, shape (n,)

    Raises
    ------
    ValueError
        If ``absval`` is not 1-D.
    TypeError
        If ``k`` is not an integer.
    """
    if getattr(absval, "ndim", None) != 1:
        raise ValueError(f"absval must be a 1-D array, got shape {getattr(absval, 'shape', None)}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int, got {k!r}")
    xp = infer_backend(absval, backend=backend).xp
    absval = xp.asarray(absval)
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


def hard_threshold(weights: Sequence[Any], sparsity: float, *,
                   backend: "str | Backend | None" = None) -> List[Any]:
    r"""Top-k hard thresholding :math:`H_q` applied jointly to ``weights`` (one threshold over all of them).

    Keeps the :math:`k = n - \mathrm{round}(q n)` largest-magnitude entries of the :math:`n` entries of
    all matrices together (ties by lower flat index in the concatenation) and zeroes the rest: the exact
    Euclidean projection onto :math:`\{S : \|S\|_0 \le k\}` (spec §3.3). Pass one matrix for a
    per-layer threshold.

    Parameters
    ----------
    weights : sequence of arrays
        The weight matrices (any shapes, float dtypes), at least one.
    sparsity : float in [0, 1)
        The fraction :math:`q` of all entries to zero.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``weights``.

    Returns
    -------
    list of arrays
        New arrays, the shapes and dtypes of ``weights``.

    Raises
    ------
    ValueError
        If ``weights`` is empty or ``sparsity`` is not in [0, 1).
    """
    weights = list(weights)
    if not weights:
        raise ValueError("weights must hold at least one array")
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    be = infer_backend(*weights, backend=backend)
    xp = be.xp
    weights = [xp.asarray(w) for w in weights]
    flat = xp.concatenate([xp.abs(w).ravel() for w in weights])
    mask = topk_mask(flat, n_keep(flat.size, sparsity), backend=be)
    out, start = [], 0
    for w in weights:
        m = mask[start:start + w.size].reshape(w.shape)
        out.append(xp.where(m, w, xp.zeros((), dtype=w.dtype)))
        start += w.size
    return out


def true_sparsity(weights: Sequence[Any]) -> float:
    """Fraction of zero entries over all weight matrices together.

    Parameters
    ----------
    weights : sequence of arrays
        Any shapes, any backend.

    Returns
    -------
    float
        (number of zeros) / (number of entries).
    """
    total = sum(w.size for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total


def effective_sparsity(weights: Sequence[Any], biases: Optional[Sequence[Optional[Any]]] = None) -> float:
    r"""Sparsity counting also weights made useless by dead units, iterated to a fixed point.

    A hidden unit j of layer i is dead when its incoming row of :math:`W_i` and its bias are zero (it
    outputs ReLU(0) = 0), or when its outgoing column of :math:`W_{i+1}` is zero (nothing reads it);
    the weights into or out of a dead unit are then counted as zero.

    Parameters
    ----------
    weights : sequence of arrays
        :math:`W_1..W_L` (host, numpy or array-like), :math:`W_i` of shape (d_i, d_{i-1}).
    biases : sequence of arrays or None, optional
        :math:`b_i` of shape (d_i,), or ``None`` per layer or for all (no biases).

    Returns
    -------
    float
        1 − (weights still alive) / (all weights).
    """
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
