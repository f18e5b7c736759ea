"""The VBMF low-rank pipeline on digits (CPU-sized reproduction of arXiv 2408.16289's recipe).

Train an over-parameterised small CNN on scikit-learn's 8×8 digits with and without an orthogonal
regulariser, decompose every Conv2d (Tucker-2) and hidden Linear (SVD split) at EVBMF ranks, fine-tune,
and report accuracy and compression for both; plot each layer's spectrum with its EVBMF threshold.
Run with ``nnbcd solve solvers/digits_lowrank.toml``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.embedded import load_digits
from ..ops.vbmf import evbmf
from ..presets import check_keys
from .lowrank import decompose
from .orthreg import orthogonal_penalty, regularised_layers, train_epochs

DEFAULTS: dict[str, Any] = {
    "method": "lowrank", "name": "digits_lowrank", "description": "",
    "seed": 0, "channels": 64, "hidden": 256, "epochs": 25, "finetune_epochs": 5, "batch_size": 64,
    "lr": 2e-3, "finetune_lr": 5e-4, "penalty": "srip", "lam": 1e-3,
}


def make_cnn(channels: int, hidden: int) -> nn.Module:
    """An over-parameterised CNN for 1×8×8 inputs."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * c * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10),
    )


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def run(config: dict[str, Any], out_dir: Path, verbose: bool) -> dict[str, Any]:
    check_keys(config, set(DEFAULTS), "method = 'lowrank'")
    cfg = {**DEFAULTS, **config}
    xtr, ytr, xte, yte = load_digits(dtype="float32")
    xtr_t, xte_t = torch.tensor(xtr).reshape(-1, 1, 8, 8), torch.tensor(xte).reshape(-1, 1, 8, 8)
    ytr_t, yte_t = torch.tensor(ytr), torch.tensor(yte)
    rows, spectra = [], {}
    for variant, lam in (("plain", 0.0), (f"orthogonal ({cfg['penalty']}, λ={cfg['lam']:g})", cfg["lam"])):
        torch.manual_seed(cfg["seed"])
        model = make_cnn(cfg["channels"], cfg["hidden"])
        gen = torch.Generator().manual_seed(cfg["seed"])
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xtr_t, ytr_t),
                                             batch_size=cfg["batch_size"], shuffle=True, generator=gen)
        layers = [m.weight for _, m in regularised_layers(model)]

        def penalty(_m: nn.Module) -> torch.Tensor:
            return orthogonal_penalty(layers, cfg["penalty"], lam)

        train_epochs(model, loader, cfg["epochs"], cfg["lr"], penalty if lam > 0 else None)
        acc_dense = _accuracy(model, xte_t, yte_t)
        last = regularised_layers(model, exclude_last_linear=False)[-1][0]
        small, report = decompose(model, skip=(last,), example_input=xte_t[:1])
        acc_cut = _accuracy(small, xte_t, yte_t)
        train_epochs(small, loader, cfg["finetune_epochs"], cfg["finetune_lr"])
        acc_ft = _accuracy(small, xte_t, yte_t)
        rows.append({"variant": variant, "acc_dense": acc_dense, "acc_decomposed": acc_cut,
                     "acc_finetuned": acc_ft, "drop_at_decomposition": acc_dense - acc_cut,
                     "params_ratio": report.ratio, "macs_ratio": report.macs_after / report.macs_before,
                     "layers": [{"name": r.name, "shape": list(r.shape), "ranks": list(r.ranks),
                                 "action": r.action, "rel_error": r.rel_error} for r in report.layers]})
        spectra[variant] = {name: m.weight.detach().reshape(m.weight.shape[0], -1).double().numpy()
                            for name, m in regularised_layers(model)}
        if verbose:
            print(f"[{variant}]\n{report.table()}\naccuracy dense {acc_dense:.4f}, decomposed {acc_cut:.4f}, "
                  f"fine-tuned {acc_ft:.4f}")
    (out_dir / "lowrank.json").write_text(json.dumps({"config": cfg, "rows": rows}, indent=1))
    _plot_spectra(spectra, out_dir / "spectra.png")
    return {"preset": cfg["name"], **{r["variant"]: {k: round(v, 4) for k, v in r.items()
                                                      if isinstance(v, float)} for r in rows}}


def _plot_spectra(spectra: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(spectra.values())))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2))
    for ax, name in zip(np.atleast_1d(axes), names):
        for (variant, mats), color in zip(spectra.items(), ("C0", "C1")):
            r = evbmf(mats[name])
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
