"""Gradient-training reference for the mnist5k CNN presets (issue 11 item 4: TT r = 40 on W_2, W_3, ≥ 0.96).

    python benchmarks/mnist5k_reference.py [--max-epochs 30] [--patience 5] [--augment-shifts 0|4|8]
        [--out benchmarks/results/mnist5k_reference.json]

The network of ``solvers/mnist5k_cnn.toml`` / ``solvers/mnist5k_cnn_tt.toml`` trained by Adam (torch, CPU, one
thread, seeds fixed) on the same 4000 / 1000 split (``load_mnist5k(test_size=0.2, seed=0)``): Conv2d(1, 32, 3,
stride 2) + ReLU, flattened patch-major / filter-minor as NN-BCD's conv layer (feature p·F + f, so the
5408 columns of W_2 are in the same order as the preset's), Linear 5408→1024 + ReLU, 1024→1024 + ReLU, →10.
A stratified 10 % of the training images (400) is the validation slice for early stopping (best validation
accuracy, ``--patience`` epochs); the test split is only evaluated. For each loss (squared loss on one-hot
targets, as NN-BCD's, and cross-entropy):

* ``dense``: the trained network;
* ``tt_projected``: W_2, W_3 replaced by ``TT(rank=40, layout="matrix").project`` (the preset's layout and
  default modes: rows (4,)*5 × cols (2,4,4,13,13) and (4,)*5 × (4,)*5), no retraining;
* ``tt_iterated``: ``--rounds`` rounds of one dense epoch from the projected weights, then re-projection;
* ``tt_cores``: the TT cores of the projection (and every other parameter) trained by Adam, early stopping on
  the validation slice; the deployed network is the trained one (no projection gap).

Writes every accuracy, epoch count and time to ``--out``.
"""
from __future__ import annotations

import argparse
import copy
import time
from typing import Any, Callable, Dict, List

import numpy as np
import torch
from _timing import write_result
from torch import nn

from nnbcd import TT
from nnbcd.data import shift_augment
from nnbcd.data.embedded import load_mnist5k

RANK = 40
COMPRESSED = ("fc1", "fc2")  # the paper's W_2, W_3 (layers 1, 2)
SPEC = TT(rank=RANK, layout="matrix")
BATCH = 64
LR = 1e-3


class CNN(nn.Module):
    """conv 3×3/2 (32) → 5408-1024-1024-10, ReLU; ``weight_fn[name]`` overrides a Linear's dense weight."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 32, 3, stride=2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(5408, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 10)
        self.weight_fn: Dict[str, Callable[[], torch.Tensor]] = {}

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        layer = getattr(self, name)
        w = self.weight_fn[name]() if name in self.weight_fn else layer.weight
        return nn.functional.linear(x, w, layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x.view(-1, 1, 28, 28)))
        h = h.permute(0, 2, 3, 1).flatten(1)  # (N, H', W', F): NN-BCD's patch-major feature order
        h = torch.relu(self._linear("fc1", h))
        h = torch.relu(self._linear("fc2", h))
        return self._linear("fc3", h)


class TTWeight(nn.Module):
    """A weight held as TT-matrix cores (r, o, c, r') of ``TT.export``, rebuilt densely per call."""

    def __init__(self, cores: List[np.ndarray], rows: tuple, cols: tuple) -> None:
        super().__init__()
        self.cores = nn.ParameterList([nn.Parameter(torch.from_numpy(c.reshape(c.shape[0], -1, c.shape[-1])))
                                       for c in cores])
        self.rows, self.cols = rows, cols

    def forward(self) -> torch.Tensor:
        t = self.cores[0]
        for c in self.cores[1:]:  # (n_1..n_t, r) @ (r, n_{t+1} r') : the TT contraction, left to right
            t = (t.reshape(-1, c.shape[0]) @ c.reshape(c.shape[0], -1))
        m = len(self.rows)
        t = t.reshape([d for pair in zip(self.rows, self.cols) for d in pair])  # (o_1, c_1, ..., o_m, c_m)
        return t.permute(list(range(0, 2 * m, 2)) + list(range(1, 2 * m, 2))).reshape(
            int(np.prod(self.rows)), int(np.prod(self.cols)))


def split_validation(y: np.ndarray, frac: float = 0.1, seed: int = 0) -> tuple:
    """Stratified (train, validation) index arrays: ``frac`` of each class to validation."""
    rng = np.random.default_rng(seed)
    val = np.concatenate([rng.permutation(np.flatnonzero(y == k))[:int(round(frac * np.sum(y == k)))]
                          for k in np.unique(y)])
    return np.setdiff1d(np.arange(len(y)), val), np.sort(val)


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(X).argmax(1) == y).float().mean())


