"""Command line: ``nnbcd solve PRESET.toml``, ``nnbcd info``.

A preset is a TOML file whose top-level ``method`` picks the runner (``nnbcd`` by default, ``lowrank``,
``mcnc``); every other key belongs to that runner, and an unknown key is an error naming it.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

#: method -> "module:function" with signature run(config, out_dir, verbose) -> dict
RUNNERS = {
    "nnbcd": "nnbcd.presets:run",
    "lowrank": "nnbcd.torch.lowrank_example:run",
    "mcnc": "nnbcd.torch.mcnc_example:run",
}


def load_preset(path: "str | Path", overrides: Optional[List[str]] = None) -> Dict[str, Any]:
    """Read a TOML preset and apply ``section.key=value`` overrides (values parsed as TOML)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preset file {str(path)!r} does not exist")
    with open(path, "rb") as fh:
        try:
            cfg = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a table")
        node[parts[-1]] = value
    return cfg


def run_preset(cfg: Dict[str, Any], out_dir: "str | Path", verbose: bool = True) -> Dict[str, Any]:
    """Dispatch a loaded preset to its runner; returns the runner's summary."""
    method = cfg.get("method", "nnbcd")
    if method not in RUNNERS:
        raise ValueError(f"method = {method!r} is not known; choose one of {sorted(RUNNERS)}")
    module, func = RUNNERS[method].split(":")
    runner = getattr(importlib.import_module(module), func)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return runner(cfg, out, verbose)


def _cmd_solve(args: argparse.Namespace) -> int:
    cfg = load_preset(args.preset, args.set)
    out = args.out or str(Path("runs") / Path(args.preset).stem)
    t0 = time.perf_counter()
    summary = run_preset(cfg, out, verbose=not args.quiet)
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
    parser = argparse.ArgumentParser(prog="nnbcd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="run a preset (TOML) and write results + plots")
    p.add_argument("preset", help="path to a TOML preset, e.g. solvers/digits.toml")
    p.add_argument("--out", help="output directory (default runs/<preset name>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a preset key, e.g. --set fit.max_iter=10 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_solve)
    p = sub.add_parser("info", help="versions, backends and BLAS thread pools")
    p.set_defaults(func=_cmd_info)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"nnbcd: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
