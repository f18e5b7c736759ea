"""The MCNC runner: dense vs MCNC vs the PRANC baseline at one stored-parameter budget (needs torch).

An MLP (by default 64-256-256-10 on digits: 85,002 weights and biases) trained dense, with MCNC (sine
generator onto the sphere) and with the PRANC-style linear random generator, both storing the same
number of values (chunks × (k + 1)), over several seeds. Writes ``mcnc.json`` and ``curves.png``.
Tables of a ``method = "mcnc"`` preset::

    [data]   name (default "digits"), path, test_size, seed, dtype (float32)
    [model]  hidden = 256 (the MLP's two hidden widths) and the MCNCSpec fields k = 8, d = 1024,
             width = 64, depth = 2, omega = 1.0, alpha_bound = 1.0, activation, alpha_constraint, mode,
             compress_bias, exclude, lora_rank, lora_alpha, m
    [fit]    seeds = [0, 1, 2], epochs = 40, batch_size = 64, lr_dense = 1e-3, lr_mcnc = 0.02, verbose = true
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import torch
from torch import nn

from ..torch.mcnc import MCNCSpec, report, wrap
from .schema import (Field, Preset, ensure_out_dir, int_list, load_data, parse_preset, positive_int, positive_number,
                     write_json)

__all__ = ["FIT", "MODEL", "VARIANTS", "check", "make_mlp", "run"]

#: The compared variants: the dense MLP, and the MCNCSpec ``generator`` of the two compressed ones.
VARIANTS = ("dense", "mcnc", "pranc")

# MCNCSpec fields the runner sets itself: the generator per variant, the seed per run
_SET_BY_RUNNER = ("generator", "seed", "version")
_SPEC_DEFAULTS = {"k": 8, "d": 1024, "width": 64, "depth": 2, "omega": 1.0, "alpha_bound": 1.0}

#: ``[model]``: the MLP's hidden width and the MCNCSpec fields (checked by MCNCSpec itself).
MODEL = {"hidden": Field(256, positive_int),
         **{f.name: Field(_SPEC_DEFAULTS.get(f.name, Field.NONE)) for f in dataclasses.fields(MCNCSpec)
            if f.name not in _SET_BY_RUNNER}}

#: ``[fit]``: one run per seed; Adam at ``lr_dense`` (dense) or ``lr_mcnc`` (α, β of the compressed ones).
FIT = {"seeds": Field([0, 1, 2], int_list), "epochs": Field(40, positive_int), "batch_size": Field(64, positive_int),
       "lr_dense": Field(1e-3, positive_number), "lr_mcnc": Field(0.02, positive_number)}


def make_mlp(hidden: int, n_in: int = 64, n_out: int = 10) -> nn.Module:
    """The MLP ``n_in``-``hidden``-``hidden``-``n_out`` with ReLU activations.

    Parameters
    ----------
    hidden : int
    n_in, n_out : int
        Input features and classes (digits: 64 and 10).

    Returns
    -------
    torch.nn.Sequential
        Maps (batch, n_in) float tensors to (batch, n_out) logits.
    """
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


def _spec(model_cfg: Mapping[str, Any], generator: str, seed: int) -> MCNCSpec:
    kwargs = {k: v for k, v in model_cfg.items() if k != "hidden"}
    try:
        return MCNCSpec(**kwargs, generator=generator, seed=seed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"[model] {exc}") from None


def _fit(model: nn.Module, data: Tuple[torch.Tensor, ...], epochs: int, lr: float, batch: int,
         seed: int) -> List[float]:
    """Adam on the cross entropy; the test accuracy after each epoch."""
    xtr, ytr, xte, yte = data
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(ytr), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            curve.append(float((model(xte).argmax(1) == yte).float().mean()))
    return curve


def check(config: Mapping[str, Any]) -> Preset:
    """Check a ``method = "mcnc"`` preset's tables and its MCNCSpec; nothing is loaded or trained.

    Parameters
    ----------
    config : mapping

    Returns
    -------
    Preset

    Raises
    ------
    ValueError
        An unknown key or a bad value, named with its table (MCNCSpec's own message for its fields).
    """
    preset = parse_preset(config, "mcnc", model=MODEL, fit=FIT, data_defaults={"dtype": "float32"})
    _spec(preset.model, "mcnc", preset.fit["seeds"][0])
    return preset


def run(config: Mapping[str, Any], out_dir: "str | Path", *, quiet: bool = False) -> Dict[str, Any]:
    """Train the dense, MCNC and PRANC variants once per seed and compare them.

    Parameters
    ----------
    config : mapping
        The preset.
    out_dir : str or Path
        Receives ``mcnc.json`` (the checked preset; per variant the mean, std and per-seed test
        accuracies, the per-epoch curves, seconds per run, stored numbers and compression ratios) and
        ``curves.png``.
    quiet : bool
        Force ``[fit] verbose`` off.

    Returns
    -------
    dict
        ``preset`` and, per variant, ``acc``, ``std`` and the honest compression ``ratio`` (None: dense).

    Raises
    ------
    ValueError
        A bad table, key or MCNCSpec field.
    OSError
        ``out_dir`` cannot be written to.
    """
    preset = check(config)
    model_cfg, fit = preset.model, preset.fit
    xtr, ytr, xte, yte = load_data(preset.data)
    # an earlier run's outputs go only once this run is sure to start (a refused or interrupted load keeps them)
    out = ensure_out_dir(out_dir, stale=("mcnc.json", "curves.png"))
    classes = np.unique(ytr)
    data = (torch.as_tensor(xtr), torch.as_tensor(np.searchsorted(classes, ytr)),
            torch.as_tensor(xte), torch.as_tensor(np.searchsorted(classes, yte)))
    results: Dict[str, Dict[str, Any]] = {}
    for variant in VARIANTS:
        accs, curves, secs, rep = [], [], [], {}
        for seed in fit["seeds"]:
            torch.manual_seed(seed)
            model = make_mlp(model_cfg["hidden"], xtr.shape[1], len(classes))
            lr = fit["lr_dense"]
            if variant != "dense":
                model = wrap(model, _spec(model_cfg, variant, seed))
                rep = report(model)
                lr = fit["lr_mcnc"]
            t0 = time.perf_counter()
            curve = _fit(model, data, fit["epochs"], lr, fit["batch_size"], seed)
            secs.append(time.perf_counter() - t0)
            accs.append(curve[-1])
            curves.append(curve)
        results[variant] = {"acc_mean": float(np.mean(accs)), "acc_std": float(np.std(accs)), "accs": accs,
                            "curves": curves, "train_seconds": float(np.mean(secs)),
                            "stored": rep.get("stored"), "ratio": rep.get("honest_ratio"),
                            "paper_ratio": rep.get("paper_ratio")}
        if fit["verbose"] and not quiet:
            print(f"{variant:>6}: test accuracy {np.mean(accs):.4f} ± {np.std(accs):.4f} "
                  f"(stored {rep.get('stored', 'all')}, {np.mean(secs):.1f} s per run)")
    write_json(out / "mcnc.json", {"config": dataclasses.asdict(preset), "results": results})
    _plot(results, out / "curves.png")
    return {"preset": preset.name, **{v: {"acc": round(r["acc_mean"], 4), "std": round(r["acc_std"], 4),
                                          "ratio": None if r["ratio"] is None else round(r["ratio"], 1)}
                                      for v, r in results.items()}}


def _plot(results: Dict[str, Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for variant, r in results.items():
        c = np.array(r["curves"])
        ep = np.arange(1, c.shape[1] + 1)
        ax.plot(ep, c.mean(0), label=f"{variant} ({r['acc_mean']:.3f})")
        ax.fill_between(ep, c.min(0), c.max(0), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
