"""The report's figures: time per block kind, time over the GEMM floor, speed-up over numpy, scaling."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

KINDS_ORDER = ("time_V", "time_U", "time_W", "time_comp")


def _label(r: Dict[str, Any]) -> str:
    return f"{r['workload']}/{r['variant']}\n{r['backend']} {r['dtype'].replace('float', 'f')}"


def _figure(width: float, height: float, ncols: int = 1) -> Any:
    # a bare Figure (no pyplot): no GUI backend is touched and nothing stays registered after saving
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, ncols)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_blocks(rows: List[Dict[str, Any]], path: Path) -> Path:
    """Stacked seconds per block kind of each sweep row with its GEMM floor marked, one panel per network
    (linear scales: the networks' times differ by orders of magnitude)."""
    rows = [r for r in rows if "blocks_s" in r]
    nets = list(dict.fromkeys(r["workload"] for r in rows))
    kinds = list(dict.fromkeys(list(KINDS_ORDER) + [k for r in rows for k in r["blocks_s"]]))
    fig, axes = _figure(max(6.0, 0.6 * len(rows) + 1.5 * len(nets)), 4.6, ncols=len(nets))
    for ax, net in zip(axes if len(nets) > 1 else [axes], nets):
        sub = [r for r in rows if r["workload"] == net]
        x = list(range(len(sub)))
        bottom = [0.0] * len(sub)
        for i, kind in enumerate(kinds):
            vals = [r["blocks_s"].get(kind, 0.0) for r in sub]
            ax.bar(x, vals, bottom=bottom, color=f"C{i}", label=f"{kind[len('time_'):]} blocks")
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.scatter(x, [r["floor_s"] for r in sub], marker="_", s=300, color="k", label="GEMM floor", zorder=3)
        ax.set_xticks(x, [_label(r) for r in sub], rotation=90, fontsize="x-small")
        ax.set_title(net)
        ax.set_ylabel("seconds per sweep")
    (axes[0] if len(nets) > 1 else axes).legend(fontsize="x-small")
    fig.suptitle("NN-BCD sweep: time per block kind")
    return _save(fig, path)


def _ratio_bars(rows: List[Dict[str, Any]], values: List[float], colors: List[str], ylabel: str, title: str,
                path: Path, legend: Sequence[Tuple[str, str]] = ()) -> Path:
    """One bar per sweep row, labelled by :func:`_label`, with the ratio 1 drawn as a line; ``legend``: the
    (color, label) of each bar color."""
    from matplotlib.patches import Patch

    fig, ax = _figure(max(6.0, 0.55 * len(rows)), 4.0)
    x = range(len(rows))
    ax.bar(x, values, color=colors)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(list(x), [_label(r) for r in rows], rotation=90, fontsize="x-small")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(handles=[Patch(color=c, label=label) for c, label in legend], fontsize="x-small")
    return _save(fig, path)


def plot_floor_ratio(rows: List[Dict[str, Any]], path: Path) -> Path:
    """Each sweep row's time over its GEMM floor."""
    naive = [r["backend"] == "naive" for r in rows]
    legend = [(c, label) for c, label, shown in (("C0", "NN-BCD solver", not all(naive)),
                                                  ("C3", "naive formulation", any(naive))) if shown]
    # two title lines: one line is wider than the 6-inch figure of a few rows
    return _ratio_bars(rows, [r["time_over_floor"] for r in rows], ["C3" if n else "C0" for n in naive],
                       "sweep time / GEMM floor",
                       "NN-BCD sweep against the GEMM floor\n(1 = every FLOP at the GEMM peak)", path, legend)


def plot_speedup(rows: List[Dict[str, Any]], path: Path) -> Path:
    """Speed-up of each backend over numpy, per network, variant and dtype."""
    rows = [r for r in rows if "speedup_vs_numpy" in r and r["backend"] != "numpy"]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    return _ratio_bars(rows, [r["speedup_vs_numpy"] for r in rows],
                       [f"C{backends.index(r['backend'])}" for r in rows], "numpy sweep time / this backend's",
                       "Speed-up over the numpy backend", path, [(f"C{i}", b) for i, b in enumerate(backends)])


def plot_scaling(rows: List[Dict[str, Any]], path: Path) -> Path:
    """Seconds per dense sweep against N and against the hidden width, per backend and dtype; the floor
    dashed."""
    fig, axes = _figure(10, 4, ncols=2)
    for ax, axis, xkey, xlabel in ((axes[0], "n", "n", "N (samples)"), (axes[1], "width", "width", "hidden width")):
        series = [r for r in rows if r["axis"] == axis]
        for i, key in enumerate(dict.fromkeys((r["backend"], r["dtype"]) for r in series)):
            pts = sorted((r[xkey], r["sweep_s"], r["floor_s"]) for r in series if (r["backend"], r["dtype"]) == key)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=f"{key[0]} {key[1]}")
            ax.plot([p[0] for p in pts], [p[2] for p in pts], "--", color=f"C{i}", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per sweep (dashed: GEMM floor)")
        ax.legend(fontsize="small")
    fig.suptitle(f"Dense sweep scaling ({rows[0]['workload']} MLP)")
    return _save(fig, path)


def plot_report(report: Dict[str, Any], out: Path) -> List[Path]:
    """Write every figure the report has data for into ``out``; returns their paths.

    ``blocks.png`` needs a solver's sweep row (the naive rows have no blocks: every backend absent),
    ``floor_ratio.png`` any sweep row, ``speedup.png`` a numpy row and another row of the same sweep,
    ``scaling.png`` scaling rows.
    """
    paths = []
    sweeps = report.get("sweeps", [])
    if any("blocks_s" in r for r in sweeps):  # an empty figure has no panel to draw on
        paths.append(plot_blocks(sweeps, out / "blocks.png"))
    if sweeps:
        paths.append(plot_floor_ratio(sweeps, out / "floor_ratio.png"))
        if any("speedup_vs_numpy" in r and r["backend"] != "numpy" for r in sweeps):
            paths.append(plot_speedup(sweeps, out / "speedup.png"))
    if report.get("scaling"):
        paths.append(plot_scaling(report["scaling"], out / "scaling.png"))
    return paths
