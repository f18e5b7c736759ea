"""TT-SVD: ours (Gram eigen and full SVD) against tensorly's ``tensor_train`` on the HAR layer shapes.

    python benchmarks/bench_tt.py [--repeats 5] [--backend numpy|numba|cupy] [--out PATH]

For each weight (1024×1024 -> (4,)^10 and 1024×561 -> (6,22,34,2,...,2), rank cap 80), dtype and kind
of matrix (iid Gaussian; a decaying spectrum like trained weights) it prints the median time of each
method, ``tensorly / ours`` and ``our error / tensorly error`` (relative Frobenius reconstruction
errors), all measured in the same run (:func:`nnbcd.bench.tt.time_tt_svd`, what ``nnbcd bench`` runs).
tensorly is given the same rank list. With ``--backend cupy`` ours runs on the GPU and tensorly on its
own CuPy backend (GPU against GPU).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _timing import write_result  # benchmarks/ is on sys.path when this script runs

from nnbcd.bench.tt import HAR_CASES, KINDS, tensorly_backend, time_tt_svd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rank", type=int, default=80)
    ap.add_argument("--backend", default="numpy", help="backend of ours; tensorly uses the same array library")
    ap.add_argument("--out", default=None, help="JSON path (default: results/bench_tt[_BACKEND].json)")
    args = ap.parse_args()
    out = args.out or str(Path(__file__).parent / "results" / (
        "bench_tt.json" if args.backend == "numpy" else f"bench_tt_{args.backend}.json"))
    print(f"TT-SVD at rank cap {args.rank}, median of {args.repeats}, backend {args.backend!r} "
          f"(tensorly backend {tensorly_backend(args.backend)!r})")
    rows = time_tt_svd(args.backend, HAR_CASES, KINDS, ("float32", "float64"), args.rank, args.repeats)
    print(f"{'case':>10} {'kind':>9} {'dtype':>8} {'tensorly s':>10} {'full s':>8} {'gram s':>8} "
          f"{'tl/gram':>8} {'tl/full':>8} {'err gram/tl':>11} {'err full/tl':>11}")
    for r in rows:
        print(f"{r['case']:>10} {r['kind']:>9} {r['dtype']:>8} {r['tensorly_s']:10.4f} {r['full_s']:8.4f} "
              f"{r['gram_s']:8.4f} {r['speedup_gram']:8.2f} {r['speedup_full']:8.2f} {r['err_ratio_gram']:11.6f} "
              f"{r['err_ratio_full']:11.6f}")
    write_result(out, {"rank": args.rank, "repeats": args.repeats, "backend": args.backend,
                       "tensorly_backend": tensorly_backend(args.backend), "rows": rows})


if __name__ == "__main__":
    main()
