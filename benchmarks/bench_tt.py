"""TT-SVD: ours (Gram eigen and full SVD) against tensorly's ``tensor_train`` on the HAR layer shapes.

    python benchmarks/bench_tt.py [--repeats 5] [--backend numpy|numba|cupy] [--out PATH]

For each weight (1024×1024 -> (4,)^10 and 1024×561 -> (6,22,34,2,...,2), rank cap 80), dtype and kind
of matrix (iid Gaussian; a decaying spectrum like trained weights) it prints the median time of each
method, ``tensorly / ours`` and ``our error / tensorly error`` (relative Frobenius reconstruction
errors), all measured in the same run. tensorly is given the same rank list. With ``--backend cupy``
ours runs on the GPU and tensorly on its own CuPy backend (GPU against GPU).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorly as tl
from _timing import median_time, write_result
from tensorly.decomposition import tensor_train

from nnbcd import get_backend
from nnbcd.ops import tt

CASES = [("1024x1024", (1024, 1024), (4,) * 10), ("1024x561", (1024, 561), (6, 22, 34, 2, 2, 2, 2, 2, 2, 2))]


def weight(shape, kind, dtype, rng):
    if kind == "gaussian":
        return rng.standard_normal(shape).astype(dtype)
    # singular values decaying like a trained layer's: s_k = exp(-k / 60)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], min(shape))))
    v, _ = np.linalg.qr(rng.standard_normal((shape[1], min(shape))))
    s = np.exp(-np.arange(min(shape)) / 60.0)
    return ((u * s) @ v.T).astype(dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rank", type=int, default=80)
    ap.add_argument("--backend", default="numpy", help="backend of ours; tensorly uses the same array library")
    ap.add_argument("--out", default=None, help="JSON path (default: results/bench_tt[_BACKEND].json)")
    args = ap.parse_args()
    be = get_backend(args.backend)
    tl.set_backend("cupy" if args.backend == "cupy" else "numpy")
    out = args.out or str(Path(__file__).parent / "results" / (
        "bench_tt.json" if args.backend == "numpy" else f"bench_tt_{args.backend}.json"))
    rng = np.random.default_rng(0)
    rows = []
    print(f"TT-SVD at rank cap {args.rank}, median of {args.repeats}, backend {args.backend!r} "
          f"(tensorly backend {tl.get_backend()!r})")
    print(f"{'case':>10} {'kind':>9} {'dtype':>8} {'tensorly s':>10} {'full s':>8} {'gram s':>8} "
          f"{'tl/gram':>8} {'tl/full':>8} {'err gram/tl':>11} {'err full/tl':>11}")
    for name, shape, modes in CASES:
        ranks = tt.tt_ranks(modes, args.rank)
        for kind in ("gaussian", "decaying"):
            for dtype in ("float32", "float64"):
                w = weight(shape, kind, dtype, rng)
                x = be.asarray(w.reshape(modes))
                norm = np.linalg.norm(w.astype(np.float64))

                def err(dense):
                    dense = be.to_numpy(dense).astype(np.float64)
                    return float(np.linalg.norm(dense.reshape(shape) - w) / norm)

                t_tl, f = median_time(lambda: tensor_train(x, rank=ranks), args.repeats, sync=be.synchronize)
                e_tl = err(tl.tt_to_tensor(f))
                res = {}
                for method in ("full", "gram"):
                    t, cores = median_time(lambda: tt.tt_svd(x, args.rank, svd=method, backend=be), args.repeats,
                                           sync=be.synchronize)
                    res[method] = (t, err(tt.tt_to_tensor(cores, backend=be)))
                row = dict(case=name, kind=kind, dtype=dtype, ranks=ranks, tensorly_s=t_tl, tensorly_err=e_tl,
                           full_s=res["full"][0], full_err=res["full"][1], gram_s=res["gram"][0],
                           gram_err=res["gram"][1], speedup_gram=t_tl / res["gram"][0],
                           speedup_full=t_tl / res["full"][0], err_ratio_gram=res["gram"][1] / e_tl,
                           err_ratio_full=res["full"][1] / e_tl)
                rows.append(row)
                print(f"{name:>10} {kind:>9} {dtype:>8} {t_tl:10.4f} {res['full'][0]:8.4f} {res['gram'][0]:8.4f} "
                      f"{row['speedup_gram']:8.2f} {row['speedup_full']:8.2f} {row['err_ratio_gram']:11.6f} "
                      f"{row['err_ratio_full']:11.6f}")
    write_result(out, {"rank": args.rank, "repeats": args.repeats, "backend": args.backend,
                       "tensorly_backend": tl.get_backend(), "rows": rows})


if __name__ == "__main__":
    main()
