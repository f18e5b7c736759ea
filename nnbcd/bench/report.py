"""The report of ``nnbcd bench``: console tables, the markdown report, loading and comparing reports."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple, Union

from .machine import describe

#: the file names a report directory holds, and the JSON's format tag
JSON_NAME, MARKDOWN_NAME = "bench.json", "report.md"
SCHEMA = "nnbcd-bench/1"
#: the report's sections of rows (each row has a unique ``name`` and its time in ``seconds``)
SECTIONS = ("sweeps", "scaling", "tt_svd", "evbmf", "topk", "mcnc")


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return f"{x:.{digits}g}"
    if isinstance(x, (list, tuple)):  # a shape, or the two runs' times
        return ("×" if all(isinstance(v, int) for v in x) else ", ").join(_fmt(v, digits) for v in x)
    return str(x)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], markdown: bool) -> List[str]:
    cells = [[_fmt(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(row) + " |" for row in cells]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    return lines + ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]


def _blocks(row: Dict[str, Any]) -> str:
    """``V 1.3 (1.2×) / U 1.1 (2.3×) / ...``: each block's seconds and, where counted, its time over its floor."""
    over = row.get("blocks_over_floor", {})
    return " / ".join(f"{k[len('time_'):]} {v:.3g}" + (f" ({over[k]:.2g}×)" if k in over else "")
                      for k, v in row.get("blocks_s", {}).items() if v)


def section_tables(report: Dict[str, Any], markdown: bool) -> List[str]:
    """Every section of ``report`` as a titled table (aligned text, or markdown)."""
    out: List[str] = []

    def add(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            out.extend(["", f"## {title}", ""] if markdown else ["", f"{title}:"])
            out.extend(_table(header, rows, markdown))

    sweeps = report.get("sweeps", [])
    add("NN-BCD sweep (seconds per sweep; floor = sweep FLOPs / GEMM peak measured in the same run)",
        ["network", "variant", "backend", "dtype", "N", "sweep s", "floor s", "time/floor", "vs numpy",
         "vs projection", "BLAS threads", "per block s (time/floor)"],
        [[r["workload"], r["variant"], r["backend"], r["dtype"], r["n"], r["sweep_s"], r["floor_s"],
          r["time_over_floor"], r.get("speedup_vs_numpy"), r.get("vs_projection"), r["blas_threads"], _blocks(r)]
         for r in sweeps])
    add("Scaling of the dense sweep",
        ["network", "axis", "N", "width", "backend", "dtype", "sweep s", "time/floor", "vs numpy"],
        [[r["workload"], r["axis"], r["n"], r["width"], r["backend"], r["dtype"], r["sweep_s"],
          r["time_over_floor"], r.get("speedup_vs_numpy")] for r in report.get("scaling", [])])
    add("TT-SVD, ours against tensorly's tensor_train (same ranks)",
        ["case", "kind", "backend", "dtype", "tensorly s", "full s", "gram s", "tl/gram", "tl/full",
         "err gram/tl", "err full/tl"],
        [[r["case"], r["kind"], r["backend"], r["dtype"], r["tensorly_s"], r["full_s"], r["gram_s"],
          r["speedup_gram"], r["speedup_full"], r["err_ratio_gram"], r["err_ratio_full"]]
         for r in report.get("tt_svd", [])])
    add("EVBMF, ours against the straightforward implementation",
        ["case", "scale", "backend", "dtype", "straightforward s", "ours s", "speed-up", "rank sf", "rank ours"],
        [[r["case"], r["scale"], r["backend"], r["dtype"], r["straightforward_s"], r["ours_s"], r["speedup"],
          r["rank_straightforward"], r["rank_ours"]] for r in report.get("evbmf", [])])
    add("Top-k pruning (90 %), ours against a full sort",
        ["shape", "backend", "dtype", "ours s", "sort s", "speed-up", "same entries"],
        [[r["shape"], r["backend"], r["dtype"], r["ours_s"], r["sort_s"], r["speedup"], r["same"]]
         for r in report.get("topk", [])])
    mcnc = report.get("mcnc", [])
    if mcnc:
        ratios = [k for k in mcnc[0] if k.endswith("_over_dense")]
        add("MCNC training step (digits MLP; ratios to the dense step of the same round)",
            ["device", "threads", "batch", "dense ms"] + [k[:-len("_over_dense")] + "/dense" for k in ratios]
            + ["FLOP ratio"],
            [[r["device"], r["threads"], r["batch"], r["dense_ms"]] + [r[k] for k in ratios] + [r["flop_ratio"]]
             for r in mcnc])
    conc = report.get("concurrency")
    if conc:
        load = "" if conc.get("load_1min") is None else f"; load average {conc['load_1min']:.1f} before"
        add(f"Two runs at once ({conc['workload']}/{conc['variant']}, {conc['backend']} {conc['dtype']}; "
            f"goal: ≤ {conc['goal']}x the time alone{load})",
            ["BLAS threads", "alone s/sweep", "each of two at once s/sweep", "ratio", "ratio to best alone",
             "alone CPU s/sweep", "two at once CPU s/sweep", "CPU ratio"],
            [[_fmt(c["blas_threads"]) or "default", c["alone_s"], c["two_at_once_s"], c["ratio"],
              c["ratio_to_best_alone"], c["alone_cpu_s"], c["two_at_once_cpu_s"], c["cpu_ratio"]]
             for c in (conc["without_policy"], conc["with_policy"])])
    add("Time of each measurement", ["measurement", "wall s", "CPU s"],
        [[t["what"], t["wall_s"], t["cpu_s"]] for t in report.get("tasks", [])] if markdown else [])
    return out


def absent_lines(report: Dict[str, Any]) -> List[str]:
    """One line per backend or measurement that is absent, with the reason."""
    return [f"{a['what']}: {a['reason']}" for a in report.get("absent", [])]


def interrupted_line(report: Dict[str, Any]) -> List[str]:
    """The line saying where Ctrl-C stopped the run, if it did."""
    if not report.get("interrupted"):
        return []
    return [f"interrupted (Ctrl-C) during {report['interrupted']}: the report holds what finished before it"]


def console(report: Dict[str, Any]) -> str:
    """The report as aligned text tables (what ``nnbcd bench`` prints)."""
    lines = describe(report["machine"])
    lines += [f"absent: {line}" for line in absent_lines(report)] + interrupted_line(report)
    lines += section_tables(report, markdown=False)
    run = report["run"]
    lines += ["", f"total: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU"]
    return "\n".join(lines)


def markdown(report: Dict[str, Any], plots: Sequence[str] = ()) -> str:
    """The markdown report: machine, absent measurements, every table, the plots."""
    opts = report["options"]
    repeats = "one timed repeat each" if opts["repeats"] == 1 else f"medians of {opts['repeats']} repeats"
    lines = [f"# nnbcd bench --size {opts['size']}", "",
             f"{report['created']}; {repeats}; "
             f"{report['run']['wall_s']:.1f} s wall, {report['run']['cpu_s']:.1f} s CPU.", "", "## Machine", ""]
    lines += [f"- {line}" for line in describe(report["machine"])]
    absent = absent_lines(report)
    if absent:
        lines += ["", "## Absent", ""] + [f"- {line}" for line in absent]
    for line in interrupted_line(report):
        lines += ["", f"**{line[0].upper()}{line[1:]}.**"]
    lines += section_tables(report, markdown=True)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def load(path: Union[str, Path]) -> Dict[str, Any]:
    """A report from its directory (its ``bench.json``) or from a JSON file.

    Raises
    ------
    OSError
        If the file is missing or unreadable.
    ValueError
        If it is not a report of ``nnbcd bench``, or lacks what :func:`compare_text` reads (a hand-edited
        file): the message names the path and the missing key.
    """
    path = Path(path)
    file = path / JSON_NAME if path.is_dir() else path
    try:
        report = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not JSON ({exc})") from exc
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ValueError(f"{file} is not an nnbcd bench report (no schema {SCHEMA!r})")
    # checked here so that a hand-edited report is named, not a raw KeyError from deep in the comparison
    try:
        report["created"], report["options"]["size"]
        describe(report["machine"])
        for row in _rows(report).values():
            row["seconds"]
    except (KeyError, TypeError, IndexError) as exc:
        what = f"no key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{file} is an incomplete nnbcd bench report ({what})") from exc
    return report



