"""Time one NN-BCD sweep at the HAR preset's size against the GEMM floor and the naive formulation.

    python benchmarks/bench_iteration.py [--n 7352] [--repeats 5] [--out benchmarks/results/bench_iteration.json]

Synthetic data with the HAR shapes (N = 7352, 561-1024-1024-1024-512-6). For each backend and dtype
it reports the median sweep time over ``--repeats`` sweeps, the time per block kind, the FLOPs of the
sweep as spec §9 counts them (:func:`nnbcd.bench.flops.sweep_flops`), the BLAS GEMM rate measured in the
same run, and

    time / floor,   floor = FLOPs / measured GEMM rate,

plus a "naive" row: the spec's reference formulation (explicit inverses, Grams recomputed every
sweep, no Woodbury, prox with temporaries) timed the same way, and a "numba+tt" row: the same sweep
with the har4 preset's TT compression blocks (r = 80 on W_1..W_4) and the share of time they take.
The measurements are :mod:`nnbcd.bench.sweeps`' (what ``nnbcd bench`` runs), under the BLAS thread
policy of :mod:`nnbcd.backend.threads`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _timing import write_result  # benchmarks/ is on sys.path when this script runs

from nnbcd.bench.machine import machine_info
from nnbcd.bench.sweeps import time_naive, time_sweep
from nnbcd.bench.workloads import har


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
    net = har("paper").resized(n=args.n)
    rows = []
    print(f"NN-BCD sweep, widths {net.widths}, N = {args.n}, sweep FLOPs {net.flops:.3e}, "
          f"median of {args.repeats}")
    print(f"{'backend':>8} {'dtype':>8} {'sweep s':>8} {'GEMM GF/s':>10} {'floor s':>8} "
          f"{'time/floor':>10} {'naive/ours':>10}  per block (V U W)")
    for dtype in args.dtypes.split(","):
        naive = time_naive(net, dtype, args.repeats)
        rows.append(naive)
        print(f"{'naive':>8} {dtype:>8} {naive['sweep_s']:8.3f} {naive['gemm_gflops']:10.1f} {naive['floor_s']:8.3f} "
              f"{naive['time_over_floor']:10.2f} {'1.00':>10}")
        for backend in args.backends.split(","):
            r = time_sweep(net, "dense", backend, dtype, args.repeats)  # a GPU row's floor is the GPU's GEMM rate
            r["speedup_vs_naive"] = naive["sweep_s"] / r["sweep_s"]
            rows.append(r)
            b = r["blocks_s"]
            print(f"{backend:>8} {dtype:>8} {r['sweep_s']:8.3f} {r['gemm_gflops']:10.1f} {r['floor_s']:8.3f} "
                  f"{r['time_over_floor']:10.2f} {r['speedup_vs_naive']:10.2f}  "
                  f"{b['time_V']:.3f} {b['time_U']:.3f} {b['time_W']:.3f}")
        if args.tt:
            r = time_sweep(net, "tt", "numba", dtype, args.repeats)
            r.update(backend="numba+tt", comp_share=r["blocks_s"]["time_comp"] / r["sweep_s"])
            rows.append(r)
            b = r["blocks_s"]
            print(f"{'numba+tt':>8} {dtype:>8} {r['sweep_s']:8.3f} {'':>10} {'':>8} {r['time_over_floor']:10.2f} "
                  f"{'':>10}  V {b['time_V']:.3f} U {b['time_U']:.3f} W {b['time_W']:.3f} "
                  f"TT {b['time_comp']:.3f} ({100 * r['comp_share']:.1f} % of the sweep)")
    payload = {"widths": list(net.widths), "n": args.n, "repeats": args.repeats, "sweep_flops": net.flops,
               "rows": rows, "machine": machine_info()}
    if "cupy" in args.backends.split(","):
        from nnbcd.backend import cupy_backend

        payload["cupy_relu_prox"] = cupy_backend._KERNEL_FAILURE or "numba-cuda kernel"
    write_result(args.out, payload)


if __name__ == "__main__":
    main()
