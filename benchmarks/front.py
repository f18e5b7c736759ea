"""The accuracy-vs-compression front of NN-BCD on digits, with and without the exact blocks (issue 11).

    python benchmarks/front.py [--seeds 0,1,2] [--max-iter 300] [--quick] [--out-dir benchmarks/results]
                               [--plot docs/img/front.png]

Network 64-256-256-10 (the default preset: γ = ρ = 0.5, α = 1, Xavier init, numba, float32), the default
preset's split (digits, test_size 0.25, seed 0); accuracy of the deployed network on the held-out split after
``--max-iter`` sweeps, for each init seed. Both hidden layers (0 and 1) are compressed:

* TT at CR_2 ≈ 0.3 / 0.2 / 0.1 / 0.05 (the largest common rank cap whose CR_2 is at most the target), in the
  reshape layout (default modes) and the TT-matrix layout, with the paper's projection block (τ = 20) and
  with the exact TT-core block (``TT(block="cores")``, no τ);
* pruning at 80 / 90 / 95 % per layer, the paper's split projection (τ = 20) and the exact masked block
  (``Prune(block="masked")``, support = top-k of W^0);
* the dense network for reference.

No tuning per point (the presets ``solvers/digits_tt_cr10.toml`` and ``solvers/digits_prune90.toml`` hold
the tuned recipes). Writes ``front.json`` (every run with its command) and ``front.md`` (the table) to
``--out-dir`` and the plot to ``--plot``. ``--quick``: one seed, 5 sweeps, the CR 0.1 / 90 % points only
(a smoke run; files get a ``_quick`` suffix and the plot goes next to them).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from _timing import write_result

from nnbcd import NNBCD, TT, Prune
from nnbcd.data import load_dataset
from nnbcd.ops import tt_n_params, tt_ranks

HIDDEN = (256, 256)
SHAPES = {0: (256, 64), 1: (256, 256)}  # the two compressed layers (d_out, d_in)
BASE = dict(gamma=0.5, rho=0.5, alpha=1.0, backend="numba", dtype="float32")
TAU = 20.0
TT_TARGETS = (0.3, 0.2, 0.1, 0.05)
SPARSITIES = (0.8, 0.9, 0.95)


def tt_cap(layout: str, block: str, target: float) -> int:
    """The largest rank cap r (the same on both layers) with CR_2 ≤ ``target``."""
    def cr(r: int) -> float:
        total = 0
        for shape in SHAPES.values():
            modes = TT(rank=r, layout=layout, block=block).modes(shape)
            total += tt_n_params(modes, tt_ranks(modes, r))
        return total / sum(math.prod(s) for s in SHAPES.values())

    r = 1
    while cr(r + 1) <= target and r < 512:
        r += 1
    return r


def points(quick: bool) -> List[Dict[str, Any]]:
    """Every point of the front: its series, its target and the NNBCD keyword arguments (as source text)."""
    out: List[Dict[str, Any]] = [dict(series="dense", target=1.0, kwargs="{}")]
    for layout in ("reshape", "matrix"):
        for block in ("projection", "cores"):
            for target in TT_TARGETS if not quick else (0.1,):
                r = tt_cap(layout, block, target)
                spec = f"TT(rank={r}, layout={layout!r}" + (", block='cores')" if block == "cores" else ")")
                tau = "" if block == "cores" else f", tau={TAU}"
                out.append(dict(series=f"TT {layout}, {block}", target=target,
                                kwargs=f"dict(compress={{0: {spec}, 1: {spec}}}{tau})"))
    for block in ("projection", "masked"):
        for q in SPARSITIES if not quick else (0.9,):
            spec = f"Prune({q}" + (", block='masked')" if block == "masked" else ")")
            tau = "" if block == "masked" else f", tau={TAU}"
            out.append(dict(series=f"prune, {block}", target=round(1 - q, 3),
                            kwargs=f"dict(compress={{0: {spec}, 1: {spec}}}{tau})"))
    return out


def run_point(point: Dict[str, Any], seed: int, max_iter: int, data: tuple) -> Dict[str, Any]:
    Xtr, ytr, Xte, yte = data
    kwargs = dict(BASE, random_state=seed, max_iter=max_iter, monitor_every=max_iter)
    kwargs.update(eval(point["kwargs"], {"TT": TT, "Prune": Prune}))  # the command text is what runs
    t0 = time.perf_counter()
    model = NNBCD(HIDDEN, **kwargs).fit(Xtr, ytr)
    h = model.result_.history
    stored = sum(model.result_.compression[i]["n_params"] for i in SHAPES) if "cr_2" in h else \
        sum(math.prod(s) for s in SHAPES.values())
    command = (f"NNBCD({HIDDEN}, **{BASE!r}, random_state={seed}, max_iter={max_iter}, "
               f"**{point['kwargs']}).fit(Xtr, ytr).score(Xte, yte)")
    return dict(seed=seed, acc=float(model.score(Xte, yte)), train_acc=float(model.score(Xtr, ytr)),
                cr_2=float(h["cr_2"][-1]) if "cr_2" in h else 1.0, stored=int(stored),
                seconds=round(time.perf_counter() - t0, 2), command=command)


def table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| series | target | CR_2 | stored numbers (layers 0-1) | accuracy (mean ± std) | seeds | kwargs |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        accs = [r["acc"] for r in row["runs"]]
        lines.append(f"| {row['series']} | {row['target']} | {row['runs'][0]['cr_2']:.4f} | {row['runs'][0]['stored']:,} "
                     f"| {np.mean(accs):.4f} ± {np.std(accs):.4f} | {len(accs)} | `{row['kwargs']}` |")
    return "\n".join(lines) + "\n"


def plot(rows: List[Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for series in dict.fromkeys(r["series"] for r in rows):
        pts = sorted((r["runs"][0]["stored"], np.mean([x["acc"] for x in r["runs"]]),
                      np.std([x["acc"] for x in r["runs"]])) for r in rows if r["series"] == series)
        x, y, e = (np.array(v) for v in zip(*pts))
        if series == "dense":
            ax.axhline(y[0], color="k", ls=":", label=f"dense ({x[0]:,} numbers)")
            continue
        exact = "cores" in series or "masked" in series
        ax.errorbar(x, y, yerr=e, marker="o" if exact else "s", ls="-" if exact else "--", capsize=3, label=series)
    ax.set_xscale("log")
    ax.set_xlabel("stored numbers of the two hidden layers (of 81,920)")
    ax.set_ylabel("held-out accuracy (deployed network)")
    ax.set_title("digits 64-256-256-10: NN-BCD, paper's projection block (dashed) vs exact blocks (solid)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="one seed, 5 sweeps, the CR 0.1 / 90 %% points")
    ap.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--plot", default=str(Path(__file__).parent.parent / "docs" / "img" / "front.png"))
    args = ap.parse_args()
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    max_iter = 5 if args.quick else args.max_iter
    suffix = "_quick" if args.quick else ""
    out_dir = Path(args.out_dir)
    plot_path = out_dir / "front_quick.png" if args.quick else Path(args.plot)
    data = load_dataset("digits", test_size=0.25, seed=0)
    rows = []
    for point in points(args.quick):
        runs = [run_point(point, seed, max_iter, data) for seed in seeds]
        rows.append(dict(point, runs=runs))
        print(f"{point['series']:>24} {point['target']:<5} CR_2 {runs[0]['cr_2']:.4f} "
              f"acc {np.mean([r['acc'] for r in runs]):.4f} ({sum(r['seconds'] for r in runs):.0f} s)", flush=True)
        # rewritten after every point: a long run that is stopped keeps what it measured
        write_result(out_dir / f"front{suffix}.json", dict(data="digits test_size=0.25 seed=0", hidden=HIDDEN,
                                                           base=BASE, max_iter=max_iter, seeds=seeds, rows=rows))
    (out_dir / f"front{suffix}.md").write_text(table(rows))
    plot(rows, plot_path)


if __name__ == "__main__":
    main()