def _rows(report: Dict[str, Any]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    rows = {(section, r["name"]): r for section in SECTIONS for r in report.get(section, [])}
    conc = report.get("concurrency")
    if conc:
        for key in ("without_policy", "with_policy"):
            c = conc[key]
            rows[("concurrency", f"{conc['name']} {key.replace('_', ' ')}")] = {
                "seconds": sum(c["two_at_once_s"]) / 2, "ratio": c["ratio"]}
    return rows


def compare(a: Dict[str, Any], b: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The rows two reports share, with B's time over A's.

    Parameters
    ----------
    a, b : dict
        Reports (:func:`load`).

    Returns
    -------
    list of dict
        ``section``, ``name``, ``a_s``, ``b_s`` (each row's ``seconds``: the sweep time, ours in a
        comparison, the MCNC step, the per-run time of two runs at once), ``b_over_a``, and where the rows
        have them ``a_floor`` / ``b_floor`` (time over the GEMM floor). Rows of one report only are left out.
    """
    ra, rb = _rows(a), _rows(b)
    out = []
    for key, x in ra.items():
        y = rb.get(key)
        if y is None:
            continue
        out.append({"section": key[0], "name": key[1], "a_s": x["seconds"], "b_s": y["seconds"],
                    "b_over_a": y["seconds"] / x["seconds"], "a_floor": x.get("time_over_floor"),
                    "b_floor": y.get("time_over_floor")})
    return out


def compare_text(a: Dict[str, Any], b: Dict[str, Any], names: Tuple[str, str] = ("A", "B")) -> str:
    """:func:`compare` as an aligned table, after each report's machine."""
    lines = []
    for label, rep in zip(names, (a, b)):
        lines += [f"{label}: {rep['created']}, --size {rep['options']['size']}"]
        lines += [f"   {line}" for line in describe(rep["machine"])]
    rows = compare(a, b)
    only = len(_rows(a)) + len(_rows(b)) - 2 * len(rows)
    lines += [""] + _table(["section", "row", "A s", "B s", "B/A", "A time/floor", "B time/floor"],
                           [[r["section"], r["name"], r["a_s"], r["b_s"], r["b_over_a"], r["a_floor"], r["b_floor"]]
                            for r in rows], markdown=False)
    if only:
        lines.append(f"({only} rows are in one report only)")
    return "\n".join(lines)
