"""How many BLAS threads a computation gets: chosen by the size of its products, scoped by threadpoolctl.

On a machine shared with other runs, a small product split over several BLAS threads loses more than it
gains: each call ends in a barrier, and a thread descheduled by the other run stalls the whole call (two
``solvers/digits_tt.toml`` runs at once on 2 cores: 4x slower per sweep with two OpenBLAS threads each,
as fast as alone with one each). A thread is worth adding only when its share of a product is long next
to a scheduler time slice (a few ms), so the policy gives one thread per :data:`MIN_FLOPS_PER_THREAD`
FLOPs of the largest product, at least one, at most the cores this process may run on. The limit is
scoped (``with blas_thread_limit(...)``): nothing global changes, and the caller's setting is restored.
"""
from __future__ import annotations

import contextlib
import os
from contextlib import contextmanager
from typing import Any, ContextManager, Iterator, List, Optional

from .._validation import check_int, check_positive

#: FLOPs of one product per BLAS thread: 1e9 is ~6 ms of float32 GEMM on one AVX-512 core (~160 GF/s),
#: about one scheduler time slice. The digits MLP's largest product (256 x 256 x 1347, 1.8e8 FLOPs) gets one
#: thread, the HAR MLP's (1024 x 1024 x 7352, 1.5e10) 15, capped by the cores.
MIN_FLOPS_PER_THREAD = 1e9


def usable_cores() -> int:
    """The number of CPUs this process may run on (its affinity mask where the OS has one).

    Returns
    -------
    int
        ``len(os.sched_getaffinity(0))`` on Linux, else ``os.cpu_count()`` (1 if unknown).
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - macOS and Windows have no affinity call


def blas_threads(gemm_flops: float, n_jobs: Optional[int] = None) -> int:
    r"""BLAS threads for a computation whose largest product has ``gemm_flops`` FLOPs.

    .. math:: t = \min\bigl(c, \max(1, \lfloor F / F_{\min} \rfloor)\bigr)

    with :math:`F` = ``gemm_flops``, :math:`F_{\min}` = :data:`MIN_FLOPS_PER_THREAD` and :math:`c` the
    usable cores (:func:`usable_cores`).

    Parameters
    ----------
    gemm_flops : float
        FLOPs of the largest matrix product, :math:`2mnk` for an m×k by k×n GEMM.
    n_jobs : int, optional
        An explicit choice, which wins: a positive count (capped by nothing), or -1 for every usable core.
        ``None`` applies the size policy.

    Returns
    -------
    int
        ≥ 1.

    Raises
    ------
    ValueError
        If ``gemm_flops`` is negative or not finite, or ``n_jobs`` is 0 or below -1; the message names it.
    TypeError
        If ``gemm_flops`` is not a real number.
    """
    flops = check_positive(gemm_flops, "gemm_flops", allow_zero=True)
    if n_jobs is not None:
        if n_jobs == -1:
            return usable_cores()
        return check_int(n_jobs, "n_jobs", minimum=1)
    return max(1, min(usable_cores(), int(flops // MIN_FLOPS_PER_THREAD)))


@contextmanager
def blas_thread_limit(gemm_flops: float, n_jobs: Optional[int] = None) -> Iterator[int]:
    """Limit the BLAS libraries' thread pools to :func:`blas_threads` within a ``with`` block.

    Parameters
    ----------
    gemm_flops, n_jobs
        As :func:`blas_threads`.

    Yields
    ------
    int
        The thread count in force inside the block.

    Raises
    ------
    ValueError, TypeError
        As :func:`blas_threads`.

    Notes
    -----
    Every BLAS loaded in the process (numpy's and scipy's OpenBLAS, MKL, ...) is limited through
    ``threadpoolctl.threadpool_limits(limits, user_api="blas")`` and restored on exit; OpenMP pools (numba's
    threaded kernels) are left alone. A GPU backend's cuBLAS is not affected.
    """
    from threadpoolctl import threadpool_limits

    n = blas_threads(gemm_flops, n_jobs)
    with threadpool_limits(limits=n, user_api="blas"):
        yield n


#: one threadpoolctl controller, made on first use: scanning the loaded libraries takes ~1 ms, a limit from
#: the scanned list microseconds
_CONTROLLER: List[Any] = []


def factor_threads(n: int) -> ContextManager[Any]:
    r"""Scope a Cholesky of size ``n`` (and the Gram it is made from) to one BLAS thread when the thread
    policy gives its :math:`n^3/3` FLOPs one (:func:`blas_threads`); else no change.

    LAPACK's ``potrf`` ends every panel step in a barrier, so a factorisation split over threads stalls
    whenever one of them is descheduled: on 2 cores with one busy, a float32 ``potrf`` of size 1024 took
    0.63 s with two OpenBLAS threads and 0.005 s with one (0.003 s with two on idle cores). A sweep of
    the MNIST CNN factors four such systems. Only lowers the thread count: the enclosing limit (``n_jobs``,
    the fit's policy) applies otherwise.

    Parameters
    ----------
    n : int
        Size of the SPD system (≥ 0).

    Returns
    -------
    context manager
        ``threadpoolctl``'s limit of the BLAS pools to one thread (restored on exit), or a null context.

    Notes
    -----
    The controller lists the BLAS libraries loaded when it is first used; one loaded later is not limited.
    """
    if blas_threads(n ** 3 / 3.0) > 1:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


__all__ = ["MIN_FLOPS_PER_THREAD", "blas_thread_limit", "blas_threads", "factor_threads", "usable_cores"]
