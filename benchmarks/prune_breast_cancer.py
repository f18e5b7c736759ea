"""Pruning at 90 % on scikit-learn's breast cancer (binary, like the flare data): dense vs pruned.

    python benchmarks/prune_breast_cancer.py [--iters 300] [--seeds 0,1,2]

Trains 30-300-100-2 by NN-BCD (gamma = rho = 1, alpha = 1, float64) dense, with split pruning
(tau = 200) and with the reference's projected pruning, 90 % top-k on W_1 and W_2, and prints test
accuracy and balanced accuracy (mean per-class recall) per seed and their means. Writes JSON.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _timing import write_result  # benchmarks/ is on sys.path when this script runs

import nnbcd
from nnbcd.compress import Prune
from nnbcd.data.embedded import load_breast_cancer


def balanced_accuracy(y, pred):
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "prune_breast_cancer.json"))
    args = ap.parse_args()
    Xtr, ytr, Xte, yte = load_breast_cancer()
    variants = {
        "dense": dict(compress=None, tau=0.0),
        "split 90%": dict(compress=lambda: {0: Prune(0.9), 1: Prune(0.9)}, tau=200.0),
        "projected 90%": dict(compress=lambda: {0: Prune(0.9, mode="projected"), 1: Prune(0.9, mode="projected")},
                              tau=200.0),
    }
    rows = []
    print(f"breast cancer, 30-300-100-2, {args.iters} iterations, test set of {len(yte)}")
    print(f"{'variant':>14} {'seed':>4} {'acc':>6} {'bacc':>6} {'sparsity':>8}")
    for name, v in variants.items():
        for seed in (int(s) for s in args.seeds.split(",")):
            comp = v["compress"]() if v["compress"] else None
            m = nnbcd.NNBCD((300, 100), gamma=1.0, rho=1.0, alpha=1.0, compress=comp, tau=v["tau"], dtype="float64",
                            random_state=seed, monitor_every=args.iters, max_iter=args.iters).fit(Xtr, ytr)
            pred = m.predict(Xte)
            sp = float(m.result_.history["true_sparsity"][-1]) if comp else 0.0
            row = dict(variant=name, seed=seed, acc=float(np.mean(pred == yte)), bacc=balanced_accuracy(yte, pred),
                       true_sparsity=sp)
            rows.append(row)
            print(f"{name:>14} {seed:>4} {row['acc']:6.4f} {row['bacc']:6.4f} {sp:8.4f}")
    print("means:")
    for name in variants:
        r = [x for x in rows if x["variant"] == name]
        print(f"{name:>14} acc {np.mean([x['acc'] for x in r]):.4f} ± {np.std([x['acc'] for x in r]):.4f}  "
              f"bacc {np.mean([x['bacc'] for x in r]):.4f} ± {np.std([x['bacc'] for x in r]):.4f}")
    write_result(args.out, {"iters": args.iters, "rows": rows})


if __name__ == "__main__":
    main()
