r"""Top-k hard thresholding and sparsity measures for pruning (spec §3.3, §6).

:math:`H_q(W)` keeps the :math:`k = n - \mathrm{round}(q n)` entries of largest magnitude and zeroes the
rest; ties at the threshold are broken by lower flat index, so exactly :math:`k` entries survive. It is
the exact Euclidean projection onto :math:`\{S : \|S\|_0 \le k\}`. The threshold comes from a
partial sort (``partition``, O(n)), not a quantile.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

import numpy as np

from .._validation import check_array_sequence, check_int, check_ndim, check_real
from ..backend import Backend, infer_backend


def _check_sparsity(sparsity: Any) -> float:
    """``sparsity`` as a float in [0, 1) (1 would keep nothing), ``ValueError``/``TypeError`` naming it."""
    return check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)


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
        In ``0..n``.

    Raises
    ------
    ValueError, TypeError
        If ``n`` is not an integer ≥ 0 or ``sparsity`` is not a number in [0, 1); the message names it.
    """
    n = int(check_int(n, "n", minimum=0))  # type: ignore[arg-type]
    return n - int(math.floor(_check_sparsity(sparsity) * n + 0.5))


def topk_mask(absval: Any, k: int, *, backend: "str | Backend | None" = None) -> Any:
    """Boolean mask of the ``k`` largest entries of a flat array (ties: lower index first).

    The threshold is the k-th largest value from one ``partition`` (O(n)); entries above it are kept
    and the remaining places go to the entries equal to it, lowest index first, so exactly ``k``
    entries are set (+Inf counts as the largest value).

    Parameters
    ----------
    absval : array_like, shape (n,), float32, float64 or integer
        The values to rank (magnitudes, for pruning); no NaN (a NaN has no rank: ``partition`` would
        count it as the largest and the mask would hold one entry fewer than asked).
    k : int
        How many to keep, ``0 <= k <= n``.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``absval``.

    Returns
    -------
    array of bool, shape (n,)

    Raises
    ------
    ValueError
        If ``absval`` is not 1-D or holds NaN (:class:`~nnbcd._validation.NonFiniteError`), or ``k`` is
        not an integer in ``0..n``.
    TypeError
        If ``absval`` is not an array of real numbers.
    """
    be = infer_backend(absval, backend=backend)
    xp = be.xp
    absval = be.as_real_array(absval, "absval", ndim=1, allow_nan=False)
    n = absval.size
    k = int(check_int(k, "k", minimum=0, maximum=n))  # type: ignore[arg-type]
    if k == n:
        return xp.ones(n, dtype=bool)
    if k == 0:
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
    weights : list or tuple of arrays
        The weight matrices (any shapes; float32, float64, or integers, computed in float64), at least
        one, no NaN (±Inf are the largest magnitudes).
    sparsity : float in [0, 1)
        The fraction :math:`q` of all entries to zero.
    backend : {"numpy", "numba", "cupy"} or Backend, optional
        Default: the backend of ``weights``.

    Returns
    -------
    list of arrays
        New arrays of the shapes of ``weights``, in their floating dtypes.

    Raises
    ------
    ValueError
        If ``weights`` is empty, an array holds NaN (the message names ``weights[k]``), or ``sparsity``
        is not in [0, 1).
    TypeError
        If ``weights`` is one bare array instead of a list (``[W]``), or an entry is not real numbers.
    """
    weights = check_array_sequence(weights, "weights")
    sparsity = _check_sparsity(sparsity)
    be = infer_backend(*weights, backend=backend)
    xp = be.xp
    weights = [be.as_real_array(w, f"weights[{k}]", allow_nan=False) for k, w in enumerate(weights)]
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
    weights : list or tuple of arrays
        Any shapes, any backend, any numeric dtype (a zero is a zero), at least one entry in all.

    Returns
    -------
    float
        (number of zeros) / (number of entries).

    Raises
    ------
    TypeError
        If ``weights`` is not a list or tuple, or an entry is not a numeric array.
    ValueError
        If the arrays hold no entry at all.
    """
    weights = [_numeric(w, f"weights[{k}]") for k, w in enumerate(check_array_sequence(weights, "weights"))]
    total = sum(w.size for w in weights)
    if total == 0:
        raise ValueError("weights hold no entries: the sparsity of nothing is undefined")
    return sum(int((w == 0).sum()) for w in weights) / total


def _numeric(w: Any, name: str) -> Any:
    """``w`` as an array (a nested list becomes numpy) whose dtype is a number (bool, int, float, complex)."""
    if not hasattr(w, "dtype"):
        try:
            w = np.asarray(w)
        except ValueError:
            raise TypeError(f"{name} must be an array or a nested sequence of numbers") from None
    if w.dtype.kind not in "biufc":
        raise TypeError(f"{name} has dtype {w.dtype}; expected numbers")
    return w


def effective_sparsity(weights: Sequence[Any], biases: Optional[Sequence[Optional[Any]]] = None) -> float:
    r"""Sparsity counting also weights made useless by dead units, iterated to a fixed point.

    A hidden unit j of layer i is dead when its incoming row of :math:`W_i` and its bias are zero (it
    outputs ReLU(0) = 0), or when its outgoing column of :math:`W_{i+1}` is zero (nothing reads it);
    the weights into or out of a dead unit are then counted as zero.

    Parameters
    ----------
    weights : list or tuple of arrays
        :math:`W_1..W_L` (host, numpy or array-like), :math:`W_i` of shape (d_i, d_{i-1}): consecutive
        shapes must chain.
    biases : sequence of arrays or None, optional
        :math:`b_i` of shape (d_i,), or ``None`` per layer or for all (no biases).

    Returns
    -------
    float
        1 − (weights still alive) / (all weights).

    Raises
    ------
    TypeError
        If ``weights`` (or ``biases``) is not a list or tuple, or an entry is not a numeric array.
    ValueError
        If a weight is not 2-D, the shapes do not chain, ``biases`` has another length or a bias
        another shape, or there are no weights at all; the message names the entry.
    """
    weights = [_numeric(w, f"weights[{k}]") for k, w in enumerate(check_array_sequence(weights, "weights"))]
    for k, w in enumerate(weights):
        check_ndim(w.shape, f"weights[{k}]", ndim=2)
        if k and w.shape[1] != weights[k - 1].shape[0]:
            raise ValueError(f"weights[{k}] has {w.shape[1]} columns but weights[{k - 1}] has "
                             f"{weights[k - 1].shape[0]} rows (W_i is (d_i, d_(i-1)))")
    if biases is None:
        biases = [None] * len(weights)
    biases = check_array_sequence(biases, "biases", allow_empty=True)
    if len(biases) != len(weights):
        raise ValueError(f"biases has {len(biases)} entries but weights has {len(weights)}")
    biases = [None if b is None else _numeric(b, f"biases[{k}]") for k, b in enumerate(biases)]
    for k, b in enumerate(biases):
        if b is not None and tuple(b.shape) != (weights[k].shape[0],):
            raise ValueError(f"biases[{k}] must have shape ({weights[k].shape[0]},), got {tuple(b.shape)}")
    alive = [np.asarray(w) != 0 for w in weights]
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
    if total == 0:
        raise ValueError("weights hold no entries: the sparsity of nothing is undefined")
    return 1.0 - sum(int(a.sum()) for a in alive) / total
