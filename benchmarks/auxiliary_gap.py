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
  activations.

docs/compression.md ("Over-relaxed blocks") reads the MNIST-5k TT preset's sweep-24 checkpoint with it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from _timing import write_result

from nnbcd.backend import get_backend
from nnbcd.bcd import checkpoint as ckpt
from nnbcd.runners import nnbcd as runner
from nnbcd.runners.schema import load_data


def _norm_ratio(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(ref))


def diagnose(run_dir: Path) -> Dict[str, Any]:
    preset = runner.check(runner.load_resolved(run_dir))
    conv = runner.make_estimator(preset, quiet=True).conv
    X, y, _, _ = load_data(preset.data)
    labels = np.unique(y, return_inverse=True)[1]
    it = ckpt.load(run_dir).iterate
    be = get_backend("numpy")
    W = [it.Wt[i].dense if i in it.Wt else w for i, w in enumerate(it.W)]
    L = len(W)
    h = np.ascontiguousarray(X.T, dtype=it.W[0].dtype)
    pre: List[np.ndarray] = []
    post: List[np.ndarray] = []
    for i in range(L):  # the deployed forward pass, keeping every layer's pre- and post-activations
        if i == 0 and conv is not None:
            z = conv.to_features(be.matmul(W[0], conv.patches(h, be)))
            bias = None if it.b[0] is None else conv.bias_rows(it.b[0], np)
        else:
            z = W[i] @ h
            bias = it.b[i]
        if bias is not None:
            z += bias[:, None]
        pre.append(z)
        h = np.maximum(z, 0) if i < L - 1 else z
        post.append(h)
    layers = []
    for i in range(L):
        v_in = None if i == 0 else it.V[i - 1]
        if i == 0:
            lin = pre[0]  # layer 0 reads the data: its product equals the forward one
        else:
            lin = W[i] @ v_in + (0 if it.b[i] is None else it.b[i][:, None])
        row = {"layer": i, "residual": _norm_ratio(it.U[i], lin, it.U[i]),
               "relu_gap": _norm_ratio(it.V[i], np.maximum(it.U[i], 0) if i < L - 1 else it.U[i], it.V[i]),
               "forward_gap": _norm_ratio(it.U[i], pre[i], it.U[i])}
        if i > 0:
            dev = _norm_ratio(post[i - 1], v_in, v_in)
            row["amplification"] = float(np.linalg.norm(W[i] @ (post[i - 1] - v_in)) / np.linalg.norm(W[i] @ v_in)
                                         / dev) if dev > 0 else None
        layers.append(row)
    return {"run": str(run_dir), "sweep": it.sweep,
            "deployed_acc": float(np.mean(post[-1].argmax(0) == labels)),
            "auxiliary_acc": float(np.mean(it.V[L - 1].argmax(0) == labels)), "layers": layers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", default=None, help="JSON file (default: RUN_DIR/auxiliary_gap.json)")
    args = ap.parse_args()
    out = diagnose(args.run_dir)
    print(f"sweep {out['sweep']}: deployed train acc {out['deployed_acc']:.4f}, auxiliary {out['auxiliary_acc']:.4f}")
    for row in out["layers"]:
        print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    write_result(args.out or str(args.run_dir / "auxiliary_gap.json"), out)


if __name__ == "__main__":
    main()
