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
    """Stacked per-block times of one HAR-size sweep next to the GEMM floor, per backend and dtype
    (each row's floor is its own device's GEMM rate)."""
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
    out = IMG / path.with_suffix(".png").name
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_mcnc(path: Path) -> Path:
    """MCNC step / dense step against the batch size: CPU (digits MLP) and GPU (three widths of MLP), with
    the FLOP ratio 1 + 2(h+1)/(3B) of a width-64 generator and the 1.5x goal."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    flops = {}
    for name in sorted(path.parent.glob("bench_mcnc*.json")):
        res = json.loads(name.read_text())
        if res.get("compile") or "rows" not in res or "mcnc_w64_over_dense" not in res["rows"][0]:
            continue
        hidden = res.get("hidden", 256)
        batches = [r["batch"] for r in res["rows"]]
        ax.plot(batches, [r["mcnc_w64_over_dense"] for r in res["rows"]], marker="o",
                label=f"{res['device']}, MLP width {hidden}")
        flops.update({r["batch"]: r["flop_ratio"] for r in res["rows"]})
    xs = sorted(flops)
    ax.plot(xs, [flops[b] for b in xs], "k--", label="FLOP ratio (width-64 generator)")
    ax.axhline(1.5, color="r", lw=0.8, label="goal 1.5x")
    ax.set_xscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("MCNC step / dense step")
    ax.set_title("MCNC training-step overhead (generator width 64)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = IMG / "bench_mcnc.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    for name, fn in (("bench_iteration.json", plot_iteration), ("bench_iteration_gpu.json", plot_iteration),
                     ("bench_mcnc.json", plot_mcnc)):
        path = HERE / "results" / name
        if path.exists():
            print(f"wrote {fn(path)}")


if __name__ == "__main__":
    main()
