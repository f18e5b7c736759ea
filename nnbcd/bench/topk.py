"""Top-k pruning: our hard threshold (one ``partition``, O(n)) against a full sort of the magnitudes."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..backend import get_backend
from ..ops.prune import hard_threshold, n_keep
from .timing import median_time

#: weight shapes: the digits MLP's 256×256 and HAR's 1024×1024 layers (``small``); HAR's and the MNIST
#: CNN's 1024×5408 (``paper``)
SMALL_SHAPES: List[Tuple[int, int]] = [(256, 256), (1024, 1024)]
PAPER_SHAPES: List[Tuple[int, int]] = [(1024, 1024), (1024, 5408)]


def sort_threshold(w: Any, sparsity: float, xp: Any) -> Any:
    """The straightforward top-k: argsort all magnitudes, keep the k largest (Gaussian weights: no ties)."""
    flat = xp.abs(w).ravel()
    k = n_keep(flat.size, sparsity)
    keep = xp.argsort(-flat)[:k]
    out = xp.zeros_like(flat)
    out[keep] = w.ravel()[keep]
    return out.reshape(w.shape)


def time_topk(backend: str, shapes: Sequence[Tuple[int, int]], dtypes: Sequence[str], repeats: int,
              sparsity: float = 0.9) -> List[Dict[str, Any]]:
    """Median times of :func:`nnbcd.ops.hard_threshold` and of :func:`sort_threshold` on Gaussian weights.

    Parameters
    ----------
    backend : {"numpy", "numba", "cupy"}
        Both run there.
    shapes : sequence of (int, int)
    dtypes : sequence of {"float32", "float64"}
    repeats : int
    sparsity : float
        The pruned fraction (0.9: keep 10 %).

    Returns
    -------
    list of dict
        ``shape``, ``ours_s``, ``sort_s``, ``speedup`` (sort / ours), ``kept`` and ``same`` (both keep the
        same entries).
    """
    be = get_backend(backend)
    rng = np.random.default_rng(0)
    rows = []
    for shape in shapes:
        for dtype in dtypes:
            w = be.asarray(rng.standard_normal(shape), dtype)
            t_ours, ours = median_time(lambda: hard_threshold([w], sparsity, backend=be)[0], repeats,
                                       sync=be.synchronize)
            t_sort, ref = median_time(lambda: sort_threshold(w, sparsity, be.xp), repeats, sync=be.synchronize)
            rows.append(dict(name=f"{shape[0]}x{shape[1]} {backend} {dtype}", shape=list(shape), backend=backend,
                             dtype=dtype, sparsity=sparsity, ours_s=t_ours, sort_s=t_sort, seconds=t_ours,
                             speedup=t_sort / t_ours, kept=int(be.xp.count_nonzero(ours)),
                             same=bool(be.xp.array_equal(ours != 0, ref != 0))))
    return rows
