"""``nnbcd bench``: every measurement for every available backend and dtype, into one report directory."""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..backend import BackendUnavailableError, get_backend
from ..backend.threads import blas_threads
from . import report as rep
from .plots import plot_report
from .sweeps import projection_ratios, speedups, time_naive, time_scaling, time_sweep
from .timing import Clock, _json_default
from .workloads import SIZES, workloads

DTYPES = ("float32", "float64")
#: what ``--only`` can select: the sweep networks and the other measurements
PARTS = ("digits", "har", "cnn", "scaling", "tt_svd", "evbmf", "topk", "mcnc", "concurrency")
DEFAULT_REPEATS = {"small": 3, "paper": 7}


@dataclass(frozen=True)
class Plan:
    """The sizes of the non-sweep measurements at one ``--size``."""

    scaling_n: Sequence[int]
    scaling_width: Sequence[int]
    tt_cases: Sequence[Any]
    evbmf_cases: Sequence[Any]
    topk_shapes: Sequence[Any]
    mcnc_batches: Sequence[int]
    mcnc_rounds: int
    mcnc_steps: int
    concurrent_sweeps: int
    concurrent_seconds: float


def plan(size: str) -> Plan:
    """The measurement sizes of ``small`` (about a minute on 2 cores) and ``paper``."""
    from .topk import PAPER_SHAPES, SMALL_SHAPES
    from .tt import DIGITS_CASES, HAR_CASES
    from .vbmf import SMALL_CASES, SPEC_CASES

    if size == "paper":
        return Plan([1347, 2694, 5388, 10776], [256, 512, 1024, 2048], HAR_CASES, SPEC_CASES, PAPER_SHAPES,
                    [64, 256, 1347], 30, 10, 60, 30.0)
    return Plan([337, 674, 1347, 2694], [128, 256, 512], DIGITS_CASES, SMALL_CASES, SMALL_SHAPES, [256], 5, 5, 20, 4.0)


