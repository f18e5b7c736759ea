"""Time one NN-BCD sweep at the HAR preset's size against the GEMM floor and the naive formulation.

    python benchmarks/bench_iteration.py [--size paper] [--n 7352] [--repeats 5] [--dtypes float32,float64]
        [--backends numpy,numba] [--compressed numba] [--out benchmarks/results/bench_iteration.json]

Synthetic data with the HAR shapes (N = 7352, 561-1024-1024-1024-512-6). For each backend and dtype
it reports the median sweep time over ``--repeats`` sweeps, the time per block kind, the FLOPs of the
sweep as spec §9 counts them (:func:`nnbcd.bench.flops.sweep_flops`), the BLAS GEMM rate measured in the
same run, and

    time / floor,   floor = FLOPs / measured GEMM rate,

plus a "naive" row: the spec's reference formulation (explicit inverses, Grams recomputed every
sweep, no Woodbury, prox with temporaries) timed the same way.

With ``--compressed BACKEND`` (default numba; ``--no-compressed`` skips it) it then times, at the digits
and HAR sizes (HAR at ``--size``), the compressed sweeps of :mod:`nnbcd.bench.workloads`: the paper's
projection blocks ``tt`` (the har4 preset's TT r = 80; digits TT-matrix r = 80) and ``prune`` (90 %), and
the exact blocks that replace them, ``tt_cores`` (HAR: r = 80; digits: solvers/digits_tt_cr10.toml's
cores) and ``prune_masked``, each with the compression blocks' share of the sweep and each exact block's
time over its projection twin's (issue 11's goal: TT cores ≤ 2x the projection sweep at HAR size).
The measurements are :mod:`nnbcd.bench.sweeps`' (what ``nnbcd bench`` runs), under the BLAS thread
policy of :mod:`nnbcd.backend.threads`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _timing import write_result  # benchmarks/ is on sys.path when this script runs

from nnbcd.bench.machine import machine_info
from nnbcd.bench.sweeps import projection_ratios, time_naive, time_sweep
from nnbcd.bench.workloads import PROJECTION_OF, SIZES, digits, har

COMPRESSED = ("tt", "tt_cores", "prune", "prune_masked")


def compressed_rows(size, backend, dtypes, repeats):
    """The compressed variants of the digits and HAR sweeps, with ``comp_share`` and ``vs_projection``."""
    rows = []
    print(f"\ncompressed sweeps ({backend}): the exact blocks against the projection blocks they replace")
    print(f"{'network':>8} {'variant':>13} {'dtype':>8} {'sweep s':>8} {'W+comp s':>9} {'comp share':>10} "
          f"{'vs projection':>13}")
    for net in (digits(), har(size)):
        for dtype in dtypes:
            for variant in COMPRESSED:
                r = time_sweep(net, variant, backend, dtype, repeats)
                b = r["blocks_s"]
                r["comp_share"] = b.get("time_comp", 0.0) / r["sweep_s"]
                rows.append(r)
                projection_ratios(rows)
                ratio = r.get("vs_projection")
                print(f"{net.name:>8} {variant:>13} {dtype:>8} {r['sweep_s']:8.3f} "
                      f"{sum(v for k, v in b.items() if k in ('time_W', 'time_W_exact', 'time_comp')):9.3f} "
                      f"{100 * r['comp_share']:9.1f}% {'' if ratio is None else f'{ratio:.2f}':>13}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, default="paper", help="the HAR network's size (nnbcd.bench.workloads)")
    ap.add_argument("--n", type=int, default=None, help="N of the dense HAR rows (default: the size's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--backends", default="numpy,numba")
    ap.add_argument("--compressed", default="numba", metavar="BACKEND",
                    help="backend of the compressed sweeps (digits and HAR: " + ", ".join(COMPRESSED) + ")")
    ap.add_argument("--no-compressed", "--no-tt", dest="compressed", action="store_const", const=None,
                    help="skip the compressed sweeps (--no-tt: the former name, as in docs/nnbcd.md's GPU run)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_iteration.json"))
    args = ap.parse_args()
    net = har(args.size).resized(n=args.n)
    rows = []
    print(f"NN-BCD sweep, widths {net.widths}, N = {net.n}, sweep FLOPs {net.flops:.3e}, "
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
    payload = {"widths": list(net.widths), "n": net.n, "repeats": args.repeats, "sweep_flops": net.flops,
               "rows": rows, "machine": machine_info()}
    if args.compressed:
        payload["compressed"] = compressed_rows(args.size, args.compressed, args.dtypes.split(","), args.repeats)
        payload["exact_over_projection"] = {
            f"{r['workload']} {r['variant']}/{PROJECTION_OF[r['variant']]} {r['dtype']}": r["vs_projection"]
            for r in payload["compressed"] if "vs_projection" in r}
    if "cupy" in args.backends.split(","):
        from nnbcd.backend import cupy_backend

        payload["cupy_relu_prox"] = cupy_backend._KERNEL_FAILURE or "numba-cuda kernel"
    write_result(args.out, payload)


if __name__ == "__main__":
    main()
