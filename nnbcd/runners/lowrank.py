"""The VBMF low-rank runner (a CPU-sized reproduction of arXiv 2408.16289's recipe; needs torch).

Train an over-parameterised small CNN with and without an orthogonal regulariser, decompose every
Conv2d (Tucker-2) and hidden Linear (SVD split) at EVBMF ranks, fine-tune, and report accuracy and
compression for both; plot each layer's spectrum with its EVBMF threshold. Writes ``lowrank.json`` and
``spectra.png``. Tables of a ``method = "lowrank"`` preset::

    [data]   name (default "digits"; square single-channel images), path, test_size, seed, dtype (float32)
    [model]  channels = 64, hidden = 256
    [fit]    random_state = 0, epochs = 25, finetune_epochs = 5, batch_size = 64, lr = 2e-3,
             finetune_lr = 5e-4, penalty = "srip", lam = 1e-3, verbose = true
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
import torch
from torch import nn

from ..ops.vbmf import evbmf
from ..torch.lowrank import decompose
from ..torch.orthreg import PENALTIES, orthogonal_penalty, regularised_layers, train_epochs
from .schema import (Field, Preset, ensure_out_dir, load_data, non_negative_int, non_negative_number, one_of,
                     parse_preset, positive_int, positive_number, seed, write_json)

__all__ = ["FIT", "MODEL", "check", "make_cnn", "run"]

#: ``[model]``: the CNN's width (channels of the first convolutions) and its hidden Linear width.
MODEL = {"channels": Field(64, positive_int), "hidden": Field(256, positive_int)}

#: ``[fit]``: seed, training and fine-tuning schedules, and the orthogonal penalty (kind and weight λ).
FIT = {"random_state": Field(0, seed), "epochs": Field(25, positive_int),
       "finetune_epochs": Field(5, non_negative_int), "batch_size": Field(64, positive_int),
       "lr": Field(2e-3, positive_number), "finetune_lr": Field(5e-4, positive_number),
       "penalty": Field("srip", one_of(*PENALTIES)), "lam": Field(1e-3, non_negative_number)}


def make_cnn(channels: int, hidden: int, side: int = 8, n_classes: int = 10) -> nn.Module:
    """An over-parameterised CNN for 1×side×side inputs.

    Parameters
    ----------
    channels : int
        c: convolutions 1→c→c (3×3, padding 1), a 2×2 max-pool, then c→2c.
    hidden : int
        Width of the hidden Linear layer after flattening (2c·(side//2)² features).
    side : int
        Image height and width.
    n_classes : int

    Returns
    -------
    torch.nn.Sequential
        Maps (batch, 1, side, side) float tensors to (batch, n_classes) logits.
    """
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * c * (side // 2) ** 2, hidden), nn.ReLU(), nn.Linear(hidden, n_classes),
    )


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def check(config: Mapping[str, Any]) -> Preset:
    """Check a ``method = "lowrank"`` preset's tables and fill in the defaults; nothing is loaded or trained.

    Parameters
    ----------
    config : mapping

    Returns
    -------
    Preset

    Raises
    ------
    ValueError
        An unknown key or a bad value, named with its table.
    """
    return parse_preset(config, "lowrank", model=MODEL, fit=FIT, data_defaults={"dtype": "float32"})


def run(config: Mapping[str, Any], out_dir: "str | Path", *, quiet: bool = False) -> Dict[str, Any]:
    """Train, decompose at EVBMF ranks and fine-tune, without and with the orthogonal penalty.

    Parameters
    ----------
    config : mapping
        The preset.
    out_dir : str or Path
        Receives ``lowrank.json`` (the checked preset and one row per variant: accuracies dense /
        decomposed / fine-tuned, parameter and MAC ratios, per-layer ranks and errors) and
        ``spectra.png``.
    quiet : bool
        Force ``[fit] verbose`` off.

    Returns
    -------
    dict
        ``preset`` and, per variant, its float entries rounded to 4 digits.

    Raises
    ------
    ValueError
        A bad table or key, or data whose samples are not square single-channel images.
    OSError
        ``out_dir`` cannot be written to.
    """
    preset = check(config)
    model_cfg, fit = preset.model, preset.fit
    xtr, ytr, xte, yte = load_data(preset.data)
    side = math.isqrt(xtr.shape[1])
    if side * side != xtr.shape[1]:
        raise ValueError(f"[data] name = {preset.data['name']!r}: the lowrank CNN takes square single-channel "
                         f"images, got {xtr.shape[1]} features per sample")
    # an earlier run's outputs go only once this run is sure to start (a refused or interrupted load keeps them)
    out = ensure_out_dir(out_dir, stale=("lowrank.json", "spectra.png"))
    classes = np.unique(ytr)
    xtr_t, xte_t = (torch.as_tensor(x).reshape(-1, 1, side, side) for x in (xtr, xte))
    ytr_t, yte_t = (torch.as_tensor(np.searchsorted(classes, y)) for y in (ytr, yte))
    rows, spectra = [], {}
    for variant, lam in (("plain", 0.0), (f"orthogonal ({fit['penalty']}, λ={fit['lam']:g})", fit["lam"])):
        torch.manual_seed(fit["random_state"])
        model = make_cnn(model_cfg["channels"], model_cfg["hidden"], side, len(classes))
        gen = torch.Generator().manual_seed(fit["random_state"])
        # a batch larger than the training set is the whole set (DataLoader refuses sizes past sys.maxsize)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xtr_t, ytr_t),
                                             batch_size=min(fit["batch_size"], len(ytr_t)), shuffle=True,
                                             generator=gen)
        layers = [m.weight for _, m in regularised_layers(model)]

        def penalty(_m: nn.Module) -> torch.Tensor:
            return orthogonal_penalty(layers, fit["penalty"], lam)

        train_epochs(model, loader, fit["epochs"], fit["lr"], penalty if lam > 0 else None)
        acc_dense = _accuracy(model, xte_t, yte_t)
        last = regularised_layers(model, exclude_last_linear=False)[-1][0]
        small, report = decompose(model, skip=(last,), example_input=xte_t[:1])
        acc_cut = _accuracy(small, xte_t, yte_t)
        train_epochs(small, loader, fit["finetune_epochs"], fit["finetune_lr"])
        acc_ft = _accuracy(small, xte_t, yte_t)
        rows.append({"variant": variant, "acc_dense": acc_dense, "acc_decomposed": acc_cut,
                     "acc_finetuned": acc_ft, "drop_at_decomposition": acc_dense - acc_cut,
                     "params_ratio": report.ratio, "macs_ratio": report.macs_after / report.macs_before,
                     "layers": [{"name": r.name, "shape": list(r.shape), "ranks": list(r.ranks),
                                 "action": r.action, "rel_error": r.rel_error} for r in report.layers]})
        spectra[variant] = {name: m.weight.detach().reshape(m.weight.shape[0], -1).double().numpy()
                            for name, m in regularised_layers(model)}
        if fit["verbose"] and not quiet:
            print(f"[{variant}]\n{report.table()}\naccuracy dense {acc_dense:.4f}, decomposed {acc_cut:.4f}, "
                  f"fine-tuned {acc_ft:.4f}")
    write_json(out / "lowrank.json", {"config": dataclasses.asdict(preset), "rows": rows})
    _plot_spectra(spectra, out / "spectra.png")
    return {"preset": preset.name, **{r["variant"]: {k: round(v, 4) for k, v in r.items()
                                                     if isinstance(v, float)} for r in rows}}


def _plot_spectra(spectra: Dict[str, Dict[str, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(spectra.values())))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2))
    for ax, name in zip(np.atleast_1d(axes), names):
        for (variant, mats), color in zip(spectra.items(), ("C0", "C1")):
            r = evbmf(mats[name], backend="numpy")
            s = r.singular_values
            ax.semilogy(np.arange(1, s.size + 1), s, color=color, label=f"{variant.split(' ')[0]} (rank {r.rank})")
            ax.axhline(r.threshold, color=color, ls="--", lw=0.8)
        ax.set_title(f"layer {name}")
        ax.set_xlabel("index")
        ax.legend(fontsize="x-small")
    fig.suptitle("singular values and EVBMF thresholds (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
