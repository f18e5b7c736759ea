"""Two runs at once: the per-sweep time of a run while a second, identical run shares the machine.

Two worker processes (``spawn``) each build the same network. In each round, worker 0 first runs alone
(worker 1 waits on a barrier), then both run at once; a round is made without the BLAS thread policy
(each BLAS pool at its default, all cores) and with it (:func:`nnbcd.backend.threads.blas_thread_limit`).
The figure of merit is (mean per-sweep time of the two runs at once) / (per-sweep time alone): 1 when the
machine has a core for each run's threads, and far above when their threads fight over the cores.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import traceback
from typing import Any, Dict, Optional

from .sweeps import sweep_times, thread_policy
from .timing import Clock
from .workloads import Workload, digits_tt_preset

#: the issue's goal: each of two runs at once at most 1.3x as slow per sweep as one alone
GOAL = 1.3
_TIMEOUT_S = 600


def _measure(workload: Workload, variant: str, backend: str, dtype: str, sweeps: int,
             max_seconds: float) -> Dict[str, float]:
    """Median wall seconds per sweep and the fit's CPU seconds (all threads, setup included) per sweep."""
    clock = Clock()
    res = sweep_times(workload, variant, backend, dtype, sweeps, max_seconds)
    return {"wall_s": res["sweep_s"], "cpu_s": clock.read()["cpu_s"] / (len(res["sweeps"]) + 1),
            "sweeps": len(res["sweeps"])}


def _worker(rank: int, workload: Workload, variant: str, backend: str, dtype: str, sweeps: int,
            max_seconds: float, barrier: Any, queue: Any) -> None:
    def measure() -> Dict[str, float]:
        return _measure(workload, variant, backend, dtype, sweeps, max_seconds)

    try:
        with thread_policy(workload, True):  # imports, compilation
            sweep_times(workload, variant, backend, dtype, 1)
        barrier.wait(_TIMEOUT_S)
        for policy in (False, True):
            with thread_policy(workload, policy) as threads:
                if rank == 0:
                    queue.put((rank, policy, "alone", measure(), threads))
                barrier.wait(_TIMEOUT_S)
                queue.put((rank, policy, "both", measure(), threads))
                barrier.wait(_TIMEOUT_S)
    except BaseException:  # reported by the parent; the barrier is broken so that the other worker stops too
        barrier.abort()
        queue.put((rank, None, "error", traceback.format_exc(), None))


def two_runs_at_once(backend: str, dtype: str = "float32", sweeps: int = 30, max_seconds: float = 20.0,
                     workload: Optional[Workload] = None, variant: str = "tt") -> Dict[str, Any]:
    """Per-sweep time of one run alone and of each of two runs at once, without and with the thread policy.

    Parameters
    ----------
    backend : {"numpy", "numba"}
        A CPU backend.
    dtype : {"float32", "float64"}
    sweeps : int
        Timed sweeps per measurement (median).
    max_seconds : float
        Each measurement stops earlier once this much time has passed (oversubscribed sweeps can be 100x
        slower); the number of sweeps timed is reported.
    workload : Workload, optional
        Default: solvers/digits_tt.toml's model (:func:`~nnbcd.bench.workloads.digits_tt_preset`).
    variant : str

    Returns
    -------
    dict
        ``workload``, ``variant``, ``backend``, ``dtype``, ``sweeps``, ``goal``, ``load_1min`` (the load
        average before the workers started: other work on the machine), and for ``without_policy`` and
        ``with_policy``: ``blas_threads`` (``None``: the BLAS default), ``alone_s``, ``two_at_once_s``
        (each run's median seconds per sweep), ``ratio`` (their mean / alone), and the same in CPU seconds
        per sweep (``alone_cpu_s``, ``two_at_once_cpu_s``, ``cpu_ratio``: the work the runs did, including
        BLAS threads spinning while they wait; unlike wall time, not inflated by other work on the machine),
        ``sweeps_timed`` (alone, then each run at once), ``ratio_to_best_alone`` (the mean of the two runs at
        once over the faster of the two single-run times).

    Raises
    ------
    RuntimeError
        If a worker failed (its traceback is in the message) or did not finish in time.
    """
    workload = workload or digits_tt_preset()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, workload, variant, backend, dtype, sweeps, max_seconds, barrier,
                                                          queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results: Dict[tuple, Any] = {}
    try:
        while len(results) < 6:  # worker 0: alone and both, worker 1: both; for each policy
            try:
                rank, policy, what, value, threads = queue.get(timeout=_TIMEOUT_S)
            except queue_module.Empty:
                raise RuntimeError(f"the two-runs-at-once workers did not finish within {_TIMEOUT_S} s") from None
            if what == "error":
                raise RuntimeError("a two-runs-at-once worker failed:\n" + value)
            results[(rank, policy, what)] = (value, threads)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
    out: Dict[str, Any] = {"name": f"two runs at once {workload.name}/{variant} {backend} {dtype}",
                           "workload": workload.name, "variant": variant, "backend": backend, "dtype": dtype,
                           "sweeps": sweeps, "goal": GOAL, "load_1min": load}
    for policy, key in ((False, "without_policy"), (True, "with_policy")):
        alone, threads = results[(0, policy, "alone")]
        both = [results[(r, policy, "both")][0] for r in range(2)]
        out[key] = {"blas_threads": threads, "alone_s": alone["wall_s"],
                    "two_at_once_s": [b["wall_s"] for b in both],
                    "ratio": sum(b["wall_s"] for b in both) / 2 / alone["wall_s"],
                    "alone_cpu_s": alone["cpu_s"], "two_at_once_cpu_s": [b["cpu_s"] for b in both],
                    "cpu_ratio": sum(b["cpu_s"] for b in both) / 2 / alone["cpu_s"],
                    "sweeps_timed": [alone["sweeps"]] + [b["sweeps"] for b in both]}
    best = min(out[k]["alone_s"] for k in ("without_policy", "with_policy"))
    for key in ("without_policy", "with_policy"):  # against the faster single run, whichever policy gave it
        out[key]["ratio_to_best_alone"] = sum(out[key]["two_at_once_s"]) / 2 / best
    out["seconds"] = out["with_policy"]["two_at_once_s"][0]
    return out
