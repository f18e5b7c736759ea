"""EVBMF: ours against the straightforward implementation of the same formulas.

    python benchmarks/bench_vbmf.py [--repeats 3] [--large] [--backend numpy|numba|cupy]

"Straightforward" is what the widely copied public code does: a full SVD with singular vectors
(``numpy.linalg.svd(full_matrices=True)``) and ``scipy.optimize.minimize_scalar(method="bounded")`` on
the free energy directly in σ² (absolute ``xatol`` 1e-5). Ours: singular values only (Gram eigenvalues
for wide matrices) and a scale-free search in log σ². Matrices follow the spec's recipes A, B, C
(seed 0) at 512×4608, and at 4096×4096 with ``--large`` (minutes on 2 cores). Both the time ratio and
the ranks (equal at unit scale; at scale 1e-3 the straightforward search goes wrong) are printed.
``--backend cupy`` runs ours on the GPU (the straightforward one stays on the CPU).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from _timing import (  # benchmarks/ is on sys.path when this script runs
    median_time,
    write_result,
)
from scipy.optimize import minimize_scalar

from nnbcd import get_backend
from nnbcd.ops.vbmf import evbmf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_vbmf import recipe


def straightforward(y):
    """Full SVD with vectors + bounded search in σ² (absolute xatol 1e-5), as commonly used."""
    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    _, s, _ = np.linalg.svd(y, full_matrices=True)
    alpha = L / M
    tl = 2.5129 * math.sqrt(alpha)
    xbar = (1 + tl) * (1 + alpha / tl)
    hbar = min(math.ceil(L / (1 + alpha)) - 1, L)
    upper = (s ** 2).sum() / (L * M)
    lower = max(s[hbar] ** 2 / (M * xbar), (s[hbar:] ** 2).mean() / M)

    def cost(sig2):
        x = s ** 2 / (M * sig2)
        z = x[x > xbar]
        tau = 0.5 * (z - (1 + alpha) + np.sqrt((z - (1 + alpha)) ** 2 - 4 * alpha))
        psi1 = np.log(tau + 1) + alpha * np.log(tau / alpha + 1) - tau
        return float((x - np.log(x)).sum() + psi1.sum())

    sig2 = minimize_scalar(cost, bounds=(lower, upper), method="bounded").x
    return int((s > math.sqrt(M * sig2 * xbar)).sum()), float(sig2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large", action="store_true", help="also 4096×4096 (recipes A, B)")
    ap.add_argument("--backend", default="numpy", help="backend of ours (numpy, numba, cupy)")
    ap.add_argument("--out", default=None, help="JSON path (default: results/bench_vbmf[_BACKEND].json)")
    args = ap.parse_args()
    be = get_backend(args.backend)
    out = args.out or str(Path(__file__).parent / "results" / (
        "bench_vbmf.json" if args.backend == "numpy" else f"bench_vbmf_{args.backend}.json"))
    cases = [("A", 512, 4608), ("B", 512, 4608), ("C", 512, 4608)]
    if args.large:
        cases += [("A", 4096, 4096), ("B", 4096, 4096)]
    rows = []
    print(f"EVBMF, median of {args.repeats}; ours on backend {args.backend!r}")
    print(f"{'case':>14} {'scale':>6} {'straightfwd s':>13} {'ours s':>8} {'speed-up':>8} {'rank sf':>7} "
          f"{'rank ours':>9} {'s2 sf/scale2':>12} {'s2 ours/scale2':>14}")
    for kind, L, M in cases:
        base = recipe(kind, L, M)
        for scale in (1.0, 1e-3):
            y = scale * base
            t_sf, (r_sf, s2_sf) = median_time(lambda: straightforward(y), args.repeats, warmup=False)
            yb = be.asarray(y)
            t_us, res = median_time(lambda: evbmf(yb, backend=be), args.repeats, sync=be.synchronize)
            row = dict(case=f"{kind} {L}x{M}", scale=scale, straightforward_s=t_sf, ours_s=t_us,
                       speedup=t_sf / t_us, rank_straightforward=r_sf, rank_ours=res.rank,
                       sigma2_straightforward=s2_sf / scale ** 2, sigma2_ours=res.sigma2 / scale ** 2)
            rows.append(row)
            print(f"{row['case']:>14} {scale:6.0e} {t_sf:13.3f} {t_us:8.3f} {row['speedup']:8.1f} {r_sf:7d} "
                  f"{res.rank:9d} {row['sigma2_straightforward']:12.6f} {row['sigma2_ours']:14.6f}")
    write_result(out, {"repeats": args.repeats, "backend": args.backend, "rows": rows})


if __name__ == "__main__":
    main()
