"""Time one NN-BCD sweep at the HAR preset's size against the GEMM floor and the naive formulation.

    python benchmarks/bench_iteration.py [--n 7352] [--repeats 5] [--out benchmarks/results/bench_iteration.json]

Synthetic data with the HAR shapes (N = 7352, 561-1024-1024-1024-512-6). For each backend and dtype
it reports the median sweep time over ``--repeats`` sweeps, the time per block kind, the FLOPs of the
sweep as spec §9 counts them (GEMM 2mnk, SYRK n²k, Cholesky n³/3, two triangular solves 2n²p, with
the forms the solver picks), the BLAS GEMM rate measured in the same run, and

    time / floor,   floor = FLOPs / measured GEMM rate,

plus a "naive" row: the spec's reference formulation (explicit inverses, Grams recomputed every
sweep, no Woodbury, prox with temporaries) timed the same way, and a "numba+tt" row: the same sweep
with the har4 preset's TT compression blocks (r = 80 on W_1..W_4) and the share of time they take.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from _timing import write_result  # benchmarks/ is on sys.path when this script runs

from nnbcd import NNBCD, get_backend
from nnbcd.bcd.blocks import Workspace
from nnbcd.bcd.state import Hyper
from nnbcd.bcd.sweep import sweep
from nnbcd.ops import relu_prox

WIDTHS = (561, 1024, 1024, 1024, 512, 6)


def sweep_flops(widths, n, cached_first=True):
    """FLOPs of one sweep with the forms the solver chooses (spec §9 'optimised' conventions)."""
    L = len(widths) - 1
    total = 0.0
    for i in range(L):  # code layer i: W_i is d_out × d_in
        d_in, d_out = widths[i], widths[i + 1]
        total += 2 * d_out * d_in * n  # U block: W V product
        gram = 0 if (i == 0 and cached_first) else d_in * d_in * n + d_in ** 3 / 3
        total += gram + 2 * d_out * d_in * n + 2 * d_in * d_in * d_out  # W block
        if i < L - 1:  # V_i with W_{i+1} (d_next × d_out)
            d_next = widths[i + 2]
            if 2 * d_next < 3 * d_out:  # push-through: M by a min(d, d')-sized solve, then 2 GEMMs
                small, big = min(d_out, d_next), max(d_out, d_next)
                total += small ** 2 * big + small ** 3 / 3 + 2 * small ** 2 * big + 4 * d_next * d_out * n
            else:  # direct: Gram, Cholesky, W^T U, two triangular solves with N right-hand sides
                total += d_out ** 2 * d_next + 2 * d_out * d_next * n + d_out ** 3 / 3 + 2 * d_out ** 2 * n
    return total


def gemm_rate(dtype, n, repeats, backend="numpy"):
    """Peak GEMM FLOP/s of the BLAS ``backend`` uses (cuBLAS for cupy), on a sweep-sized product."""
    be = get_backend(backend)
    rng = np.random.default_rng(0)
    a = be.asarray(rng.standard_normal((1024, 1024)), dtype)
    b = be.asarray(rng.standard_normal((1024, n)), dtype)
    out = be.asarray(np.empty((1024, n)), dtype)
    be.matmul(a, b, out=out)
    be.synchronize()
    ts = []
    for _ in range(max(repeats, 10)):
        t0 = time.perf_counter()
        be.matmul(a, b, out=out)
        be.synchronize()
        ts.append(time.perf_counter() - t0)
    # the peak (fastest repeat): the floor it gives is the lowest, so our ratio is the conservative one
    return 2 * 1024 * 1024 * n / float(np.min(ts))


def naive_sweep(st, hp):
    """The reference formulation: explicit inverses, Grams recomputed, direct V solves."""
    L = st.n_layers
    inv = np.linalg.inv
    st.V[-1] = (st.Y + hp.gamma * st.U[-1] + hp.alpha * st.V[-1]) / (1 + hp.gamma + hp.alpha)
    st.U[-1] = (hp.gamma * st.V[-1] + hp.rho * (st.W[-1] @ st.V[-2])) / (hp.gamma + hp.rho)
    v = st.V[-2]
    st.W[-1] = (hp.alpha * st.W[-1] + hp.rho * st.U[-1] @ v.T) @ inv(hp.alpha * np.eye(v.shape[0], dtype=v.dtype) + hp.rho * v @ v.T)
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


def har_tt():
    """The har4 preset's compression: TT r = 80 on W_1..W_4 with the reference's modes (spec §3.3)."""
    from nnbcd.compress import TT

    w1 = TT(rank=80, shape=(6, 22, 34, 2, 2, 2, 2, 2, 2, 2), rank_initial=400)
    w23 = TT(rank=80, shape=(4,) * 10, rank_initial=400)
    w4 = TT(rank=80, shape=(4,) * 9 + (2,), rank_initial=400)
    return {0: w1, 1: w23, 2: w23, 3: w4}


def _state(backend, dtype, n, compress=None):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, WIDTHS[0]))
    y = rng.integers(0, WIDTHS[-1], n)
    m = NNBCD(WIDTHS[1:-1], gamma=0.5, rho=0.5, alpha=1.0, backend=backend, dtype=dtype, random_state=10,
              init_scale=0.2, compress=compress, tau=5.0 if compress else 0.0, max_iter=0)
    m.fit(X, y)
    return m.state_


def time_sweeps(backend, dtype, n, repeats, compress=None):
    be = get_backend(backend)
    st = _state(backend, dtype, n, compress)
    hp = Hyper(gamma=0.5, rho=0.5, alpha=1.0, alpha_w=1.0, alpha_b=1.0, kappa=1.0)
    ws = Workspace(st, be)
    sweep(st, hp, be, ws, track=False)  # compile kernels, cache the first-layer factor
    times, blocks = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rec = sweep(st, hp, be, ws, track=False)
        times.append(time.perf_counter() - t0)
        blocks.append({k: v for k, v in rec.items() if k.startswith("time_")})
    per_block = {k: float(np.median([b[k] for b in blocks])) for k in blocks[0]}
    return float(np.median(times)), per_block


def time_naive(dtype, n, repeats):
    st = _state("numpy", dtype, n)
    hp = Hyper(gamma=0.5, rho=0.5, alpha=1.0, alpha_w=1.0, alpha_b=1.0, kappa=1.0)
    naive_sweep(st, hp)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        naive_sweep(st, hp)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=7352)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--backends", default="numpy,numba")
    ap.add_argument("--tt", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the har4 TT preset's sweep (numba) and its compression share")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_iteration.json"))
    args = ap.parse_args()
    from threadpoolctl import threadpool_info

    flops = sweep_flops(WIDTHS, args.n)
    rows = []
    print(f"NN-BCD sweep, widths {WIDTHS}, N = {args.n}, sweep FLOPs {flops:.3e}, "
          f"median of {args.repeats}")
    print(f"{'backend':>8} {'dtype':>8} {'sweep s':>8} {'GEMM GF/s':>10} {'floor s':>8} "
          f"{'time/floor':>10} {'naive/ours':>10}  per block (V U W)")
    for dtype in args.dtypes.split(","):
        rate = gemm_rate(dtype, args.n, args.repeats)
        floor = flops / rate
        t_naive = time_naive(dtype, args.n, args.repeats)
        rows.append(dict(backend="naive", dtype=dtype, sweep_s=t_naive, gemm_gflops=rate / 1e9,
                         floor_s=floor, time_over_floor=t_naive / floor))
        print(f"{'naive':>8} {dtype:>8} {t_naive:8.3f} {rate / 1e9:10.1f} {floor:8.3f} "
              f"{t_naive / floor:10.2f} {'1.00':>10}")
        for backend in args.backends.split(","):
            t, blocks = time_sweeps(backend, dtype, args.n, args.repeats)
            # the floor of a GPU row is the GPU's own GEMM rate
            b_rate = gemm_rate(dtype, args.n, args.repeats, "cupy") if backend == "cupy" else rate
            b_floor = flops / b_rate
            rows.append(dict(backend=backend, dtype=dtype, sweep_s=t, gemm_gflops=b_rate / 1e9, floor_s=b_floor,
                             time_over_floor=t / b_floor, speedup_vs_naive=t_naive / t, blocks_s=blocks))
            print(f"{backend:>8} {dtype:>8} {t:8.3f} {b_rate / 1e9:10.1f} {b_floor:8.3f} {t / b_floor:10.2f} "
                  f"{t_naive / t:10.2f}  {blocks['time_V']:.3f} {blocks['time_U']:.3f} {blocks['time_W']:.3f}")
        if args.tt:
            t, blocks = time_sweeps("numba", dtype, args.n, args.repeats, har_tt())
            share = blocks["time_comp"] / t
            rows.append(dict(backend="numba+tt", dtype=dtype, sweep_s=t, floor_s=floor, blocks_s=blocks,
                             comp_share=share, gemm_gflops=rate / 1e9, time_over_floor=t / floor))
            print(f"{'numba+tt':>8} {dtype:>8} {t:8.3f} {'':>10} {'':>8} {'':>10} {'':>10}  "
                  f"V {blocks['time_V']:.3f} U {blocks['time_U']:.3f} W {blocks['time_W']:.3f} "
                  f"TT {blocks['time_comp']:.3f} ({100 * share:.1f} % of the sweep)")
    payload = {
        "widths": WIDTHS, "n": args.n, "repeats": args.repeats, "sweep_flops": flops, "rows": rows,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "blas": [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                             for p in threadpool_info()],
                    "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_THREAD_TIMEOUT",
                                                            "OMP_NUM_THREADS")}},
    }
    if "cupy" in args.backends.split(","):
        from nnbcd.backend import cupy_backend

        payload["cupy_relu_prox"] = cupy_backend._KERNEL_FAILURE or "numba-cuda kernel"
    write_result(args.out, payload)


if __name__ == "__main__":
    main()
