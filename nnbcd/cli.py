"""Command line: ``nnbcd solve PRESET.toml`` (``nnbcd solve --resume DIR``), ``nnbcd bench``, ``nnbcd info``.

A preset is a TOML file whose top-level ``method`` picks the runner (``nnbcd`` by default, ``lowrank``,
``mcnc``; see :mod:`nnbcd.runners`); its tables are checked before anything is trained, and an unknown
key is an error naming it and its table.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any, List, Optional

from .result import Status
from .runners import run_preset
from .runners.nnbcd import load_resolved
from .runners.schema import apply_overrides, load_preset

__all__ = ["EXIT_INTERRUPTED", "main"]


#: The exit status of a run ended by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _cmd_solve(args: argparse.Namespace) -> int:
    if args.resume is not None:
        if args.preset is not None or args.out is not None:
            raise ValueError("--resume DIR takes no PRESET or --out: the run continues with the preset stored in "
                             "DIR, into DIR (--set may change what a resumed run may change, e.g. fit.max_iter)")
        out = args.resume
        cfg = apply_overrides(load_resolved(out), args.set)
    elif args.preset is None:
        raise ValueError("solve needs a PRESET (a TOML file) or --resume DIR")
    else:
        cfg = load_preset(args.preset, args.set)
        out = args.out or str(Path("runs") / Path(args.preset).stem)
    t0 = time.perf_counter()
    summary = run_preset(cfg, out, quiet=args.quiet, resume=args.resume is not None)
    summary["wall_seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, indent=1, default=str))
    print(f"results written to {out}/")
    if summary.get("status") == Status.INTERRUPTED:
        print("nnbcd: interrupted: the results hold the last complete iterate", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                  line: Optional[str] = None) -> None:
    """Warnings as one ``nnbcd: <Category>: message`` line: a command-line user wrote a preset, not the library
    line the warning was raised from."""
    print(f"nnbcd: {category.__name__}: {message}", file=sys.stderr if file is None else file)


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.compare:
        reports = []
        for path in args.compare:
            try:
                reports.append(bench.load(path))
            except (OSError, ValueError) as exc:
                raise type(exc)(f"--compare: {exc}") from exc
        print(bench.compare_text(*reports, names=tuple(args.compare)))
        return 0
    from .bench.report import console
    from .bench.suite import OptionError, check_options

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    only = None if args.only is None else [p.strip() for p in args.only.split(",") if p.strip()]
    try:
        check_options(backends, args.size, args.repeats, only)  # before minutes of measuring
    except OptionError as exc:
        raise ValueError(f"--{exc}") from exc
    from .runners.schema import ensure_out_dir

    out = Path(args.out or Path("runs") / f"bench-{args.size}")
    try:  # before minutes of measuring
        ensure_out_dir(out)
    except OSError as exc:
        raise OSError(f"--out: {exc}") from None
    try:
        report = bench.run_bench(backends, args.size, out, repeats=args.repeats, only=only,
                                 progress=not args.quiet)
        text = console(report)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        # the options were checked above: past that, these are failures of the bench itself, which main would
        # report as a bad input (rc 2); as RuntimeError they end with their traceback (rc 1)
        raise RuntimeError(f"nnbcd bench failed: {type(exc).__name__}: {exc}") from exc
    print(text)
    print(f"report written to {out}/ ({', '.join(report['files'])})")
    for f in report["failed"]:
        print(f"nnbcd: error: {f['what']} failed: {f['reason']}", file=sys.stderr)
    if report.get("interrupted"):
        print(f"nnbcd: interrupted during {report['interrupted']}: the report holds the measurements that "
              "finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if report["failed"] else 0


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np
    import scipy

    from . import __version__
    from .backend import available_backends

    print(f"nnbcd {__version__}  numpy {np.__version__}  scipy {scipy.__version__}")
    print(f"backends available: {', '.join(available_backends())}")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(f"  {pool['internal_api']} {pool.get('version')} threads={pool['num_threads']} "
                  f"({Path(pool['filepath']).name})")
    except ImportError:  # pragma: no cover
        pass
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """The ``nnbcd`` command: ``solve PRESET [--out DIR] [--set KEY=VALUE ...] [--quiet]``, ``solve --resume DIR``,
    ``bench [...]`` (docs/bench.md) or ``info``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success; 1 when a benchmark measurement failed (the report lists it); 2 on
        an error of the user's input or environment (a bad preset,
        table or key, a missing file, an unwritable ``--out``, a missing optional dependency), which is
        printed as one ``nnbcd: error: ...`` line on stderr; 130 (:data:`EXIT_INTERRUPTED`) after Ctrl-C
        (``solve`` then has written the results of the last complete iterate, status 4; ``bench`` the
        report of the measurements that finished).

    Raises
    ------
    RuntimeError
        When ``bench`` itself fails past its option checks (the cause chained; the interpreter's exit
        status 1), not a bad option.
    """
    parser = argparse.ArgumentParser(prog="nnbcd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="run a preset (TOML) and write results + plots")
    p.add_argument("preset", nargs="?", help="path to a TOML preset, e.g. solvers/digits.toml")
    p.add_argument("--out", help="output directory (default runs/<preset name>)")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run whose --out was DIR from its last checkpoint ([fit] checkpoint_every)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a preset key, e.g. --set fit.max_iter=10 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output (overrides [fit] verbose)")
    p.set_defaults(func=_cmd_solve)
    p = sub.add_parser("bench", help="benchmark the backends on this machine: JSON, markdown report, plots",
                       description="Time NN-BCD sweeps (per block kind, against the GEMM floor), TT-SVD, EVBMF, "
                                   "top-k, the MCNC step and two runs at once, for every available backend and "
                                   "dtype (docs/bench.md).")
    p.add_argument("--backends", default="numpy,numba,cupy", metavar="LIST",
                   help="comma-separated backends (default numpy,numba,cupy; absent ones are reported with "
                        "the reason)")
    p.add_argument("--size", choices=("small", "paper"), default="small",
                   help="problem sizes: small (about a minute on 2 cores) or paper (the paper's sizes)")
    p.add_argument("--out", metavar="DIR", help="report directory (default runs/bench-<size>)")
    p.add_argument("--repeats", type=int, metavar="N",
                   help="timed repeats per measurement, medians (default 3 small, 7 paper)")
    p.add_argument("--only", metavar="PARTS",
                   help="comma-separated parts to run: digits, har, cnn (sweeps), scaling, tt_svd, evbmf, topk, "
                        "mcnc, concurrency (default all)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="print the ratios of two reports (directories or bench.json files) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("info", help="versions, backends and BLAS thread pools")
    p.set_defaults(func=_cmd_info)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:  # the user's input or environment
        print(f"nnbcd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a run's sweeps (loading data, plotting): nothing to keep
        print("nnbcd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
