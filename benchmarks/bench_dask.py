"""Sample-sharded NN-BCD on a 2-worker LocalCluster against the single-process solver, and a cost model.

    python benchmarks/bench_dask.py [--n 7352,30000,100000] [--widths 561,1024,1024,1024,512,6]
                                    [--workers 2] [--sweeps 3] [--dtype float32] [--out ...json]
                                    [--plot docs/img/dask_scaling.png] [--plot-only]

``--plot`` draws sweep time against N (log-log): the single process and the ``--workers``-process runs
as measured, and the cost model's prediction for p = 2, 8 and 64; ``--plot-only`` redraws it from
``--out`` without running anything.

Synthetic data at the given widths (default the HAR preset's, solvers/har_tt.toml): for each N, one
single-process ``NNBCD`` fit in a fresh process and one ``DaskNNBCD`` fit on a LocalCluster of
``--workers`` processes with 1 thread each (workers restarted per N, so their peak memory is that N's),
both with ``--sweeps`` sweeps (the first is not timed). The single-process run is limited to one BLAS
thread, as each worker is. Reports per N: the median sweep time of each, the peak resident memory of
the single process and of each worker (``ru_maxrss``: the whole run, data generation included), the steady
peak of the sweeps after the first (Linux: the kernel's peak record restarted after sweep 1) and what is
resident at the end, beside the d×N arrays a worker's shards hold,
and the bytes moved per sweep (weights sent to the shards + statistics the shards sent, counted from
the arrays' sizes by :class:`nnbcd.dask.engine.DaskEngine`).

Cost model (docs/dask.md), fitted on the measured rows:
``t_1(N) = a·N + s`` (single process: per-sample work plus the N-independent W solves) and
``t_p(N) = a·N/p + s + L·(ℓ + β·log2(p)·B_layer)``, approximated by ``t_p = a·N/p + s + c(p)`` with the
per-sweep communication ``c(2)`` measured and ``c(p) = c(2)·(1 + log2(p/2)·r)``, ``r`` the share of
``c(2)`` that is the reduction's bytes; it prints the predicted sweep time for p = 8 and 64 and the N
above which ``p`` workers beat one process (``a·N(1 − 1/p) > c(p)``).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np

from _timing import write_result  # benchmarks/ is on sys.path when this script runs

from nnbcd.bench.machine import machine_info

SEED = 0

#: where ``--plot`` draws by default (docs/dask.md shows it)
PLOT = str(Path(__file__).resolve().parent.parent / "docs" / "img" / "dask_scaling.png")


BLOCK = 4096  # rows drawn per seed: any row range is reproducible without drawing the rows before it


def _rows(a: int, b: int, d0: int, k: int, dtype: str):
    """Rows ``a..b-1`` of the synthetic samples and their labels (a random linear teacher's argmax)."""
    blocks = range(a // BLOCK, -(-b // BLOCK))
    X = np.concatenate([np.random.default_rng((SEED, j)).standard_normal((BLOCK, d0)) for j in blocks])
    X = X[a - blocks[0] * BLOCK:b - blocks[0] * BLOCK].astype(dtype)
    teacher = np.random.default_rng(SEED + 1).standard_normal((d0, k))
    return X, (X @ teacher).argmax(axis=1)


def _params(widths, sweeps, dtype):
    return dict(hidden_layer_sizes=tuple(widths[1:-1]), max_iter=sweeps, monitor_every=10 ** 6, random_state=0,
                dtype=dtype, init_scale=0.2)


def _single(queue, n, widths, sweeps, dtype):
    """One single-process fit, in its own process (its own peak memory), on one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from nnbcd import NNBCD

    X, y = _rows(0, n, widths[0], widths[-1], dtype)
    with threadpool_limits(1):
        m = NNBCD(**_params(widths, sweeps, dtype), n_jobs=1).fit(X, y, callback=_after_first_sweep(_reset_peak))
    queue.put({"sweep_s": float(np.median(m.result_.history["time"][1:])),
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **_steady_mb()})


def _worker_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak():
    """Restart the kernel's record of this process's peak resident memory (Linux ``clear_refs`` 5), so that
    the peak read later is that of the sweeps after the first, without the data generation and setup."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not permitted: the steady peak is then not measured
        pass


def _steady_mb():
    """``steady_peak_mb`` (peak resident memory since :func:`_reset_peak`) and ``held_mb`` (resident now)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return {"steady_peak_mb": int(fields["VmHWM"].split()[0]) / 1024, "held_mb": int(fields["VmRSS"].split()[0]) / 1024}
    except (OSError, KeyError, ValueError):
        return {"steady_peak_mb": None, "held_mb": None}


def _after_first_sweep(action):
    """A fit callback that runs ``action`` once, after sweep 1."""
    def callback(result):
        if result.nit == 1:
            action()
    return callback


def _dask(client, n, widths, sweeps, dtype, workers):
    import dask.array as da

    from nnbcd.dask import DaskNNBCD

    client.restart()  # fresh worker processes: their peak memory is this run's
    base = client.run(_worker_peak_mb)  # the interpreter and its imports
    import dask

    rows = -(-n // workers)
    # each shard's rows are drawn where they live: the client never holds X
    parts = [dask.delayed(_rows, nout=2)(a, min(a + rows, n), widths[0], widths[-1], dtype) for a in range(0, n, rows)]
    sizes = [min(a + rows, n) - a for a in range(0, n, rows)]
    X = da.concatenate([da.from_delayed(x, (m, widths[0]), dtype=dtype) for (x, _), m in zip(parts, sizes)])
    y = da.concatenate([da.from_delayed(t, (m,), dtype=int) for (_, t), m in zip(parts, sizes)])
    m = DaskNNBCD(client=client, **_params(widths, sweeps, dtype)).fit(
        X, y, callback=_after_first_sweep(lambda: client.run(_reset_peak)))
    h = m.result_.history
    peaks = client.run(_worker_peak_mb)
    steady = client.run(_steady_mb)
    return {"sweep_s": float(np.median(h["time"][1:])), "wait_s": float(np.median(h["time_wait"][1:])),
            "bytes_per_sweep": float(np.median(h["bytes_sent"][1:] + h["bytes_received"][1:])),
            "bytes_sent": float(np.median(h["bytes_sent"][1:])),
            "bytes_received": float(np.median(h["bytes_received"][1:])),
            "worker_peak_mb": [peaks[w] for w in sorted(peaks)], "worker_base_mb": [base[w] for w in sorted(peaks)],
            "worker_steady_peak_mb": [steady[w]["steady_peak_mb"] for w in sorted(peaks)],
            "worker_held_mb": [steady[w]["held_mb"] for w in sorted(peaks)]}


def _round(v):
    return None if v is None else round(v)


def _shard_arrays_mb(n, widths, workers, itemsize):
    """The d×N arrays one worker's shard holds: X, Y, and per layer U, V and the workspace's two buffers."""
    per_sample = widths[0] + widths[-1] + 4 * sum(widths[1:])
    return per_sample * math.ceil(n / workers) * itemsize / 2 ** 20


def model(rows, widths, workers):
    """Fit ``t_1 = a·N + s`` and the communication ``c`` of the ``workers``-process runs; predict p = 8, 64."""
    n = np.array([r["n"] for r in rows], float)
    t1 = np.array([r["single"]["sweep_s"] for r in rows])
    tp = np.array([r["dask"]["sweep_s"] for r in rows])
    a, s = np.polyfit(n, t1, 1)
    s = max(s, 0.0)
    comm = float(np.median(tp - (a * n / workers + s)))  # what sharding adds per sweep, beyond N/p of the work
    out = {"a_s_per_sample": a, "serial_s": s, "comm_s": comm, "break_even_n": {}, "predicted_sweep_s": {}}
    for p in (workers, 8, 64):
        out["break_even_n"][p] = _comm(out, p, workers) / (a * (1 - 1 / p)) if a > 0 else math.inf
        out["predicted_sweep_s"][p] = {int(N): predict(out, p, N, workers) for N in n}
    return out


def _comm(fit, p, workers):
    """Communication per sweep on ``p`` workers: the measured one, one more level of the reduction tree per
    doubling of ``p``."""
    return fit["comm_s"] * (1 + math.log2(p / workers))


def predict(fit, p, n, workers):
    """The model's sweep seconds on ``p`` workers for ``n`` samples: ``a·N/p + s + c(p)``."""
    return fit["a_s_per_sample"] * n / p + fit["serial_s"] + _comm(fit, p, workers)


def plot(result, path):
    """Sweep time against N: measured (1 process, ``workers`` processes) and the model for p = 2, 8, 64."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, fit, workers = result["rows"], result["model"], result["workers"]
    n = np.array([r["n"] for r in rows], float)
    grid = np.geomspace(n.min() / 2, n.max() * 10, 100)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(n, [r["single"]["sweep_s"] for r in rows], "ko", label="1 process (measured)")
    ax.plot(n, [r["dask"]["sweep_s"] for r in rows], "s", color="C0", label=f"{workers} workers (measured)")
    ax.plot(grid, fit["a_s_per_sample"] * grid + fit["serial_s"], "k-", lw=1, label="model, 1 process")
    for p, colour in zip((2, 8, 64), ("C0", "C1", "C2")):
        ax.plot(grid, [predict(fit, p, v, workers) for v in grid], "--", color=colour, lw=1,
                label=f"model, p = {p}")
    ax.set(xscale="log", yscale="log", xlabel="samples N", ylabel="seconds per sweep",
           title=f"DaskNNBCD, widths {result['widths']}, {result['dtype']}")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="7352,30000,100000")
    ap.add_argument("--widths", default="561,1024,1024,1024,512,6")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sweeps", type=int, default=3)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_dask.json"))
    ap.add_argument("--plot", nargs="?", const=PLOT, help=f"draw the scaling plot (path, default {PLOT})")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from --out, run nothing")
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), args.plot or PLOT)
        return
    from distributed import Client, LocalCluster

    widths = [int(w) for w in args.widths.split(",")]
    ns = [int(v) for v in args.n.split(",")]
    itemsize = np.dtype(args.dtype).itemsize
    rows = []
    print(f"widths {widths}, {args.dtype}, {args.sweeps} sweeps (median of the last {args.sweeps - 1}), "
          f"{args.workers} workers × 1 thread vs 1 process × 1 thread")
    print(f"{'N':>7} {'1 proc s':>9} {'dask s':>8} {'wait s':>7} {'speed-up':>8} {'MB/sweep':>9} "
          f"{'1 proc MB':>9} {'worker MB':>15} {'base MB':>12} {'shard arrays MB':>15} {'steady worker MB':>16}")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:
        for n in ns:
            queue = mp.get_context("spawn").Queue()
            proc = mp.get_context("spawn").Process(target=_single, args=(queue, n, widths, args.sweeps, args.dtype))
            t0 = time.perf_counter()
            proc.start()
            single = queue.get()
            proc.join()
            dask_row = _dask(client, n, widths, args.sweeps, args.dtype, args.workers)
            row = {"n": n, "single": single, "dask": dask_row,
                   "shard_arrays_mb": _shard_arrays_mb(n, widths, args.workers, itemsize),
                   "wall_s": time.perf_counter() - t0}
            rows.append(row)
            print(f"{n:7d} {single['sweep_s']:9.3f} {dask_row['sweep_s']:8.3f} {dask_row['wait_s']:7.3f} "
                  f"{single['sweep_s'] / dask_row['sweep_s']:8.2f} {dask_row['bytes_per_sweep'] / 2 ** 20:9.2f} "
                  f"{single['peak_mb']:9.0f} {str([round(v) for v in dask_row['worker_peak_mb']]):>15} "
                  f"{str([round(v) for v in dask_row['worker_base_mb']]):>12} "
                  f"{row['shard_arrays_mb']:15.0f} {str([_round(v) for v in dask_row['worker_steady_peak_mb']]):>16}")
    fit = model(rows, widths, args.workers) if len(rows) >= 2 else None
    if fit:
        print(f"model: t_1 = {fit['a_s_per_sample']:.3e}·N + {fit['serial_s']:.3f} s; sharding adds "
              f"{fit['comm_s']:.3f} s per sweep at p = {args.workers}")
        for p, n_star in fit["break_even_n"].items():
            print(f"  p = {p:3d}: beats one process above N ≈ {n_star:,.0f}; predicted sweep s "
                  + ", ".join(f"N={k}: {v:.3f}" for k, v in fit["predicted_sweep_s"][p].items()))
    result = {"machine": machine_info(), "widths": widths, "dtype": args.dtype, "workers": args.workers,
              "sweeps": args.sweeps, "rows": rows, "model": fit, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    write_result(args.out, result)
    if args.plot and fit:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
