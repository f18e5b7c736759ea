"""How far an NN-BCD iterate's auxiliary network is from the network it deploys (a checkpoint's diagnosis).

    python benchmarks/auxiliary_gap.py RUN_DIR [--out PATH]

``RUN_DIR`` is an ``nnbcd solve`` output folder with a ``checkpoint.npz`` (``[fit] checkpoint_every``). On the
preset's training split (with its shifted copies, as trained), prints and writes:

* ``deployed_acc``: accuracy of the forward pass of the deployed weights; ``auxiliary_acc``: of argmax V_L,
  the auxiliary output (what the objective's data term sees);
* per layer i: ``residual`` ‖U_i − W_iV_{i−1} − b_i‖/‖U_i‖ and ``relu_gap`` ‖V_i − σ(U_i)‖/‖V_i‖ (the
  coupling terms' slack, relative), ``forward_gap`` ‖U_i − Z_i‖/‖U_i‖ with Z_i the deployed forward
  pre-activations, and ``amplification``: (‖W_i(F_{i−1} − V_{i−1})‖/‖W_iV_{i−1}‖) / (‖F_{i−1} − V_{i−1}‖/‖V_{i−1}‖),
  F the forward activations — how much layer i magnifies the forward pass's deviation from the auxiliary
  activations; ``v_rms`` the RMS of V_i and ``weight_norm`` the spectral norm of the deployed W_i (the scale
  the coupling terms are measured at: ReLU's homogeneity leaves it free);
* ``readout``: train and test accuracy of the output layer refit by least squares on the deployed features
  (``refit_output=True``, :mod:`nnbcd.bcd.readout`), plain (λ = 0, what the solver does) and ridge-regularised
  with λ·mean(diag G) added to the Gram G = H̄H̄ᵀ's diagonal, to show how the refit depends on regularisation.

docs/compression.md ("Over-relaxed blocks", "Output-layer refit") reads the MNIST-5k TT preset's checkpoints
with it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from _timing import write_result

from nnbcd.backend import get_backend
from nnbcd.bcd import checkpoint as ckpt
from nnbcd.bcd.readout import ReadoutFactor, combine_readout, readout_factor, solve_readout, split
from nnbcd.runners import nnbcd as runner
from nnbcd.runners.schema import load_data


def _norm_ratio(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(ref))


#: ridge weights of the readout rows (0: the solver's plain least squares)
RIDGE = (0.0, 1e-6, 1e-4, 1e-3)


def _forward(W: List[np.ndarray], it: ckpt.Iterate, X: np.ndarray, conv: Any) -> "tuple[list, list]":
    """The deployed forward pass, every layer's pre- and post-activations."""
    be = get_backend("numpy")
    h = np.ascontiguousarray(X.T, dtype=it.W[0].dtype)
    pre: List[np.ndarray] = []
    post: List[np.ndarray] = []
    for i in range(len(W)):
        if i == 0 and conv is not None:
            z = conv.to_features(be.matmul(W[0], conv.patches(h, be)))
            bias = None if it.b[0] is None else conv.bias_rows(it.b[0], np)
        else:
            z = W[i] @ h
            bias = it.b[i]
        if bias is not None:
            z += bias[:, None]
        pre.append(z)
        h = np.maximum(z, 0) if i < len(W) - 1 else z
        post.append(h)
    return pre, post


def _readout(H: np.ndarray, labels: np.ndarray, H_test: np.ndarray, labels_test: np.ndarray,
             bias: bool) -> List[Dict[str, float]]:
    """Train / test accuracy of the least-squares output layer on features ``H``, per ridge weight."""
    be = get_backend("numpy")
    factor = readout_factor(H, np.eye(labels.max() + 1)[labels].T, bias, be)
    R11 = factor.R[:, :factor.width]
    mean_diag = float(np.mean(np.sum(R11 ** 2, axis=0)))  # mean diagonal of the Gram H̄H̄ᵀ
    rows = []
    for lam in RIDGE:  # ridge: the rows sqrt(λ·mean_diag)·I with targets 0, stacked under the samples
        prior = np.zeros((factor.width, factor.R.shape[1]))
        prior[:, :factor.width] = np.sqrt(lam * mean_diag) * np.eye(factor.width)
        ridge = combine_readout(factor, ReadoutFactor(prior, factor.width, factor.width, True))
        w, b = split(solve_readout(ridge), bias)
        score = (lambda F, lab: float(np.mean((w @ F + (0 if b is None else b[:, None])).argmax(0) == lab)))
        rows.append({"ridge": lam, "train_acc": score(H, labels), "test_acc": score(H_test, labels_test)})
    return rows


def diagnose(run_dir: Path) -> Dict[str, Any]:
    preset = runner.check(runner.load_resolved(run_dir))
    conv = runner.make_estimator(preset, quiet=True).conv
    X, y, X_test, y_test = load_data(preset.data)
    classes, labels = np.unique(y, return_inverse=True)
    it = ckpt.load(run_dir).iterate
    W = [it.Wt[i].dense if i in it.Wt else w for i, w in enumerate(it.W)]
    L = len(W)
    pre, post = _forward(W, it, X, conv)
    layers = []
    for i in range(L):
        v_in = None if i == 0 else it.V[i - 1]
        if i == 0:
            lin = pre[0]  # layer 0 reads the data: its product equals the forward one
        else:
            lin = W[i] @ v_in + (0 if it.b[i] is None else it.b[i][:, None])
        row = {"layer": i, "residual": _norm_ratio(it.U[i], lin, it.U[i]),
               "relu_gap": _norm_ratio(it.V[i], np.maximum(it.U[i], 0) if i < L - 1 else it.U[i], it.V[i]),
               "forward_gap": _norm_ratio(it.U[i], pre[i], it.U[i]),
               "v_rms": float(np.sqrt(np.mean(np.square(it.V[i], dtype=np.float64)))),
               "weight_norm": float(np.linalg.norm(W[i].astype(np.float64), 2))}
        if i > 0:
            dev = _norm_ratio(post[i - 1], v_in, v_in)
            row["amplification"] = float(np.linalg.norm(W[i] @ (post[i - 1] - v_in)) / np.linalg.norm(W[i] @ v_in)
                                         / dev) if dev > 0 else None
        layers.append(row)
    readout = None
    if L > 1:
        test_post = _forward(W, it, X_test, conv)[1]
        readout = _readout(post[L - 2], labels, test_post[L - 2], np.searchsorted(classes, y_test), it.b[-1] is not None)
    return {"run": str(run_dir), "sweep": it.sweep,
            "deployed_acc": float(np.mean(post[-1].argmax(0) == labels)),
            "auxiliary_acc": float(np.mean(it.V[L - 1].argmax(0) == labels)), "layers": layers, "readout": readout}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", default=None, help="JSON file (default: RUN_DIR/auxiliary_gap.json)")
    args = ap.parse_args()
    out = diagnose(args.run_dir)
    print(f"sweep {out['sweep']}: deployed train acc {out['deployed_acc']:.4f}, auxiliary {out['auxiliary_acc']:.4f}")
    for row in out["layers"]:
        print("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    for row in out["readout"] or []:
        print(f"  readout, ridge {row['ridge']:g}: train acc {row['train_acc']:.4f}, test acc {row['test_acc']:.4f}")
    write_result(args.out or str(args.run_dir / "auxiliary_gap.json"), out)


if __name__ == "__main__":
    main()
