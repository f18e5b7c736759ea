"""Time NN-BCD sweeps through the solver itself: per block kind from its history, against the GEMM floor.

A sweep is timed inside :meth:`NNBCD.fit <nnbcd.NNBCD.fit>` (the history's ``time`` and ``time_<kind>``
columns: V, U, W, comp, ...). The first sweep is discarded (numba compilation, layer 0's cached
factor); a callback stops the fit before the last, monitored sweep, so every timed sweep is a plain one.
The floor is the sweep's FLOPs (:func:`~nnbcd.bench.flops.sweep_flops`) at the backend's GEMM peak
measured in the same run, under the same BLAS thread limit, at the sweep's largest product.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from ..backend.threads import blas_thread_limit
from ..bcd.state import Hyper
from ..ops import relu_prox
from ..result import Status
from .timing import gemm_rate, median_time
from .workloads import PROJECTION_OF, Workload


def _fit(model: Any, X: Any, y: Any, **kw: Any) -> Any:
    """``model.fit(X, y, **kw)``, re-raising the Ctrl-C that the fit caught.

    :meth:`NNBCD.fit <nnbcd.NNBCD.fit>` ends on ``KeyboardInterrupt`` with status
    :attr:`~nnbcd.result.Status.INTERRUPTED` and returns; a benchmark must stop instead of timing the cut
    fit (a NaN row, or a history without a timed sweep).

    Raises
    ------
    KeyboardInterrupt
        If the fit was interrupted.
    """
    model.fit(X, y, **kw)
    if model.result_.status == Status.INTERRUPTED:
        raise KeyboardInterrupt
    return model


class _StopAfter:
    """A fit callback that stops after ``n`` sweeps (before the final, monitored one), or once ``seconds`` have
    passed since the first sweep ended and at least two sweeps ran (one warm-up, one timed)."""

    def __init__(self, n: int, seconds: Optional[float] = None) -> None:
        self.n, self.seconds, self.t0 = n, seconds, None

    def __call__(self, result: Any) -> None:
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        if result.nit >= self.n or (self.seconds is not None and result.nit >= 2 and now - self.t0 >= self.seconds):
            raise StopIteration


@contextlib.contextmanager
def thread_policy(workload: Workload, apply: bool) -> Iterator[Optional[int]]:
    """The BLAS thread policy of :mod:`nnbcd.backend.threads` for ``workload`` when ``apply``, else no limit.

    Yields
    ------
    int or None
        The thread count in force, or ``None`` (the BLAS libraries' own default).
    """
    if not apply:
        yield None
        return
    m, k, n = workload.gemm
    with blas_thread_limit(2.0 * m * k * n) as threads:
        yield threads


def sweep_times(workload: Workload, variant: str, backend: str, dtype: str, repeats: int,
                max_seconds: Optional[float] = None) -> Dict[str, Any]:
    """Median seconds of ``repeats`` sweeps (after one warm-up sweep), in total and per block kind.

    Parameters
    ----------
    workload : Workload
    variant : str
        A key of ``workload.variants`` (``dense``, ``tt``, ``prune``, ``tt_cores``, ``prune_masked``).
    backend : {"numpy", "numba", "cupy"}
    dtype : {"float32", "float64"}
    repeats : int
        Timed sweeps (≥ 1).
    max_seconds : float, optional
        Stop timing earlier, after at least one timed sweep, once this much time has passed.

    Returns
    -------
    dict
        ``sweep_s`` (median of the history's ``time``), ``blocks_s`` (each ``time_<kind>`` column → its median),
        ``sweeps`` (each timed sweep's seconds).

    Raises
    ------
    KeyboardInterrupt
        If the fit was interrupted (Ctrl-C): the solver catches it and ends the fit, this raises it again.
    """
    X, y = workload.data()
    model = workload.estimator(variant, backend, dtype, max_iter=repeats + 2, monitor_every=repeats + 2)
    _fit(model, X, y, callback=_StopAfter(repeats + 1, max_seconds))
    hist = model.result_.history
    timed = slice(1, None)
    blocks = {k: float(np.median(hist[k][timed])) for k in hist if k.startswith("time_") and k != "time_monitor"}
    return {"sweep_s": float(np.median(hist["time"][timed])), "blocks_s": blocks,
            "sweeps": [float(t) for t in hist["time"][timed]]}


def time_sweep(workload: Workload, variant: str, backend: str, dtype: str, repeats: int,
               policy: bool = True) -> Dict[str, Any]:
    """One row of the sweep table: the sweep's times, FLOPs, GEMM rate and floor.

    Parameters
    ----------
    workload, variant, backend, dtype, repeats
        As :func:`sweep_times`.
    policy : bool
        Run under the BLAS thread policy (:func:`nnbcd.backend.threads.blas_thread_limit` for the
        sweep's largest product), else under the BLAS default; the GEMM rate is measured the same way.

    Returns
    -------
    dict
        ``workload``, ``variant``, ``backend``, ``dtype``, ``n``, ``widths``, ``sweep_flops``,
        ``gemm_shape``, ``gemm_gflops``, ``floor_s`` (= sweep_flops / GEMM rate), ``sweep_s``,
        ``time_over_floor``, ``blocks_s``, ``blocks_over_floor`` (``time_U``, ``time_W``, ``time_V`` over
        their blocks' FLOPs at the GEMM rate, :func:`~nnbcd.bench.flops.block_flops`; the dense sweep's
        counts, so for a compressed variant they include the compression's work), ``blas_threads``
        (``None``: the default), ``name``, ``seconds``.
    """
    with thread_policy(workload, policy) as threads:
        times = sweep_times(workload, variant, backend, dtype, repeats)
        rate = gemm_rate(*workload.gemm, dtype, backend, repeats)
    floor = workload.flops / rate
    over = {f"time_{kind}": times["blocks_s"][f"time_{kind}"] / (flops / rate)
            for kind, flops in workload.block_flops.items() if flops and f"time_{kind}" in times["blocks_s"]}
    return {"name": f"{workload.name}/{variant} {backend} {dtype}", "workload": workload.name, "variant": variant,
            "backend": backend, "dtype": dtype, "n": workload.n, "widths": list(workload.widths),
            "sweep_flops": workload.flops, "gemm_shape": list(workload.gemm), "gemm_gflops": rate / 1e9,
            "floor_s": floor, "seconds": times["sweep_s"], "sweep_s": times["sweep_s"],
            "time_over_floor": times["sweep_s"] / floor, "blocks_s": times["blocks_s"], "blocks_over_floor": over,
            "blas_threads": threads}


def naive_sweep(st: Any, hp: Hyper) -> None:
    """One sweep in the spec's reference formulation, in place: explicit inverses, Grams recomputed every
    sweep, direct V solves, the prox with temporaries (numpy, dense MLP without biases)."""
    L = st.n_layers
    inv = np.linalg.inv
    st.V[-1] = (st.Y + hp.gamma * st.U[-1] + hp.alpha * st.V[-1]) / (1 + hp.gamma + hp.alpha)
    st.U[-1] = (hp.gamma * st.V[-1] + hp.rho * (st.W[-1] @ st.V[-2])) / (hp.gamma + hp.rho)
    v = st.V[-2]
    st.W[-1] = (hp.alpha * st.W[-1] + hp.rho * st.U[-1] @ v.T) @ inv(
        hp.alpha * np.eye(v.shape[0], dtype=v.dtype) + hp.rho * v @ v.T)
    for i in range(L - 2, -1, -1):
        w = st.W[i + 1]
        d = w.shape[1]
        st.V[i] = inv(hp.gamma * np.eye(d, dtype=w.dtype) + hp.rho * w.T @ w) @ (
            hp.rho * w.T @ st.U[i + 1] + hp.gamma * np.maximum(st.U[i], 0))
        vin = st.v_in(i)
        a = (hp.rho * (st.W[i] @ vin) + hp.alpha * st.U[i]) / (hp.rho + hp.alpha)
        st.U[i] = relu_prox(st.V[i], a, (hp.rho + hp.alpha) / hp.gamma)
        st.W[i] = (hp.alpha * st.W[i] + hp.rho * st.U[i] @ vin.T) @ inv(
            hp.alpha * np.eye(vin.shape[0], dtype=vin.dtype) + hp.rho * vin @ vin.T)


def time_naive(workload: Workload, dtype: str, repeats: int, policy: bool = True) -> Dict[str, Any]:
    """The ``naive`` row: :func:`naive_sweep` from the solver's initial state, timed like a sweep.

    Parameters
    ----------
    workload : Workload
        A dense MLP (no conv layer).
    dtype : {"float32", "float64"}
    repeats : int
    policy : bool
        As :func:`time_sweep`.

    Returns
    -------
    dict
        As :func:`time_sweep` with ``backend="naive"``, ``variant="dense"`` and no ``blocks_s``.
    """
    X, y = workload.data()
    with thread_policy(workload, policy) as threads:
        model = _fit(workload.estimator("dense", "numpy", dtype, max_iter=0), X, y)
        p = model.get_params()
        hp = Hyper(gamma=p["gamma"], rho=p["rho"], alpha=p["alpha"], alpha_w=p["alpha"], alpha_b=p["alpha"],
                   kappa=1.0)
        t, _ = median_time(lambda: naive_sweep(model.state_, hp), repeats)
        rate = gemm_rate(*workload.gemm, dtype, "numpy", repeats)
    floor = workload.flops / rate
    return {"name": f"{workload.name}/dense naive {dtype}", "workload": workload.name, "variant": "dense",
            "backend": "naive", "dtype": dtype, "n": workload.n, "widths": list(workload.widths),
            "sweep_flops": workload.flops, "gemm_shape": list(workload.gemm), "gemm_gflops": rate / 1e9,
            "floor_s": floor, "seconds": t, "sweep_s": t, "time_over_floor": t / floor, "blas_threads": threads}


def time_scaling(workload: Workload, backend: str, dtype: str, repeats: int, ns: List[int],
                 widths: List[int]) -> List[Dict[str, Any]]:
    """The dense sweep of ``workload`` at other N and at other (equal) hidden widths.

    Parameters
    ----------
    workload : Workload
        The base network (its hidden layers are all set to each width of ``widths``).
    backend, dtype, repeats
        As :func:`time_sweep`.
    ns : list of int
        The sample counts of the N series (hidden widths as in ``workload``).
    widths : list of int
        The hidden widths of the width series (N as in ``workload``).

    Returns
    -------
    list of dict
        :func:`time_sweep` rows with ``axis`` ("n" or "width") and ``width`` (the widest hidden layer).
    """
    rows = []
    series = [("n", workload.resized(n=n)) for n in ns]
    series += [("width", workload.resized(hidden=(w,) * len(workload.hidden))) for w in widths]
    for axis, wl in series:
        row = time_sweep(wl, "dense", backend, dtype, repeats)
        width = max(wl.hidden)
        row.update(axis=axis, width=width, name=f"{wl.name} {axis} N={wl.n} width={width} {backend} {dtype}")
        rows.append(row)
    return rows


def speedups(rows: List[Dict[str, Any]], base: str = "numpy") -> None:
    """Add ``speedup_vs_<base>`` (base's sweep time / the row's) to each row that has a ``base`` twin
    (same workload, variant, dtype and, for scaling rows, axis, N and width), in place."""
    def key(r: Dict[str, Any]) -> tuple:
        return r["workload"], r["variant"], r["dtype"], r.get("axis"), r["n"], r.get("width")

    ref = {key(r): r["sweep_s"] for r in rows if r["backend"] == base}
    for r in rows:
        if key(r) in ref:
            r[f"speedup_vs_{base}"] = ref[key(r)] / r["sweep_s"]


def projection_ratios(rows: List[Dict[str, Any]]) -> None:
    """Add ``vs_projection`` (the row's sweep time / its projection twin's) to each exact-block row
    (variant ``tt_cores`` or ``prune_masked``, :data:`~nnbcd.bench.workloads.PROJECTION_OF`) that has the
    twin (same workload, N, backend, dtype, variant ``tt`` / ``prune``), in place."""
    ref = {(r["workload"], r["n"], r["backend"], r["dtype"], r["variant"]): r["sweep_s"] for r in rows}
    for r in rows:
        base = PROJECTION_OF.get(r["variant"])
        key = (r["workload"], r["n"], r["backend"], r["dtype"], base)
        if base is not None and key in ref:
            r["vs_projection"] = r["sweep_s"] / ref[key]
