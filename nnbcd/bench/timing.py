"""Timing primitives of the benchmarks: medians of repeats, the measured GEMM rate, wall and CPU clocks."""
from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any, Callable, Dict, Tuple, Union

import numpy as np

from ..backend import Backend, get_backend


def median_time(fn: Callable[[], Any], repeats: int, warmup: bool = True,
                sync: Callable[[], Any] = lambda: None) -> Tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls of ``fn`` (after one untimed call) and the last result.

    Parameters
    ----------
    fn : callable
        The work to time, called without arguments.
    repeats : int
        Timed calls (≥ 1).
    warmup : bool
        Make one untimed call first (compilation, caches).
    sync : callable
        Runs inside each timed call (a GPU backend's ``synchronize``), so that queued work is counted.

    Returns
    -------
    (float, object)
        The median seconds and ``fn``'s last return value.
    """
    out = fn() if warmup else None
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def gemm_rate(m: int, k: int, n: int, dtype: str, backend: "str | Backend" = "numpy", repeats: int = 10) -> float:
    r"""Peak FLOP/s of the backend's GEMM on an (m × k) @ (k × n) product, under the caller's thread limits.

    Parameters
    ----------
    m, k, n : int
        The product's shape: the largest GEMM of the computation the rate is a floor for.
    dtype : {"float32", "float64"}
    backend : str or Backend
        Whose ``matmul`` (the numpy and numba backends: the BLAS numpy/scipy load; cupy: cuBLAS).
    repeats : int
        Timed calls; at least 10 are made.

    Returns
    -------
    float
        :math:`2mkn / t_{\min}` with :math:`t_{\min}` the fastest call: the peak, so a floor derived from
        it is the lowest and a time-to-floor ratio the conservative (largest) one.
    """
    be = get_backend(backend)
    rng = np.random.default_rng(0)
    a = be.asarray(rng.standard_normal((m, k)), dtype)
    b = be.asarray(rng.standard_normal((k, n)), dtype)
    out = be.empty((m, n), a.dtype)
    be.matmul(a, b, out=out)
    be.synchronize()
    ts = []
    for _ in range(max(repeats, 10)):
        t0 = time.perf_counter()
        be.matmul(a, b, out=out)
        be.synchronize()
        ts.append(time.perf_counter() - t0)
    return 2.0 * m * k * n / float(np.min(ts))


def matrix_thread_limit(shape: Tuple[int, int]) -> Any:
    r"""The BLAS thread policy (:func:`nnbcd.backend.threads.blas_thread_limit`) for a factorisation of an
    m × n matrix, sized as its Gram product :math:`2mn\min(m, n)`; a context manager yielding the count."""
    from ..backend.threads import blas_thread_limit

    m, n = shape
    return blas_thread_limit(2.0 * m * n * min(m, n))


class Clock:
    """Wall and CPU seconds since creation; CPU time counts this process and its finished children.

    On a machine shared with other work, wall time alone says little: CPU time tells whether the run
    itself used the cores it had (``cpu_s / wall_s`` ≈ the cores busy on its behalf).
    """

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = self._cpu_now()

    @staticmethod
    def _cpu_now() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def read(self) -> Dict[str, float]:
        """``{"wall_s": ..., "cpu_s": ...}`` elapsed so far."""
        return {"wall_s": time.perf_counter() - self._wall, "cpu_s": self._cpu_now() - self._cpu}


def write_result(path: Union[str, Path], payload: Dict[str, Any]) -> Path:
    """Write a benchmark's JSON result, creating its folder, and say where.

    Parameters
    ----------
    path : str or Path
    payload : dict
        JSON-serialisable (numpy scalars are converted).

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_json_default))
    print(f"wrote {path}")
    return path


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")
