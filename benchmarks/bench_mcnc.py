"""Cost of one MCNC training step against the dense step on the digits MLP (64-256-256-10).

    python benchmarks/bench_mcnc.py [--steps 200] [--batches 64,256,1347]

Times forward + backward + Adam step, median over ``--steps`` steps after warm-up, for the dense model,
MCNC (sine generator, k = 8, d = 1024, hidden widths ``--widths``) and PRANC (linear generator), at
several batch sizes, and prints ``MCNC step / dense step``. Writes JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnbcd.torch.mcnc import MCNCSpec, wrap
from nnbcd.torch.mcnc_example import make_mlp


def step_time(model: nn.Module, batch: int, steps: int) -> float:
    x, y = torch.randn(batch, 64), torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    ts = []
    for i in range(steps + 20):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= 20:
            ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batches", default="64,256,1347")
    ap.add_argument("--widths", default="256,64", help="generator hidden widths to time (MCNC)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_mcnc.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    print(f"digits MLP training step, median of {args.steps} (torch threads: {torch.get_num_threads()})")
    widths = [int(w) for w in args.widths.split(",")]
    print(f"{'batch':>6} {'dense ms':>9} " + " ".join(f"{'mcnc w' + str(w) + ' ms':>14}" for w in widths)
          + f" {'pranc ms':>9} " + " ".join(f"{'mcnc w' + str(w) + '/dense':>16}" for w in widths)
          + f" {'pranc/dense':>11}")
    for batch in (int(b) for b in args.batches.split(",")):
        t = {"dense": step_time(make_mlp(256), batch, args.steps)}
        for w in widths:
            t[f"mcnc_w{w}"] = step_time(wrap(make_mlp(256), MCNCSpec(k=8, d=1024, width=w)), batch, args.steps)
        t["pranc"] = step_time(wrap(make_mlp(256), MCNCSpec(k=8, d=1024, generator="pranc")), batch, args.steps)
        row = dict(batch=batch, **{f"{k}_ms": 1e3 * v for k, v in t.items()},
                   **{f"{k}_over_dense": v / t["dense"] for k, v in t.items() if k != "dense"})
        rows.append(row)
        print(f"{batch:>6} {1e3 * t['dense']:9.3f} " + " ".join(f"{1e3 * t[f'mcnc_w{w}']:14.3f}" for w in widths)
              + f" {1e3 * t['pranc']:9.3f} " + " ".join(f"{t[f'mcnc_w{w}'] / t['dense']:16.2f}" for w in widths)
              + f" {t['pranc'] / t['dense']:11.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
