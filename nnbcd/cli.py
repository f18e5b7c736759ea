"""Command line: ``nnbcd solve PRESET.toml``, ``nnbcd info``.

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
from pathlib import Path
from typing import List, Optional

from .runners import run_preset
from .runners.schema import load_preset

__all__ = ["main"]


def _cmd_solve(args: argparse.Namespace) -> int:
    cfg = load_preset(args.preset, args.set)
    out = args.out or str(Path("runs") / Path(args.preset).stem)
    t0 = time.perf_counter()
    summary = run_preset(cfg, out, quiet=args.quiet)
    summary["wall_seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, indent=1, default=str))
    print(f"results written to {out}/")
    return 0


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
    """The ``nnbcd`` command: ``solve PRESET [--out DIR] [--set KEY=VALUE ...] [--quiet]`` or ``info``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success; 2 on an error of the user's input or environment (a bad preset,
        table or key, a missing file, an unwritable ``--out``, a missing optional dependency), which is
        printed as one ``nnbcd: error: ...`` line on stderr.
    """
    parser = argparse.ArgumentParser(prog="nnbcd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="run a preset (TOML) and write results + plots")
    p.add_argument("preset", help="path to a TOML preset, e.g. solvers/digits.toml")
    p.add_argument("--out", help="output directory (default runs/<preset name>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a preset key, e.g. --set fit.max_iter=10 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output (overrides [fit] verbose)")
    p.set_defaults(func=_cmd_solve)
    p = sub.add_parser("info", help="versions, backends and BLAS thread pools")
    p.set_defaults(func=_cmd_info)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:  # the user's input or environment
        print(f"nnbcd: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
