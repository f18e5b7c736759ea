"""Preset runners: a TOML preset in, a trained model's results in a directory out.

One module per method, all on the schema of :mod:`nnbcd.runners.schema` (``[data]``, ``[model]``,
``[fit]``; ``[[compress]]`` for NN-BCD):

* ``nnbcd`` (:mod:`nnbcd.runners.nnbcd`): NN-BCD training, optionally with TT / pruning compression;
* ``lowrank`` (:mod:`nnbcd.runners.lowrank`, needs torch): a CNN decomposed at EVBMF ranks;
* ``mcnc`` (:mod:`nnbcd.runners.mcnc`, needs torch): dense vs MCNC vs PRANC at one storage budget.

Each runner module has ``check(config) -> Preset`` (every table checked, nothing loaded or trained)
and ``run(config, out_dir, *, quiet=False) -> dict`` (the summary printed by ``nnbcd solve``).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Mapping

__all__ = ["METHODS", "get_runner", "run_preset"]

#: The values ``method`` may take, each the name of its runner module.
METHODS = ("nnbcd", "lowrank", "mcnc")


def get_runner(method: Any) -> ModuleType:
    """The runner module for ``method``; the torch runners import torch only when asked for.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.

    Returns
    -------
    module
        With ``check(config)`` and ``run(config, out_dir, *, quiet=False)``.

    Raises
    ------
    ValueError
        ``method`` is not one of :data:`METHODS`.
    ImportError
        The runner needs PyTorch and it is not installed.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method = {method!r} is not known; choose one of {list(METHODS)}")
    try:
        return importlib.import_module(f"{__name__}.{method}")
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise ImportError(f"method = {method!r} needs PyTorch: pip install 'nnbcd[torch]'") from None


def run_preset(config: Mapping[str, Any], out_dir: "str | Path", *, quiet: bool = False,
               resume: bool = False) -> Dict[str, Any]:
    """Run a loaded preset with the runner its ``method`` names (default ``"nnbcd"``).

    Parameters
    ----------
    config : mapping
        The preset (:func:`nnbcd.runners.schema.load_preset`).
    out_dir : str or Path
        Where the runner writes its files; created if missing.
    quiet : bool
        Force ``[fit] verbose`` off (no progress output).
    resume : bool
        Continue the checkpointed run in ``out_dir`` (``method = "nnbcd"`` only; ``config`` is its stored
        preset, :func:`nnbcd.runners.nnbcd.load_resolved`).

    Returns
    -------
    dict
        The runner's summary (JSON-serialisable).

    Raises
    ------
    ValueError
        An unknown method, or a preset table that fails the runner's checks (the key is named).
    OSError
        ``out_dir`` cannot be written to; with ``resume``, no checkpoint there.
    """
    method = config.get("method", "nnbcd")
    runner = get_runner(method)
    if not resume:
        return runner.run(config, out_dir, quiet=quiet)
    if method != "nnbcd":
        raise ValueError(f"--resume: method = {method!r} runs have no checkpoints; only nnbcd runs resume")
    return runner.run(config, out_dir, quiet=quiet, resume=True)
