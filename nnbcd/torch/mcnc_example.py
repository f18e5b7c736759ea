"""MCNC vs the PRANC baseline vs dense on scikit-learn digits, at the same stored-parameter budget.

A 64-256-256-10 MLP (85,002 weights and biases) trained dense, with MCNC (sine generator onto the
sphere) and with the PRANC-style linear random generator, both storing the same number of values
(chunks × (k + 1)), over several seeds. Run with ``nnbcd solve solvers/digits_mcnc.toml``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from torch import nn

from ..data.embedded import load_digits
from ..presets import check_keys
from .mcnc import MCNCSpec, report, wrap

DEFAULTS: Dict[str, Any] = {
    "method": "mcnc", "name": "digits_mcnc", "description": "",
    "seeds": [0, 1, 2], "epochs": 40, "batch_size": 64, "lr_dense": 1e-3, "lr_mcnc": 0.02,
    "k": 8, "d": 1024, "width": 64, "depth": 2, "omega": 1.0, "alpha_bound": 1.0, "hidden": 256,
}


def make_mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def _fit(model: nn.Module, data: tuple, epochs: int, lr: float, batch: int, seed: int) -> List[float]:
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


def run(config: Dict[str, Any], out_dir: Path, verbose: bool) -> Dict[str, Any]:
    check_keys(config, set(DEFAULTS), "method = 'mcnc'")
    cfg = {**DEFAULTS, **config}
    xtr, ytr, xte, yte = load_digits(dtype="float32")
    data = (torch.tensor(xtr), torch.tensor(ytr), torch.tensor(xte), torch.tensor(yte))
    results: Dict[str, Dict[str, Any]] = {}
    for variant in ("dense", "mcnc", "pranc"):
        accs, curves, secs, rep = [], [], [], {}
        for seed in cfg["seeds"]:
            torch.manual_seed(seed)
            model = make_mlp(cfg["hidden"])
            lr = cfg["lr_dense"]
            if variant != "dense":
                spec = MCNCSpec(k=cfg["k"], d=cfg["d"], width=cfg["width"], depth=cfg["depth"], generator=variant,
                                omega=cfg["omega"], alpha_bound=cfg["alpha_bound"], seed=seed)
                model = wrap(model, spec)
                rep = report(model)
                lr = cfg["lr_mcnc"]
            t0 = time.perf_counter()
            curve = _fit(model, data, cfg["epochs"], lr, cfg["batch_size"], seed)
            secs.append(time.perf_counter() - t0)
            accs.append(curve[-1])
            curves.append(curve)
        results[variant] = {"acc_mean": float(np.mean(accs)), "acc_std": float(np.std(accs)), "accs": accs,
                            "curves": curves, "train_seconds": float(np.mean(secs)),
                            "stored": rep.get("stored"), "ratio": rep.get("honest_ratio"),
                            "paper_ratio": rep.get("paper_ratio")}
        if verbose:
            print(f"{variant:>6}: test accuracy {np.mean(accs):.4f} ± {np.std(accs):.4f} "
                  f"(stored {rep.get('stored', 'all')}, {np.mean(secs):.1f} s per run)")
    (out_dir / "mcnc.json").write_text(json.dumps({"config": cfg, "results": results}, indent=1))
    _plot(results, out_dir / "curves.png")
    return {"preset": cfg["name"], **{v: {"acc": round(r["acc_mean"], 4), "std": round(r["acc_std"], 4),
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
