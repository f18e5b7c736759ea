"""The output-layer refit's least squares (``refit_output=True``): ours against ``numpy.linalg.lstsq`` and the
normal equations, time and accuracy.

    python benchmarks/bench_readout.py [--repeats 3] [--out benchmarks/results/bench_readout.json]

Each problem is min ½‖C H̄ − Y‖² with H̄ = [H; 1ᵀ] (ReLU features H of a random layer, a few units dead, one-hot
Y), float64, at the sizes the refit meets: digits (N = 1347, d = 256), HAR (N = 7352, d = 512) and the
MNIST-5k CNN preset (N = 20,000, d = 1024). Three solvers of the same problem:

* ``ours``: :func:`nnbcd.bcd.readout.readout_factor` (blocked TSQR of [H̄ᵀ Yᵀ], the form that also runs
  on sample shards) and :func:`~nnbcd.bcd.readout.solve_readout` (SVD of R₁₁);
* ``lstsq``: ``numpy.linalg.lstsq`` on the whole N × (d + 1) matrix (LAPACK gelsd; needs it in memory at once);
* ``normal``: the normal equations, Gram H̄H̄ᵀ and ``numpy.linalg.lstsq`` on it (the fastest, and the one that
  squares the condition number).

Reported: median seconds, the ratio to lstsq, and each solver's loss relative to lstsq's on two feature sets:
well conditioned, and with a unit duplicated up to 1e-9 (nearly collinear: the normal equations lose it).
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, List

import numpy as np
from _timing import median_time, write_result

from nnbcd.backend import get_backend
from nnbcd.bcd.readout import readout_factor, readout_loss, solve_readout

SIZES = {"digits": (1347, 256), "har": (7352, 512), "mnist5k_cnn": (20000, 1024)}
K = 10


def _problem(n: int, d: int, collinear: bool, seed: int = 0) -> "tuple[np.ndarray, np.ndarray]":
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((64, n))
    H = np.maximum(rng.standard_normal((d, 64)) @ X * 1e-3, 0.0)  # activations of size 1e-3, as the CNN's
    H[:5] = 0.0  # dead units
    if collinear:
        H[5] = H[6] + 1e-9 * np.abs(H[6]).max() * rng.standard_normal(n)
    Y = np.eye(K)[rng.integers(0, K, n)].T
    return H, Y


def _loss(C: np.ndarray, A: np.ndarray, Y: np.ndarray) -> float:
    return 0.5 * float(np.sum(np.square(C @ A - Y)))


def bench(repeats: int) -> List[Dict[str, Any]]:
    be = get_backend("numpy")
    rows = []
    for name, (n, d) in SIZES.items():
        for collinear in (False, True):
            H, Y = _problem(n, d, collinear)
            A = np.vstack([H, np.ones((1, n))])
            t_ours, ours = median_time(lambda: solve_readout(readout_factor(H, Y, True, be)), repeats)
            t_lstsq, ref = median_time(lambda: np.linalg.lstsq(A.T, Y.T, rcond=None)[0].T, repeats)
            t_normal, normal = median_time(lambda: np.linalg.lstsq(A @ A.T, A @ Y.T, rcond=None)[0].T, repeats)
            best = _loss(ref, A, Y)
            factor = readout_factor(H, Y, True, be)
            rows.append({"size": name, "n": n, "d": d, "collinear": collinear,
                         "seconds": {"ours": t_ours, "lstsq": t_lstsq, "normal": t_normal},
                         "ratio_to_lstsq": {"ours": t_ours / t_lstsq, "normal": t_normal / t_lstsq},
                         "loss_over_lstsq": {"ours": _loss(ours, A, Y) / best, "normal": _loss(normal, A, Y) / best},
                         "loss_from_factor_over_direct": readout_loss(factor, ours) / _loss(ours, A, Y)})
            r = rows[-1]
            print(f"{name:12s} N={n:6d} d={d:5d} {'collinear' if collinear else 'plain    '}  "
                  f"ours {t_ours:7.3f} s ({r['ratio_to_lstsq']['ours']:.2f}x lstsq), lstsq {t_lstsq:7.3f} s, "
                  f"normal {t_normal:7.3f} s; loss/lstsq: ours {r['loss_over_lstsq']['ours']:.9f}, "
                  f"normal {r['loss_over_lstsq']['normal']:.9f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/bench_readout.json")
    args = ap.parse_args()
    write_result(args.out, {"repeats": args.repeats, "rows": bench(args.repeats)})


if __name__ == "__main__":
    main()