def loss_fn(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind == "ce":
        return nn.functional.cross_entropy
    # NN-BCD's squared loss on one-hot targets (mean over samples of ||z - onehot||²)
    return lambda out, y: ((out - nn.functional.one_hot(y, 10).to(out.dtype)) ** 2).sum(1).mean()


def train(model: nn.Module, data: Dict[str, torch.Tensor], kind: str, max_epochs: int, patience: int,
          seed: int, lr: float = LR) -> Dict[str, Any]:
    """Adam on the parameters that require grad, mini-batches of ``BATCH``; keeps the state of the best
    validation accuracy."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    lf = loss_fn(kind)
    best, best_state, best_epoch, t0 = -1.0, None, 0, time.perf_counter()
    n = len(data["ytr"])
    for epoch in range(1, max_epochs + 1):
        model.train()
        for idx in torch.randperm(n).split(BATCH):
            opt.zero_grad()
            lf(model(data["Xtr"][idx]), data["ytr"][idx]).backward()
            opt.step()
        val = accuracy(model, data["Xval"], data["yval"])
        if val > best:
            best, best_state, best_epoch = val, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    return {"epochs": epoch, "best_epoch": best_epoch, "val_acc": best, "seconds": time.perf_counter() - t0}


def project_(model: CNN) -> int:
    """Replace W_2, W_3 by their TT-SVD projection in place; returns the stored numbers of their cores."""
    n_params = 0
    with torch.no_grad():
        for name in COMPRESSED:
            w = getattr(model, name).weight
            proj = SPEC.project(w.numpy().astype(np.float64))
            w.copy_(torch.from_numpy(proj.dense))
            n_params += proj.n_params
    return n_params


def evaluate(model: nn.Module, data: Dict[str, torch.Tensor]) -> Dict[str, float]:
    return {f"{part}_acc": accuracy(model, data[f"X{key}"], data[f"y{key}"])
            for part, key in (("train", "tr"), ("val", "val"), ("test", "te"))}


def run_loss(kind: str, data: Dict[str, torch.Tensor], args: argparse.Namespace) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    torch.manual_seed(args.seed)
    dense = CNN()
    out["dense"] = {**train(dense, data, kind, args.max_epochs, args.patience, args.seed), **evaluate(dense, data)}
    print(kind, "dense", out["dense"], flush=True)

    projected = copy.deepcopy(dense)
    n_params = project_(projected)
    out["tt_projected"] = {"stored_tt": n_params, **evaluate(projected, data)}
    print(kind, "tt_projected", out["tt_projected"], flush=True)

    iterated, t0 = copy.deepcopy(projected), time.perf_counter()
    for r in range(args.rounds):
        train(iterated, data, kind, 1, 1, args.seed + 1 + r, lr=args.finetune_lr)
        project_(iterated)
    out["tt_iterated"] = {"rounds": args.rounds, "seconds": time.perf_counter() - t0, **evaluate(iterated, data)}
    print(kind, "tt_iterated", out["tt_iterated"], flush=True)

    cores = copy.deepcopy(dense)
    for name in COMPRESSED:
        w = getattr(cores, name).weight.detach().numpy().astype(np.float64)
        proj = SPEC.project(w)
        cores4 = SPEC.export(proj)  # (r, o_t, c_t, r'): the row and column modes of the layout
        tw = TTWeight([c.astype(np.float32) for c in cores4], tuple(c.shape[1] for c in cores4),
                      tuple(c.shape[2] for c in cores4))
        assert np.allclose(tw().detach().numpy(), proj.dense, atol=1e-4)  # same layout as the preset
        cores.add_module(f"{name}_tt", tw)
        cores.weight_fn[name] = tw
        getattr(cores, name).weight.requires_grad_(False)  # the dense W_2, W_3 are unused from here
    out["tt_cores"] = {**train(cores, data, kind, args.max_epochs, args.patience, args.seed + 100,
                             lr=args.finetune_lr), **evaluate(cores, data),
                       "stored_tt": int(sum(p.numel() for n, p in cores.named_parameters() if "_tt" in n))}
    print(kind, "tt_cores", out["tt_cores"], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="dense epoch + re-projection rounds (tt_iterated)")
    ap.add_argument("--finetune-lr", type=float, default=3e-4)
    ap.add_argument("--losses", default="squared,ce")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--augment-shifts", type=int, default=0, choices=(0, 4, 8),
                    help="add the trained-on images' one-pixel-shifted copies (the presets' [data] augment_shifts); "
                         "the validation slice and the test split stay untouched")
    ap.add_argument("--out", default="benchmarks/results/mnist5k_reference.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    Xtr, ytr, Xte, yte = load_mnist5k(test_size=0.2, seed=0, dtype="float32")
    tr, val = split_validation(ytr, seed=args.seed)
    Xfit, yfit = shift_augment(Xtr[tr], ytr[tr], (28, 28), args.augment_shifts)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    data = {"Xtr": t(Xfit), "ytr": t(yfit), "Xval": t(Xtr[val]), "yval": t(ytr[val]),
            "Xte": t(Xte), "yte": t(yte)}
    results = {kind: run_loss(kind, data, args) for kind in args.losses.split(",")}
    write_result(args.out, {"command": "python benchmarks/mnist5k_reference.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "split": {"train": len(tr), "train_rows": len(yfit), "validation": len(val), "test": len(yte)}, "rank": RANK,
        "batch": BATCH, "lr": LR, "torch": torch.__version__, "results": results})


if __name__ == "__main__":
    main()
