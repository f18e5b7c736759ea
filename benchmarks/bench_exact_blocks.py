"""Exact blocks on the compressed form: masked rows and a TT-core sweep against the dense W-block.

    python benchmarks/bench_exact_blocks.py [--repeats 5] [--threads 1] [--backend numpy] [--out PATH]

Per layer size (digits 256×64 and 256×256, HAR 1024×561) and dtype it times, as medians over
``--repeats`` calls in the same run, from the same Grams R = UVᵀ, G = VVᵀ:

* ``dense``: the paper's W-block from the Grams, Cholesky of ρG + αI (d_in × d_in) with d_out
  right-hand sides;
* ``grams``: the two N-sized GEMMs every W-block variant needs first (shared, reported for scale);
* ``masked``: :func:`nnbcd.compress.masked.masked_weight_update` at 80/90/95 % sparsity (top-k mask),
  and the naive loop (one Cholesky per row through the backend) it replaces, with the ratio;
* ``tt``: :func:`nnbcd.compress.tt_cores.tt_core_sweep` (a first sweep from the TT-SVD cores and a
  second, warm one), with the local solver per core and the CG iteration counts, against the paper's
  projection block ``TT.project`` (TT-SVD + reconstruction) at the same rank, which it replaces, for
  the layouts in ``TT_VARIANTS``.

V is a ReLU of a 32-dimensional latent plus noise (a Gram with a few large eigenvalues over a bulk, like
hidden activations); W^k is Xavier-normal. Timings take the BLAS thread count of ``--threads``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from _timing import median_time, write_result
from threadpoolctl import threadpool_limits

from nnbcd.backend import get_backend
from nnbcd.compress import TT
from nnbcd.compress.masked import masked_weight_update
from nnbcd.compress.tt_cores import tt_core_sweep
from nnbcd.ops.prune import topk_mask

# (name, d_out, d_in, N): digits 64-256-256-10 layers 0 and 1, HAR 561-1024-... layer 0
CASES = [("digits_256x64", 256, 64, 1347), ("digits_256x256", 256, 256, 1347), ("har_1024x561", 1024, 561, 7352)]
# TT variants per case: (label, TT spec). Digits at the caps (10 / 21; the preset's TT-matrix
# rank 24); HAR at r = 80 with the default modes, the same modes with the columns' largest first, and
# the reference's modes, which straddle the row/column boundary
TT_VARIANTS = {
    "digits_256x64": [("reshape r=10", TT(rank=10))],
    "digits_256x256": [("reshape r=21", TT(rank=21)), ("matrix r=24", TT(rank=24, layout="matrix"))],
    "har_1024x561": [("reshape r=80", TT(rank=80)),
                     ("reshape r=80, columns largest first", TT(rank=80, shape=(4, 4, 4, 4, 4, 17, 11, 3))),
                     ("reshape r=80, reference modes", TT(rank=80, shape=(6, 22, 34, 2, 2, 2, 2, 2, 2, 2)))],
}
RHO, ALPHA = 0.5, 1.0


def layer(d_out, d_in, n, dtype, rng):
    z = rng.standard_normal((32, n))
    v = np.maximum(rng.standard_normal((d_in, 32)) @ z / 6 + 0.3 * rng.standard_normal((d_in, n)), 0)
    w = rng.standard_normal((d_out, d_in)) * np.sqrt(2.0 / (d_in + d_out))
    u = w @ v + 0.1 * rng.standard_normal((d_out, n))
    return u.astype(dtype), v.astype(dtype), w.astype(dtype)


def naive_masked(be, R, G, W, mask):
    """One Cholesky per row (the loop the batched update replaces)."""
    M = RHO * G
    be.add_diag(M, ALPHA)
    F = RHO * R + ALPHA * W
    out = np.zeros_like(W)
    for j in range(W.shape[0]):
        cols = np.flatnonzero(mask[j])
        if cols.size:
            out[j, cols] = be.cho_solve(be.cho_factor(M[np.ix_(cols, cols)]), F[j, cols])
    return out


def dense_block(be, R, G, W):
    a = RHO * G
    be.add_diag(a, ALPHA)
    return be.cho_solve_right(be.cho_factor(a), RHO * R + ALPHA * W)


def run_case(be, name, d_out, d_in, n, dtype, repeats, rng):
    u, v, w = layer(d_out, d_in, n, dtype, rng)
    t_grams, (R, G) = median_time(lambda: (be.matmul(u, v.T), be.gram(v)), repeats)
    t_dense, _ = median_time(lambda: dense_block(be, R, G, w), repeats)
    row = {"case": name, "dtype": dtype, "d_out": d_out, "d_in": d_in, "N": n,
           "grams_s": t_grams, "dense_s": t_dense, "masked": [], "tt": []}
    print(f"{name} {dtype}: grams {t_grams * 1e3:.2f} ms, dense W-block {t_dense * 1e3:.2f} ms")
    for q in (0.8, 0.9, 0.95):
        mask = topk_mask(np.abs(w).ravel(), int(round((1 - q) * w.size))).reshape(w.shape)
        t_m, res = median_time(lambda: masked_weight_update(R, G, w, mask, RHO, ALPHA, backend=be), repeats)
        t_n, ref = median_time(lambda: naive_masked(be, R, G, w, mask), max(1, repeats // 2))
        err = float(np.abs(res.W - ref).max() / np.abs(ref).max())
        row["masked"].append({"sparsity": q, "masked_s": t_m, "naive_loop_s": t_n,
                              "naive_over_masked": t_n / t_m,
                              "masked_over_dense": t_m / t_dense, "rel_diff_vs_naive": err})
        print(f"  masked q={q}: {t_m * 1e3:.2f} ms, naive loop {t_n * 1e3:.2f} ms (×{t_n / t_m:.1f}), "
              f"{t_m / t_dense:.2f}× dense, max rel diff {err:.1e}")
    sweep_repeats = max(1, repeats // 2)
    for label, spec in TT_VARIANTS[name]:
        t_proj, comp = median_time(lambda: spec.project(w, backend=be), repeats)
        cores = comp.factors
        t_1, first = median_time(lambda: tt_core_sweep(cores, R, G, RHO, ALPHA, backend=be), sweep_repeats)
        t_2, second = median_time(lambda: tt_core_sweep(first.cores, R, G, RHO, ALPHA, backend=be),
                                  sweep_repeats)
        its = first.info["cg_iterations"]
        row["tt"].append({
            "variant": label, "modes": list(spec.modes(w.shape)), "ranks": comp.info["ranks"],
            "projection_s": t_proj, "sweep_first_s": t_1, "sweep_warm_s": t_2,
            "sweep_over_dense": t_1 / t_dense, "sweep_over_dense_plus_projection": t_1 / (t_dense + t_proj),
            "solve": first.info["solve"], "cg_iterations_first": its,
            "cg_iterations_warm": second.info["cg_iterations"], "cg_residual_first": first.info["cg_residual"]})
        print(f"  TT {label} ranks {comp.info['ranks']}: sweep {t_1 * 1e3:.1f} ms (warm {t_2 * 1e3:.1f} ms) = "
              f"{t_1 / t_dense:.1f}× dense, {t_1 / (t_dense + t_proj):.2f}× dense + projection "
              f"({t_proj * 1e3:.1f} ms); CG iterations {[i for i in its if i is not None]} "
              f"(warm {[i for i in second.info['cg_iterations'] if i is not None]})")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads (1: stable numbers on a shared machine)")
    ap.add_argument("--backend", default="numpy", choices=("numpy", "numba"))
    ap.add_argument("--cases", nargs="*", default=[c[0] for c in CASES])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_exact_blocks.json"))
    args = ap.parse_args()
    be = get_backend(args.backend)
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(args.threads):
        load_before = os.getloadavg()
        for name, d_out, d_in, n in CASES:
            if name not in args.cases:
                continue
            for dtype in ("float64", "float32"):
                rows.append(run_case(be, name, d_out, d_in, n, dtype, args.repeats, rng))
    write_result(args.out, {"backend": args.backend, "threads": args.threads, "repeats": args.repeats,
                            "rho": RHO, "alpha": ALPHA, "cpu_count": os.cpu_count(),
                            "load_average_before_after": [load_before[0], os.getloadavg()[0]], "rows": rows})


if __name__ == "__main__":
    main()
