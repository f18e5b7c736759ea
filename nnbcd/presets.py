"""The NN-BCD preset runner: TOML tables -> data, model, compression, fit; results to a directory.

Layout of an ``method = "nnbcd"`` preset (keys mirror :class:`nnbcd.NNBCD` and its ``fit``)::

    [data]       name = "digits" | "breast_cancer" | "mnist5k" | "har" | "flare", path, test_size, seed
    [model]      layers, gamma, rho, alpha, tau, bias, loss_scale, init, backend, dtype, seed, ...
    [model.conv] in_shape, filters, kernel, stride   (optional convolutional first layer)
    [[compress]] layers = [1, 2], type = "tt" | "prune", + the spec's own keys (rank, shape, sparsity, ...)
    [fit]        max_iter, tol, verbose
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .bcd.conv import Conv2d
from .bcd.solver import NNBCD

_TOP = {"method", "name", "description", "data", "model", "compress", "fit"}
_DATA = {"name", "path", "test_size", "seed", "dtype", "fraction"}
_FIT = {"max_iter", "tol"}


def check_keys(table: Dict[str, Any], allowed: set, where: str) -> None:
    """Raise ``ValueError`` naming every key of ``table`` that is not in ``allowed``."""
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{where}]; allowed: {sorted(allowed)}")


def build_compression(entries: List[Dict[str, Any]]) -> Dict[int, Any]:
    """``[[compress]]`` tables -> ``{layer: spec}``; the layers of one table share one spec object."""
    from . import compress as C

    kinds = {"tt": getattr(C, "TT", None), "prune": getattr(C, "Prune", None)}
    out: Dict[int, Any] = {}
    for n, entry in enumerate(entries):
        entry = dict(entry)
        where = f"compress #{n + 1}"
        kind = entry.pop("type", None)
        layers = entry.pop("layers", None)
        if kind not in kinds or kinds[kind] is None:
            raise ValueError(f"[{where}] type = {kind!r}; choose one of {sorted(kinds)}")
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"[{where}] needs layers = [i, ...] (paper numbering, W_1 is 1)")
        cls = kinds[kind]
        check_keys(entry, set(inspect.signature(cls).parameters), where)
        spec = cls(**entry)
        for layer in layers:
            if layer in out:
                raise ValueError(f"[{where}] layer {layer} is compressed twice")
            out[layer] = spec
    return out


def run(config: Dict[str, Any], out_dir: Path, verbose: bool) -> Dict[str, Any]:
    """Train the preset's network with NN-BCD, write ``result.json`` and ``convergence.png``."""
    from .convergence import plot_convergence, rate, sufficient_decrease
    from .data import load_dataset

    check_keys(config, _TOP, "top level")
    data_cfg = dict(config.get("data", {}))
    check_keys(data_cfg, _DATA, "data")
    model_cfg = dict(config.get("model", {}))
    allowed = (set(inspect.signature(NNBCD).parameters) - {"compress"}) | {"conv"}
    check_keys(model_cfg, allowed, "model")
    fit_cfg = dict(config.get("fit", {}))
    check_keys(fit_cfg, _FIT, "fit")

    name = data_cfg.pop("name", "digits")
    Xtr, ytr, Xte, yte = load_dataset(name, **data_cfg)
    compress = build_compression(config.get("compress", []))
    if "tau" in model_cfg and isinstance(model_cfg["tau"], dict):
        model_cfg["tau"] = {int(k): v for k, v in model_cfg["tau"].items()}
    if "conv" in model_cfg:  # a convolutional first layer in front of the widths
        conv_cfg = dict(model_cfg.pop("conv"))
        check_keys(conv_cfg, set(inspect.signature(Conv2d).parameters), "model.conv")
        model_cfg["layers"] = [Conv2d(**conv_cfg)] + list(model_cfg.get("layers", []))
    model = NNBCD(compress=compress, **model_cfg)
    model.fit(Xtr, ytr, Xte, yte, verbose=verbose, **fit_cfg)
    res = model.result_
    res.to_json(str(out_dir / "result.json"))
    plot_convergence(res, str(out_dir / "convergence.png"))
    h = res.history
    summary: Dict[str, Any] = {
        "preset": config.get("name", name),
        "status": res.status,
        "message": res.message,
        "nit": res.nit,
        "train_acc": round(model.score(Xtr, ytr), 4),
        "test_acc": round(model.score(Xte, yte), 4),
        "objective": float(res.fun),
        "sweep_seconds": round(res.time, 3),
        "seconds_per_iteration": round(res.time / max(res.nit, 1), 4),
    }
    if not compress and not np.isnan(h["prox_step_sq"]).all():
        summary["sufficient_decrease"] = sufficient_decrease(res, model.alpha).ok
    try:
        summary["rate_slope"] = round(rate(res).slope, 3)
    except ValueError:
        pass
    for key in ("cr_1", "cr_2", "cr_honest", "true_sparsity"):
        if key in h:
            summary[key] = float(h[key][-1])
    return summary
