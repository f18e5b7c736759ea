"""TT-SVD: ours (Gram eigenvectors and full SVD) against tensorly's ``tensor_train`` with the same rank list.

tensorly is a benchmark and test oracle (the ``bench`` / ``test`` extras), imported only here, when the
comparison runs; without it the comparison is reported absent.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..backend import get_backend
from ..ops import tt
from .timing import matrix_thread_limit, median_time

#: (name, matrix shape, TT modes of its row-major reshape)
Case = Tuple[str, Tuple[int, int], Tuple[int, ...]]
#: the HAR layers (bench_tt.py's cases): a 1024×1024 weight and the 1024×561 input layer, the reference's modes
HAR_CASES: List[Case] = [("1024x1024", (1024, 1024), (4,) * 10),
                         ("1024x561", (1024, 561), (6, 22, 34, 2, 2, 2, 2, 2, 2, 2))]
#: the digits MLP's 256×256 layer
DIGITS_CASES: List[Case] = [("256x256", (256, 256), (4,) * 8)]
KINDS = ("gaussian", "decaying")


def weight(shape: Tuple[int, int], kind: str, dtype: str, rng: np.random.Generator) -> np.ndarray:
    r"""A test weight: iid Gaussian, or with singular values decaying like a trained layer's
    (:math:`s_k = e^{-k/60}`, random orthonormal singular vectors).

    Parameters
    ----------
    shape : (int, int)
    kind : {"gaussian", "decaying"}
    dtype : {"float32", "float64"}
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of ``shape`` and ``dtype``
    """
    if kind == "gaussian":
        return rng.standard_normal(shape).astype(dtype)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], min(shape))))
    v, _ = np.linalg.qr(rng.standard_normal((shape[1], min(shape))))
    s = np.exp(-np.arange(min(shape)) / 60.0)
    return ((u * s) @ v.T).astype(dtype)


def tensorly_backend(backend: str) -> str:
    """The tensorly backend that runs on the same device as ours: ``cupy`` for the cupy backend."""
    return "cupy" if backend == "cupy" else "numpy"


def time_tt_svd(backend: str, cases: Sequence[Case], kinds: Sequence[str], dtypes: Sequence[str], rank: int,
                repeats: int) -> List[Dict[str, Any]]:
    """Median times and relative errors of tensorly's ``tensor_train`` and our ``tt_svd`` (full, gram).

    Parameters
    ----------
    backend : {"numpy", "numba", "cupy"}
        Ours runs there; tensorly on the same array library (:func:`tensorly_backend`).
    cases : sequence of Case
    kinds : sequence of {"gaussian", "decaying"}
    dtypes : sequence of {"float32", "float64"}
    rank : int
        The rank cap (ranks from :func:`nnbcd.ops.tt_ranks`, given to both).
    repeats : int

    Returns
    -------
    list of dict
        Per case, kind and dtype: ``tensorly_s``, ``full_s``, ``gram_s`` and the relative Frobenius
        errors ``*_err``, ``speedup_gram`` / ``speedup_full`` (tensorly / ours), ``err_ratio_*`` (ours /
        tensorly), ``seconds`` (ours with ``svd="auto"``'s choice: gram for float64, full for float32),
        ``blas_threads`` (the thread policy's count for the matrix, :func:`~.timing.matrix_thread_limit`).

    Raises
    ------
    ImportError
        If tensorly is not installed.
    """
    import tensorly as tl

    be = get_backend(backend)
    rng = np.random.default_rng(0)
    rows = []
    with tl.backend_context(tensorly_backend(backend)):
        for name, shape, modes in cases:
            ranks = tt.tt_ranks(modes, rank)
            # the test data are made under the same limit: on a busy machine, even a QR with idle BLAS
            # threads can take 100x longer
            with matrix_thread_limit(shape) as threads:
                for kind in kinds:
                    for dtype in dtypes:
                        row = _tt_row(shape, modes, ranks, dtype, be, rank, repeats, weight(shape, kind, dtype, rng))
                        rows.append(dict(name=f"{name} {kind} {backend} {dtype}", case=name, kind=kind,
                                         backend=backend, dtype=dtype, ranks=ranks, blas_threads=threads, **row))
    return rows


def _tt_row(shape: Tuple[int, int], modes: Tuple[int, ...], ranks: List[int], dtype: str, be: Any, rank: int,
            repeats: int, w: np.ndarray) -> Dict[str, Any]:
    """The times and errors of one weight ``w`` (tensorly's backend already set)."""
    import tensorly as tl
    from tensorly.decomposition import tensor_train

    x = be.asarray(w.reshape(modes))
    norm = np.linalg.norm(w.astype(np.float64))

    def err(dense: Any) -> float:
        dense = be.to_numpy(dense).astype(np.float64)
        return float(np.linalg.norm(dense.reshape(shape) - w) / norm)

    t_tl, f = median_time(lambda: tensor_train(x, rank=ranks), repeats, sync=be.synchronize)
    res = {m: median_time(lambda m=m: tt.tt_svd(x, rank, svd=m, backend=be), repeats, sync=be.synchronize)
           for m in ("full", "gram")}
    e_tl = err(tl.tt_to_tensor(f))
    e = {m: err(tt.tt_to_tensor(cores, backend=be)) for m, (_, cores) in res.items()}
    t = {m: res[m][0] for m in res}
    auto = "gram" if dtype == "float64" else "full"
    return dict(tensorly_s=t_tl, tensorly_err=e_tl, full_s=t["full"], full_err=e["full"], gram_s=t["gram"],
                gram_err=e["gram"], speedup_gram=t_tl / t["gram"], speedup_full=t_tl / t["full"],
                err_ratio_gram=e["gram"] / e_tl, err_ratio_full=e["full"] / e_tl, seconds=t[auto])
