"""EVBMF: ours against the straightforward implementation of the same formulas.

    python benchmarks/bench_vbmf.py [--repeats 3] [--large] [--backend numpy|numba|cupy]

"Straightforward" is what the widely copied public code does: a full SVD with singular vectors
(``numpy.linalg.svd(full_matrices=True)``) and ``scipy.optimize.minimize_scalar(method="bounded")`` on
the free energy directly in σ² (absolute ``xatol`` 1e-5). Ours: singular values only (Gram eigenvalues
for wide matrices) and a scale-free search in log σ². Matrices follow the spec's recipes A, B, C
(seed 0) at 512×4608, and at 4096×4096 with ``--large`` (minutes on 2 cores). Both the time ratio and
the ranks (equal at unit scale; at scale 1e-3 the straightforward search goes wrong) are printed.
``--backend cupy`` runs ours on the GPU (the straightforward one stays on the CPU). The measurement is
:func:`nnbcd.bench.vbmf.time_evbmf` (what ``nnbcd bench`` runs).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _timing import write_result  # benchmarks/ is on sys.path when this script runs

from nnbcd.bench.vbmf import LARGE_CASES, SPEC_CASES, time_evbmf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large", action="store_true", help="also 4096×4096 (recipes A, B)")
    ap.add_argument("--backend", default="numpy", help="backend of ours (numpy, numba, cupy)")
    ap.add_argument("--out", default=None, help="JSON path (default: results/bench_vbmf[_BACKEND].json)")
    args = ap.parse_args()
    out = args.out or str(Path(__file__).parent / "results" / (
        "bench_vbmf.json" if args.backend == "numpy" else f"bench_vbmf_{args.backend}.json"))
    print(f"EVBMF, median of {args.repeats}; ours on backend {args.backend!r}")
    rows = time_evbmf(args.backend, SPEC_CASES + (LARGE_CASES if args.large else []), args.repeats)
    print(f"{'case':>14} {'scale':>6} {'straightfwd s':>13} {'ours s':>8} {'speed-up':>8} {'rank sf':>7} "
          f"{'rank ours':>9} {'s2 sf/scale2':>12} {'s2 ours/scale2':>14}")
    for r in rows:
        print(f"{r['case']:>14} {r['scale']:6.0e} {r['straightforward_s']:13.3f} {r['ours_s']:8.3f} "
              f"{r['speedup']:8.1f} {r['rank_straightforward']:7d} {r['rank_ours']:9d} "
              f"{r['sigma2_straightforward']:12.6f} {r['sigma2_ours']:14.6f}")
    write_result(out, {"repeats": args.repeats, "backend": args.backend, "rows": rows})


if __name__ == "__main__":
    main()
