"""Turn the JSON written by the benchmarks into the figures shown in docs/ (docs/img/*.png).

    python benchmarks/plot_results.py
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
IMG = HERE.parent / "docs" / "img"


def plot_iteration(path: Path) -> Path:
    """Stacked per-block times of one HAR-size sweep next to the GEMM floor, per backend and dtype."""
    res = json.loads(path.read_text())
    rows = [r for r in res["rows"] if "blocks_s" in r]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r['backend']}\n{r['dtype']}" for r in rows]
    bottom = [0.0] * len(rows)
    for kind in ("V", "U", "W", "comp"):
        vals = [r["blocks_s"].get(f"time_{kind}", 0.0) for r in rows]
        if any(vals):
            ax.bar(labels, vals, bottom=bottom, label=f"{kind} blocks")
            bottom = [b + v for b, v in zip(bottom, vals)]
    ax.scatter(labels, [r["floor_s"] for r in rows], marker="_", s=900, color="k", label="GEMM floor")
    naive = {r["dtype"]: r["sweep_s"] for r in res["rows"] if r["backend"] == "naive"}
    ax.scatter(labels, [naive[r["dtype"]] for r in rows], marker="x", color="r", label="naive formulation")
    ax.set_ylabel("seconds per sweep")
    ax.set_title(f"NN-BCD sweep, HAR size (N = {res['n']}), median of {res['repeats']}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = IMG / "bench_iteration.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    for name, fn in (("bench_iteration.json", plot_iteration),):
        path = HERE / "results" / name
        if path.exists():
            print(f"wrote {fn(path)}")


if __name__ == "__main__":
    main()
