"""A preset judged on an inner split of its training data: the test split is not used.

    python benchmarks/inner_split.py PRESET [--set KEY=VALUE ...] [--val-size 0.2] [--seed 0] [--out PATH]

Fits the preset's NNBCD on a stratified (1 − val_size) part of its training split and records the
accuracy on the rest every ``[fit] monitor_every`` sweeps, so hyperparameters (and data choices) can be
compared without looking at the test split. ``[data] augment_shifts`` applies to the inner training part
only: the images are split first, then the fitted part gains its shifted copies (no copy of a validation
image is trained on). Used for the MNIST-5k CNN choices in docs/compression.md, e.g.::

    python benchmarks/inner_split.py solvers/mnist5k_cnn.toml --set fit.max_iter=30
    python benchmarks/inner_split.py solvers/mnist5k_cnn.toml --set data.augment_shifts=0 --set fit.max_iter=60
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from _timing import write_result
from sklearn.model_selection import train_test_split

from nnbcd.data import shift_augment
from nnbcd.data.embedded import IMAGE_SHAPES
from nnbcd.runners import nnbcd as runner
from nnbcd.runners.schema import load_data, load_preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--val-size", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON file (default: results/inner_<preset>.json)")
    args = ap.parse_args()
    preset = runner.check(load_preset(args.preset, args.set))
    data = dict(preset.data)
    shifts = data.pop("augment_shifts", 0)
    X, y, _, _ = load_data(data)
    Xa, Xv, ya, yv = train_test_split(X, y, test_size=args.val_size, stratify=y, random_state=args.seed)
    if shifts:
        Xa, ya = shift_augment(Xa, ya, IMAGE_SHAPES[data["name"]], shifts)
    model = runner.make_estimator(preset, quiet=True)
    start = time.perf_counter()
    model.fit(Xa, ya, X_val=Xv, y_val=yv)
    h = model.result_.history
    points = [{"sweep": k + 1, "train_acc": h["acc"][k], "val_acc": h["val_acc"][k]}
              for k in range(h.n_iter) if not math.isnan(h["val_acc"][k])]
    for p in points:
        print(f"sweep {p['sweep']}: val {p['val_acc']:.4f} (train {p['train_acc']:.4f})")
    out = args.out or str(Path(__file__).parent / "results" / f"inner_{Path(args.preset).stem}.json")
    write_result(out, {"preset": args.preset, "set": args.set, "val_size": args.val_size, "seed": args.seed,
                       "n_fit": int(len(ya)), "n_val": int(len(yv)), "points": points,
                       "seconds": time.perf_counter() - start})


if __name__ == "__main__":
    main()