class OptionError(ValueError):
    """A bad argument of :func:`run_bench`; :attr:`option` names it (the command line adds ``--``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


def check_backends(names: Sequence[str]) -> Dict[str, Optional[str]]:
    """Each requested backend with ``None`` (usable) or the reason it is absent.

    Raises
    ------
    OptionError
        If a name is not a registered backend (option ``backends``).
    """
    out: Dict[str, Optional[str]] = {}
    for name in names:
        try:
            get_backend(name)
            out[name] = None
        except BackendUnavailableError as exc:
            out[name] = str(exc)
        except ValueError as exc:
            raise OptionError("backends", str(exc)) from exc
    return out


def check_options(backends: Sequence[str], size: str, repeats: Optional[int],
                  only: Optional[Sequence[str]]) -> Tuple[Dict[str, Optional[str]], int, List[str]]:
    """Validate :func:`run_bench`'s arguments before anything runs.

    Returns
    -------
    (dict, int, list of str)
        :func:`check_backends`' answer, the repeats (the size's default for ``None``) and the parts.

    Raises
    ------
    OptionError
        Naming the argument: an unknown size, backend or part, no backend or no part, or ``repeats`` < 1.
    """
    if size not in SIZES:
        raise OptionError("size", f"{size!r} is not one of {', '.join(SIZES)}")
    if not backends:  # else a report of nothing but the naive rows
        raise OptionError("backends", "no backend given; choose from numpy, numba, cupy")
    parts = list(PARTS if only is None else only)
    if not parts:  # an empty selection (``--only ""``) is a mistake, not a request to measure nothing
        raise OptionError("only", f"no part given; choose from {', '.join(PARTS)}")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise OptionError("only", f"{', '.join(unknown)} is not a part; choose from {', '.join(PARTS)}")
    repeats = DEFAULT_REPEATS[size] if repeats is None else repeats
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise OptionError("repeats", f"must be an integer of at least 1, got {repeats!r}")
    return check_backends(backends), repeats, parts


def _optional(module: str, extra: str) -> Optional[str]:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'nnbcd[{extra}]')"
    return None


def run_bench(backends: Sequence[str], size: str, out: Path, repeats: Optional[int] = None,
              only: Optional[Sequence[str]] = None, progress: bool = True) -> Dict[str, Any]:
    """Run the benchmarks and write ``bench.json``, ``report.md`` and the plots into ``out``.

    Parameters
    ----------
    backends : sequence of str
        Backend names; unavailable ones are listed in the report's ``absent`` with the reason.
    size : {"small", "paper"}
        Problem sizes (:mod:`nnbcd.bench.workloads`, :func:`plan`).
    out : Path
        The report directory (created).
    repeats : int, optional
        Timed repeats per measurement (medians); default 3 (small) or 7 (paper).
    only : sequence of str, optional
        Run only these parts of :data:`PARTS` (default: all).
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict
        The report (what ``bench.json`` holds): ``schema``, ``created``, ``options``, ``backends`` (name →
        ``{"available", "reason"}``), ``absent`` and ``failed`` (``{"what", "reason"}``), ``machine``,
        ``sweeps``, ``scaling``, ``tt_svd``, ``evbmf``, ``topk``, ``mcnc``, ``concurrency``, ``tasks``
        (each finished measurement's ``wall_s`` and ``cpu_s``), ``run`` (the whole run's) and ``files``; after
        Ctrl-C (``KeyboardInterrupt``) in a measurement, also ``interrupted`` (that measurement's label, or
        ``"the plots"``): the run stops there and the report holds the measurements that finished.

    Raises
    ------
    OptionError
        As :func:`check_options`.
    """
    from tqdm.auto import tqdm

    from .machine import machine_info

    clock = Clock()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    status, repeats, parts = check_options(backends, size, repeats, only)
    avail = [b for b, reason in status.items() if reason is None]
    report: Dict[str, Any] = {
        "schema": rep.SCHEMA, "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "options": {"backends": list(backends), "size": size, "repeats": repeats, "only": parts},
        "backends": {b: {"available": r is None, "reason": r} for b, r in status.items()},
        "absent": [{"what": f"backend {b}", "reason": r} for b, r in status.items() if r is not None],
        "failed": [],
    }
    tasks = _tasks(report, parts, avail, size, repeats)
    report["tasks"] = []
    for label, task in tqdm(tasks, desc="nnbcd bench", disable=not progress or None, unit="task"):
        task_clock = Clock()
        try:
            task()
        except KeyboardInterrupt:  # Ctrl-C stops the run; what finished is still written, as `solve` does
            report["interrupted"] = label
            break
        except Exception as exc:  # one failed measurement is reported; the others still run
            report["failed"].append({"what": label, "reason": f"{type(exc).__name__}: {exc}"})
        report["tasks"].append({"what": label, **task_clock.read()})
    for section in ("sweeps", "scaling"):
        speedups(report.get(section, []))
    projection_ratios(report.get("sweeps", []))
    report["machine"] = machine_info()  # after the run: every BLAS and OpenMP pool it loaded is listed
    report["machine"]["cpu"]["load_1min_start"] = load_start
    if "cupy" in avail:
        from ..backend import cupy_backend

        report["machine"]["gpu"]["relu_prox_kernel"] = cupy_backend._KERNEL_FAILURE or "numba-cuda kernel"
    report["run"] = clock.read()
    out.mkdir(parents=True, exist_ok=True)
    try:
        plots = plot_report(report, out)
    except KeyboardInterrupt:  # the slowest step after the measurements: keep them, without the plots
        report["interrupted"], plots = "the plots", []
    report["files"] = [rep.JSON_NAME, rep.MARKDOWN_NAME] + [p.name for p in plots]
    (out / rep.MARKDOWN_NAME).write_text(rep.markdown(report, [str(p) for p in plots]))
    (out / rep.JSON_NAME).write_text(json.dumps(report, indent=1, default=_json_default))
    return report


def _tasks(report: Dict[str, Any], parts: List[str], avail: List[str], size: str,
           repeats: int) -> List[tuple]:
    """(label, thunk) of every measurement; each thunk appends its rows to ``report``."""
    p = plan(size)
    nets = workloads(size)
    tasks: List[tuple] = []

    def rows(section: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            res = fn()
            report.setdefault(section, []).extend(res if isinstance(res, list) else [res])
        return run

    for name in (n for n in ("digits", "har", "cnn") if n in parts):
        net = nets[name]
        report.setdefault("sweeps", [])
        for dtype in DTYPES:
            if net.conv is None:
                tasks.append((f"{name}/dense naive {dtype}", rows("sweeps", lambda net=net, d=dtype:
                                                                   time_naive(net, d, repeats))))
            for backend in avail:
                for variant in net.variants:
                    tasks.append((f"{name}/{variant} {backend} {dtype}",
                                  rows("sweeps", lambda net=net, v=variant, b=backend, d=dtype:
                                       time_sweep(net, v, b, d, repeats))))
    if "scaling" in parts:
        for backend in avail:
            tasks.append((f"scaling {backend}", rows("scaling", lambda b=backend: time_scaling(
                nets["digits"], b, "float32", repeats, list(p.scaling_n), list(p.scaling_width)))))
    if "tt_svd" in parts:
        reason = _optional("tensorly", "bench")
        if reason:
            report["absent"].append({"what": "TT-SVD against tensorly", "reason": reason})
        else:
            from .tt import KINDS, time_tt_svd

            for backend in avail:
                tasks.append((f"TT-SVD {backend}", rows("tt_svd", lambda b=backend: time_tt_svd(
                    b, p.tt_cases, KINDS, DTYPES, 80, repeats))))
    if "evbmf" in parts:
        from .vbmf import time_evbmf

        for backend in avail:
            tasks.append((f"EVBMF {backend}", rows("evbmf", lambda b=backend: time_evbmf(b, p.evbmf_cases, repeats))))
    if "topk" in parts:
        from .topk import time_topk

        for backend in avail:
            tasks.append((f"top-k {backend}", rows("topk", lambda b=backend: time_topk(b, p.topk_shapes, DTYPES,
                                                                                    repeats))))
    if "mcnc" in parts:
        reason = _optional("torch", "torch")
        if reason:
            report["absent"].append({"what": "MCNC step", "reason": reason})
        else:
            tasks.append(("MCNC step cpu", rows("mcnc", lambda: _mcnc(p, "cpu"))))
            if "cupy" in avail:  # the GPU run: torch's CUDA device too, when this torch build has one
                tasks.append(("MCNC step cuda", lambda: _mcnc_cuda(report, p)))
    if "concurrency" in parts:
        cpu = [b for b in ("numba", "numpy") if b in avail]
        if cpu:
            def conc() -> None:
                from .concurrency import two_runs_at_once

                report["concurrency"] = two_runs_at_once(cpu[0], "float32", p.concurrent_sweeps,
                                                         p.concurrent_seconds)
            tasks.append((f"two runs at once {cpu[0]}", conc))
        else:
            report["absent"].append({"what": "two runs at once", "reason": "needs a CPU backend (numba or numpy)"})
    return tasks


def _mcnc(p: Plan, device: str) -> List[Dict[str, Any]]:
    from .mcnc import time_mcnc

    # torch's threads by the same size policy as BLAS's: its largest product is batch × 256 × 256
    threads = blas_threads(2.0 * max(p.mcnc_batches) * 256 * 256)
    return time_mcnc(256, p.mcnc_batches, [64], p.mcnc_rounds, p.mcnc_steps, device, warmup=p.mcnc_steps,
                     threads=threads)


def _mcnc_cuda(report: Dict[str, Any], p: Plan) -> None:
    import torch

    if not torch.cuda.is_available():
        report["absent"].append({"what": "MCNC step on CUDA",
                                 "reason": f"torch {torch.__version__} has no CUDA device"})
        return
    report.setdefault("mcnc", []).extend(_mcnc(p, "cuda"))
